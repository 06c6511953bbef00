// Package testtoken mints the JWTs of the tests: HS256 with the tests'
// shared secret, any method and key, a chosen header, unsigned (alg none),
// and a chosen issue time, so that a test orders a token before or after a
// revocation by its claims instead of sleeping into the next second.
//
// Every package's tests mint through here, so that a token means the same
// thing wherever a test reads it.
package testtoken

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Secret is the HS256 secret the tests share: the one their Caddyfiles
// and verifiers are configured with unless a test is about another.
const Secret = "integration-secret-0123456789abcdef"

// Claims returns the claims a token gets by default: subject alice,
// session s1, a unique jti, issued now and valid 15 minutes.
func Claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": "alice", "sid": "s1", "jti": ID(), "iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix()}
}

// With returns a copy of base with changes applied; a nil value deletes
// the claim.
func With(base, changes jwt.MapClaims) jwt.MapClaims {
	c := make(jwt.MapClaims, len(base)+len(changes))
	for k, v := range base {
		c[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Issued returns the changes that make a token issued at t: its iat, and
// an exp 15 minutes after t or after now, whichever is later, so that a
// token issued in the past is still valid. Merge more claims into the
// result with With.
func Issued(t time.Time) jwt.MapClaims {
	exp := time.Now()
	if t.After(exp) {
		exp = t
	}
	return jwt.MapClaims{"iat": t.Unix(), "exp": exp.Add(15 * time.Minute).Unix()}
}

// Minter mints HS256 tokens with one secret from one set of default
// claims: a package whose tests are configured with another secret, or
// whose tokens need other defaults, declares its Minter once.
type Minter struct {
	// Secret signs the tokens.
	Secret string
	// Defaults returns the claims every token starts from; Claims when
	// nil. It is called for each token, so that each gets a fresh jti
	// and issue time.
	Defaults func() jwt.MapClaims
}

// Mint signs the default claims, changed by each of changes in turn (a
// nil value deletes a claim).
func (m Minter) Mint(t testing.TB, changes ...jwt.MapClaims) string {
	t.Helper()
	c := Claims()
	if m.Defaults != nil {
		c = m.Defaults()
	}
	for _, ch := range changes {
		c = With(c, ch)
	}
	return Sign(t, jwt.SigningMethodHS256, []byte(m.Secret), c)
}

// Sign signs exactly claims, with header's fields set on the token's
// header (see Sign).
func (m Minter) Sign(t testing.TB, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	return Sign(t, jwt.SigningMethodHS256, []byte(m.Secret), claims, header)
}

// HS256 signs the default claims, changed by each of changes in turn (a
// nil value deletes a claim), with Secret.
func HS256(t testing.TB, changes ...jwt.MapClaims) string {
	t.Helper()
	return Minter{Secret: Secret}.Mint(t, changes...)
}

// HS256With signs exactly claims with HS256 and secret.
func HS256With(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	return Sign(t, jwt.SigningMethodHS256, []byte(secret), claims)
}

// Sign signs exactly claims with method and key; the fields of each
// header are set on the token's header (overriding alg or typ when a
// test needs that).
func Sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims, header ...map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for _, h := range header {
		for k, v := range h {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign a test token: %v", err)
	}
	return s
}

// Unsigned returns exactly claims as an alg-none token, with the fields
// of each header set: what a verifier must always refuse.
func Unsigned(t testing.TB, claims jwt.MapClaims, header ...map[string]any) string {
	t.Helper()
	return Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims, header...)
}

// ID returns a fresh random identifier, for jti claims.
func ID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
