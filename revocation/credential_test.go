package revocation

import (
	"context"
	"encoding/base64"
	"reflect"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// TestInspectorAndRevokerReadATokenAlike: the guard (through the
// Inspector) and the endpoints (through the Revoker) read a token into
// the same Credential, with the same keys, so that a token one of them
// finds revoked the other finds revoked too. Unkeyed, keyed, and keyed
// while the unkeyed entries still count.
func TestInspectorAndRevokerReadATokenAlike(t *testing.T) {
	store := NewMemoryStore(MemoryOptions{SweepEvery: -1})
	defer store.Close()
	ambiguous := "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"a","SUB":"mallory","sid":"s","jti":"j","JTI":"j2","iat":1}`)) + ".c2ln"
	verified := revokeTokens.Mint(t, jwt.MapClaims{"sid": "laptop"})
	tokens := map[string]string{
		"verified":               verified,
		"verified, padded":       verified + "=",
		"no session":             revokeTokens.Mint(t, jwt.MapClaims{"sid": nil}),
		"forged":                 testtoken.Sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-00"), jwt.MapClaims{"sub": "alice", "sid": "s1"}),
		"expired":                revokeTokens.Mint(t, jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}),
		"ambiguous, forged":      ambiguous,
		"opaque":                 "an-opaque-refresh-token",
		"three parts, not a JWT": "a.b.c",
	}
	transition := mustHasher(t, "transition-key-0123456789abcdef")
	transition.SetUnkeyedWindow(time.Hour)
	transition.SetUnkeyedSince(time.Now())
	if !transition.ChecksUnkeyed() {
		t.Fatal("the transition hasher does not check unkeyed entries")
	}
	for _, hc := range []struct {
		name   string
		hasher *Hasher
	}{{"unkeyed", nil}, {"keyed", mustHasher(t, "a-key-0123456789abcdef")}, {"keyed, unkeyed still checked", transition}} {
		rv := newRevoker(t, store)
		rv.Hasher = hc.hasher
		in := NewInspector(InspectorConfig{Verifier: rv.Verifier, Hasher: hc.hasher})
		for name, raw := range tokens {
			got := rv.Examine(context.Background(), raw)
			want := in.Inspect(context.Background(), raw)
			if !reflect.DeepEqual(got.ID, want.ID) || got.Hash != want.Hash || got.Raw != want.Raw ||
				got.Verified != want.Verified || got.ExpiresAt != want.ExpiresAt {
				t.Errorf("%s, %s: the Revoker reads\n%+v\nthe Inspector\n%+v", hc.name, name, got, want)
			}
		}
	}
}
