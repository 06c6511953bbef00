package revocation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

type testKeys struct {
	hmac  []byte
	rsa   *rsa.PrivateKey
	ec    *ecdsa.PrivateKey
	ec384 *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
}

func newTestKeys(t testing.TB) *testKeys {
	t.Helper()
	k := &testKeys{hmac: []byte("0123456789abcdef0123456789abcdef")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	return k
}

func baseClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": "alice", "sid": "s1", "jti": "j1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func pemOf(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestVerifyAlgorithms(t *testing.T) {
	k := newTestKeys(t)
	v, err := NewVerifier(VerifierConfig{
		HMACSecret: k.hmac,
		PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.ec.PublicKey, k.ed.Public()},
	})
	if err != nil {
		t.Fatal(err)
	}
	ok := []struct {
		name   string
		method jwt.SigningMethod
		key    any
	}{
		{"HS256", jwt.SigningMethodHS256, k.hmac},
		{"HS512", jwt.SigningMethodHS512, k.hmac},
		{"RS256", jwt.SigningMethodRS256, k.rsa},
		{"PS256", jwt.SigningMethodPS256, k.rsa},
		{"ES256", jwt.SigningMethodES256, k.ec},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			cl, err := v.Verify(context.Background(), testtoken.Sign(t, c.method, c.key, baseClaims(), nil))
			if err != nil {
				t.Fatalf("valid %s token refused: %v", c.name, err)
			}
			if cl.Subject != "alice" || cl.Session != "s1" || cl.JTI != "j1" || cl.IssuedAt == 0 || cl.ExpiresAt == 0 {
				t.Fatalf("claims not read: %+v", cl)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	k := newTestKeys(t)
	other := newTestKeys(t)
	v, err := NewVerifier(VerifierConfig{
		HMACSecret: k.hmac,
		PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.ec.PublicKey},
		Issuer:     "https://issuer.example",
		Audience:   []string{"api"},
		Leeway:     5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	good := func() jwt.MapClaims {
		c := baseClaims()
		c["iss"], c["aud"] = "https://issuer.example", "api"
		return c
	}
	with := func(f func(jwt.MapClaims)) jwt.MapClaims { c := good(); f(c); return c }
	now := time.Now()
	noneTok := testtoken.Unsigned(t, good())
	// Algorithm confusion: an HS256 token whose HMAC key is the bytes of
	// the configured RSA public key.
	confused := testtoken.Sign(t, jwt.SigningMethodHS256, pemOf(t, &k.rsa.PublicKey), good(), nil)
	tamper := func(s string) string {
		parts := strings.Split(s, ".")
		payload, _ := json.Marshal(with(func(c jwt.MapClaims) { c["sub"] = "mallory" }))
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}

	cases := map[string]string{
		"valid control":        "",
		"alg none":             noneTok,
		"algorithm confusion":  confused,
		"wrong hmac secret":    testtoken.Sign(t, jwt.SigningMethodHS256, []byte("not-the-secret-not-the-secret-00"), good(), nil),
		"other rsa key":        testtoken.Sign(t, jwt.SigningMethodRS256, other.rsa, good(), nil),
		"es384 without key":    testtoken.Sign(t, jwt.SigningMethodES384, k.ec384, good(), nil),
		"expired":              testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }), nil),
		"not yet valid":        testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() }), nil),
		"issued in the future": testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() }), nil),
		"wrong issuer":         testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), nil),
		"no issuer":            testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, with(func(c jwt.MapClaims) { delete(c, "iss") }), nil),
		"wrong audience":       testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, with(func(c jwt.MapClaims) { c["aud"] = []string{"other"} }), nil),
		"iat not a number":     testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, with(func(c jwt.MapClaims) { c["iat"] = "yesterday" }), nil),
		"tampered payload":     tamper(testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, good(), nil)),
		"garbage":              "not-a-token",
		"two segments":         "a.b",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			if tok == "" {
				if _, err := v.Verify(context.Background(), testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, good(), nil)); err != nil {
					t.Fatalf("control token refused: %v", err)
				}
				return
			}
			_, err := v.Verify(context.Background(), tok)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("accepted (err %v)", err)
			}
		})
	}

	t.Run("within leeway", func(t *testing.T) {
		tok := testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Second).Unix() }), nil)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("token expired 2s ago refused with 5s leeway: %v", err)
		}
	})
	t.Run("audience list", func(t *testing.T) {
		tok := testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, with(func(c jwt.MapClaims) { c["aud"] = []string{"x", "api"} }), nil)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("aud list containing api refused: %v", err)
		}
	})
}

func TestVerifierConfigErrors(t *testing.T) {
	k := newTestKeys(t)
	cases := map[string]VerifierConfig{
		"no key":                 {},
		"alg none":               {HMACSecret: k.hmac, Algorithms: []string{"HS256", "none"}},
		"alg NONE":               {HMACSecret: k.hmac, Algorithms: []string{"NONE"}},
		"unknown alg":            {HMACSecret: k.hmac, Algorithms: []string{"HS999"}},
		"RS256 without rsa key":  {HMACSecret: k.hmac, Algorithms: []string{"RS256"}},
		"HS256 without secret":   {PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}, Algorithms: []string{"HS256"}},
		"ES384 with a P-256 key": {PublicKeys: []crypto.PublicKey{&k.ec.PublicKey}, Algorithms: []string{"ES384"}},
	}
	for name, cfg := range cases {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	v, err := NewVerifier(VerifierConfig{PublicKeys: []crypto.PublicKey{&k.ec.PublicKey}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(v.Algorithms(), ","); got != "ES256" {
		t.Fatalf("default allow-list for one P-256 key: %s, want ES256", got)
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	k := newTestKeys(t)
	for name, pub := range map[string]crypto.PublicKey{"rsa": &k.rsa.PublicKey, "ec": &k.ec.PublicKey, "ed25519": k.ed.Public()} {
		if _, err := ParsePublicKeyPEM(pemOf(t, pub)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k.ec)
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if _, err := ParsePublicKeyPEM(priv); err == nil || !strings.Contains(err.Error(), "public key instead") {
		t.Errorf("private key: %v", err)
	}
	if _, err := ParsePublicKeyPEM([]byte("hello")); err == nil {
		t.Error("non-PEM accepted")
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := ParsePublicKeyPEM(pemOf(t, &small.PublicKey)); err == nil {
		t.Error("1024-bit RSA key accepted")
	}
}

func TestJWKThumbprintRFC7638(t *testing.T) {
	// The example of RFC 7638 section 3.1.
	j := JWK{
		Kty: "RSA",
		E:   "AQAB",
		N:   "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
	}
	got, err := j.Thumbprint()
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint %s, want %s", got, want)
	}
	if _, err := (JWK{Kty: "EC", Crv: "P-256", X: "AAAA", Y: "AAAA"}).PublicKey(); err == nil {
		t.Fatal("EC point of the wrong size accepted")
	}
}

func TestDecodeReadsAuthTimeAndCnf(t *testing.T) {
	k := newTestKeys(t)
	c := baseClaims()
	c["auth_time"] = time.Now().Add(-time.Hour).Unix()
	c["cnf"] = map[string]any{"jkt": "thumb"}
	c["session"] = "custom"
	cl, err := Decode(testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, c, nil), "session")
	if err != nil {
		t.Fatal(err)
	}
	if cl.Session != "custom" || cl.Confirmation != "thumb" || cl.Issued() != cl.AuthTime || cl.AuthTime >= cl.IssuedAt {
		t.Fatalf("claims: %+v", cl)
	}
}
