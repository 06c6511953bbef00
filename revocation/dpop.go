package revocation

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidDPoP wraps every reason a DPoP proof is refused.
var ErrInvalidDPoP = errors.New("invalid DPoP proof")

// DPoPChecker validates DPoP proofs (RFC 9449 section 4.3) for requests
// made with a DPoP-bound token.
type DPoPChecker struct {
	// Store remembers proof jtis for their lifetime, across replicas, so a
	// proof can be used once.
	Store Store
	// MaxAge is how old a proof's iat may be. Default 60s.
	MaxAge time.Duration
	// Leeway is how far in the future a proof's iat may be. Default 5s.
	Leeway time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// dpopAlgs are the asymmetric algorithms a proof may use; a proof is
// signed with the key it carries, so a symmetric algorithm is meaningless.
var dpopAlgs = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// DPoPAlgorithms lists the algorithms a DPoP proof may use, for the algs
// parameter of a WWW-Authenticate: DPoP challenge.
func DPoPAlgorithms() []string { return slices.Clone(dpopAlgs) }

const (
	// maxProof bounds a DPoP proof: a header with an 8192-bit RSA key
	// and a few claims fit in a fraction of it.
	maxProof = 8 << 10
	// maxProofRSABits bounds the RSA key of a proof, so that a client
	// cannot make the check arbitrarily slow.
	maxProofRSABits = 8192
	// maxProofJTI bounds the jti of a proof.
	maxProofJTI = 256
)

// Check validates proof for a request with method htm to htu, made with a
// token bound to the key whose RFC 7638 thumbprint is jkt. Errors wrap
// ErrInvalidDPoP, or ErrUnavailable when the replay check cannot be made.
func (d *DPoPChecker) Check(ctx context.Context, proof, htm, htu, jkt string) error {
	return d.check(ctx, proof, htm, htu, jkt, "")
}

// CheckAccess is Check for a request made with a DPoP-bound access token
// (RFC 9449 section 7): the proof must also carry ath, the hash of that
// very token, so that a proof made for one token serves no other.
func (d *DPoPChecker) CheckAccess(ctx context.Context, proof, htm, htu, jkt, accessToken string) error {
	sum := sha256.Sum256([]byte(accessToken))
	return d.check(ctx, proof, htm, htu, jkt, base64.RawURLEncoding.EncodeToString(sum[:]))
}

func (d *DPoPChecker) check(ctx context.Context, proof, htm, htu, jkt, ath string) error {
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	maxAge, leeway := d.MaxAge, d.Leeway
	if maxAge <= 0 {
		maxAge = 60 * time.Second
	}
	if leeway <= 0 {
		leeway = 5 * time.Second
	}
	if proof == "" {
		return fmt.Errorf("%w: missing DPoP header", ErrInvalidDPoP)
	}
	if len(proof) > maxProof {
		return fmt.Errorf("%w: proof longer than %d bytes", ErrInvalidDPoP, maxProof)
	}
	var thumb string
	claims := jwt.MapClaims{}
	parser := jwt.NewParser(jwt.WithValidMethods(dpopAlgs), jwt.WithoutClaimsValidation())
	_, err := parser.ParseWithClaims(proof, claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != "dpop+jwt" {
			return nil, errors.New(`typ is not "dpop+jwt"`)
		}
		raw, err := json.Marshal(t.Header["jwk"])
		if err != nil || t.Header["jwk"] == nil {
			return nil, errors.New("no jwk header")
		}
		var priv struct {
			D string `json:"d"`
		}
		if json.Unmarshal(raw, &priv) == nil && priv.D != "" {
			return nil, errors.New("jwk header holds a private key")
		}
		var j JWK
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("jwk header: %w", err)
		}
		pub, err := j.PublicKey()
		if err != nil {
			return nil, err
		}
		if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() > maxProofRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at most %d accepted", k.N.BitLen(), maxProofRSABits)
		}
		if !keyFits(t.Method.Alg(), pub) {
			return nil, fmt.Errorf("alg %s does not match the jwk", t.Method.Alg())
		}
		if thumb, err = j.Thumbprint(); err != nil {
			return nil, err
		}
		return pub, nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidDPoP, err)
	}
	if thumb != jkt {
		return fmt.Errorf("%w: proof key does not match the token's cnf.jkt", ErrInvalidDPoP)
	}
	if m, _ := claims["htm"].(string); m != htm {
		return fmt.Errorf("%w: htm %q, request method %s", ErrInvalidDPoP, m, htm)
	}
	if u, _ := claims["htu"].(string); !sameHTU(u, htu) {
		return fmt.Errorf("%w: htu %q does not match %q", ErrInvalidDPoP, u, htu)
	}
	var iatMs int64
	if n, ok := claims["iat"].(float64); ok && n > 0 && n < 1e11 {
		iatMs = int64(math.Round(n * 1000))
	}
	if iatMs == 0 {
		return fmt.Errorf("%w: iat missing or invalid", ErrInvalidDPoP)
	}
	iat := time.UnixMilli(iatMs)
	if iat.Before(now.Add(-maxAge)) || iat.After(now.Add(leeway)) {
		return fmt.Errorf("%w: iat outside the accepted window", ErrInvalidDPoP)
	}
	if ath != "" {
		if got, _ := claims["ath"].(string); subtle.ConstantTimeCompare([]byte(got), []byte(ath)) != 1 {
			return fmt.Errorf("%w: ath does not match the access token", ErrInvalidDPoP)
		}
	}
	jti, _ := claims["jti"].(string)
	if jti == "" || len(jti) > maxProofJTI {
		return fmt.Errorf("%w: jti missing or too long", ErrInvalidDPoP)
	}
	// Remember the jti as long as the proof could still be accepted. The
	// stored name is a hash: proof jtis are the client's, not ours to keep.
	sum := sha256.Sum256([]byte(jkt + "\x00" + jti))
	fresh, err := d.Store.Remember(ctx, "dpop:"+hex.EncodeToString(sum[:16]), maxAge+leeway)
	if err != nil {
		return err
	}
	if !fresh {
		return fmt.Errorf("%w: jti already used", ErrInvalidDPoP)
	}
	return nil
}

// sameHTU compares two URIs as RFC 9449 asks: scheme, host (with default
// ports removed) and path, ignoring query and fragment. Both must be
// absolute http(s) URIs; one with user information matches nothing, as no
// client sends one to an API.
func sameHTU(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil || !absoluteHTTP(ua) || !absoluteHTTP(ub) {
		return false
	}
	norm := func(u *url.URL) string {
		scheme := strings.ToLower(u.Scheme)
		host := strings.ToLower(u.Host)
		if h, p, err := net.SplitHostPort(host); err == nil && (scheme == "https" && p == "443" || scheme == "http" && p == "80") {
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]" // IPv6 literal
			}
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		return scheme + "://" + host + path
	}
	return norm(ua) == norm(ub)
}

func absoluteHTTP(u *url.URL) bool {
	s := strings.ToLower(u.Scheme)
	return (s == "http" || s == "https") && u.Host != "" && u.User == nil && u.Opaque == ""
}
