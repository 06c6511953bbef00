package revocation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// JWK is a public JSON Web Key (RFC 7517): RSA, EC or OKP (Ed25519).
// Private members, if a careless issuer publishes them, are ignored.
//
// Key sets are fetched with keyfunc and jwkset (jwks.go); this type stays
// for the one key of a DPoP proof, whose RFC 7638 thumbprint must match a
// token's cnf.jkt, and jwkset computes no such thumbprint.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
	Crv string `json:"crv,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// minRSABits is the smallest RSA modulus accepted as a verification key.
const minRSABits = 2048

// PublicKey decodes the key. EC points are checked to lie on their curve.
func (j JWK) PublicKey() (crypto.PublicKey, error) {
	switch j.Kty {
	case "RSA":
		n, err := b64(j.N, "n")
		if err != nil {
			return nil, err
		}
		e, err := b64(j.E, "e")
		if err != nil {
			return nil, err
		}
		if len(e) == 0 || len(e) > 4 {
			return nil, errors.New("jwk: RSA exponent out of range")
		}
		ev := int(new(big.Int).SetBytes(e).Int64())
		nv := new(big.Int).SetBytes(n)
		if nv.BitLen() < minRSABits {
			return nil, fmt.Errorf("jwk: RSA key of %d bits; at least %d required", nv.BitLen(), minRSABits)
		}
		if ev < 3 || ev%2 == 0 {
			return nil, errors.New("jwk: RSA exponent invalid")
		}
		return &rsa.PublicKey{N: nv, E: ev}, nil
	case "EC":
		curve, size, err := curveOf(j.Crv)
		if err != nil {
			return nil, err
		}
		x, err := b64(j.X, "x")
		if err != nil {
			return nil, err
		}
		y, err := b64(j.Y, "y")
		if err != nil {
			return nil, err
		}
		if len(x) != size || len(y) != size {
			return nil, fmt.Errorf("jwk: %s coordinates must be %d bytes", j.Crv, size)
		}
		point := append(append([]byte{4}, x...), y...)
		pk, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("jwk: %s point: %w", j.Crv, err)
		}
		return pk, nil
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("jwk: OKP curve %q not supported (Ed25519 only)", j.Crv)
		}
		x, err := b64(j.X, "x")
		if err != nil {
			return nil, err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, errors.New("jwk: Ed25519 key must be 32 bytes")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("jwk: key type %q not supported", j.Kty)
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint, base64url without
// padding: the value of a DPoP-bound token's cnf.jkt.
func (j JWK) Thumbprint() (string, error) {
	if _, err := j.PublicKey(); err != nil {
		return "", err
	}
	// The required members only, in lexicographic order, no whitespace.
	var canon []byte
	var err error
	switch j.Kty {
	case "RSA":
		canon, err = json.Marshal(struct {
			E   string `json:"e"`
			Kty string `json:"kty"`
			N   string `json:"n"`
		}{j.E, j.Kty, j.N})
	case "EC":
		canon, err = json.Marshal(struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
			Y   string `json:"y"`
		}{j.Crv, j.Kty, j.X, j.Y})
	case "OKP":
		canon, err = json.Marshal(struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
		}{j.Crv, j.Kty, j.X})
	}
	if err != nil {
		return "", fmt.Errorf("jwk thumbprint: %w", err)
	}
	sum := sha256.Sum256(canon)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// JWKFromPublicKey describes a public key as a JWK (used by tests and the
// demo token tool).
func JWKFromPublicKey(pub crypto.PublicKey) (JWK, error) {
	enc := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return JWK{Kty: "RSA", N: enc(k.N.Bytes()), E: enc(big.NewInt(int64(k.E)).Bytes())}, nil
	case *ecdsa.PublicKey:
		raw, err := k.Bytes()
		if err != nil {
			return JWK{}, fmt.Errorf("jwk from ecdsa key: %w", err)
		}
		size := (len(raw) - 1) / 2
		return JWK{Kty: "EC", Crv: k.Curve.Params().Name, X: enc(raw[1 : 1+size]), Y: enc(raw[1+size:])}, nil
	case ed25519.PublicKey:
		return JWK{Kty: "OKP", Crv: "Ed25519", X: enc(k)}, nil
	}
	return JWK{}, fmt.Errorf("jwk: unsupported public key type %T", pub)
}

func curveOf(crv string) (elliptic.Curve, int, error) {
	switch crv {
	case "P-256":
		return elliptic.P256(), 32, nil
	case "P-384":
		return elliptic.P384(), 48, nil
	case "P-521":
		return elliptic.P521(), 66, nil
	}
	return nil, 0, fmt.Errorf("jwk: EC curve %q not supported", crv)
}

func b64(s, name string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("jwk: missing %q", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("jwk: %q is not base64url: %w", name, err)
	}
	return b, nil
}

// ParsePublicKeyPEM reads one public key from PEM: PKIX "PUBLIC KEY",
// PKCS#1 "RSA PUBLIC KEY", or a "CERTIFICATE" (its key). A private key is
// refused with a message that says so: only the public half belongs in a
// proxy's configuration.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var pub crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("PEM block is a %s; configure the public key instead", block.Type)
	default:
		return nil, fmt.Errorf("PEM block type %q is not a public key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at least %d required", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("unsupported public key type %T (RSA, ECDSA or Ed25519)", pub)
	}
	return pub, nil
}
