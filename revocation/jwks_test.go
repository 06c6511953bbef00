package revocation

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// jwksServer publishes the public half of one key under one kid, over
// HTTPS, and counts the fetches; the key and kid can be rotated.
type jwksServer struct {
	*httptest.Server
	key     atomic.Pointer[ecdsa.PrivateKey]
	kid     atomic.Pointer[string]
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, key *ecdsa.PrivateKey, kid string) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.rotate(key, kid)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		k := s.key.Load()
		j, _ := JWKFromPublicKey(&k.PublicKey)
		j.Kid, j.Use, j.Alg = *s.kid.Load(), "sig", "ES256"
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []JWK{j}})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) rotate(key *ecdsa.PrivateKey, kid string) {
	s.key.Store(key)
	s.kid.Store(&kid)
}

func newTestKeySet(t *testing.T, srv *jwksServer, minRefetch time.Duration) *RemoteKeySet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ks, err := NewRemoteKeySet(ctx, RemoteKeySetConfig{URL: srv.URL, Client: srv.Client(), MinRefetch: minRefetch, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// Making the set fetches nothing (caddy validate opens no
	// connection); starting it makes the first fetch.
	if n := srv.fetches.Load(); n != 0 {
		t.Fatalf("%d fetches before the set was started, want 0", n)
	}
	if err := ks.Start(); err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestJWKSRefetchOnUnknownKid(t *testing.T) {
	k, rotated := newTestKeys(t), newTestKeys(t)
	srv := newJWKSServer(t, k.ec, "first")
	v, err := NewVerifier(VerifierConfig{JWKS: newTestKeySet(t, srv, time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches once made, want 1", n)
	}
	tok := testtoken.Sign(t, jwt.SigningMethodES256, k.ec, baseClaims(), map[string]any{"kid": "first"})
	for range 2 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("token with the published kid: %v", err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1: the set is cached", n)
	}

	// The issuer rotates; a token with the new kid triggers one refetch.
	srv.rotate(rotated.ec, "second")
	newTok := testtoken.Sign(t, jwt.SigningMethodES256, rotated.ec, baseClaims(), map[string]any{"kid": "second"})
	if _, err := v.Verify(context.Background(), newTok); err != nil {
		t.Fatalf("token with the rotated kid: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after rotation, want 2", n)
	}
	// The retired key is gone with the old set.
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Fatal("token of the retired key still verifies")
	}
	// A flood of unknown kids costs no more fetches within the interval,
	// and is refused at once rather than kept waiting for the next one.
	start := time.Now()
	for range 20 {
		bogus := testtoken.Sign(t, jwt.SigningMethodES256, rotated.ec, baseClaims(), map[string]any{"kid": "bogus"})
		if _, err := v.Verify(context.Background(), bogus); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after 20 unknown kids, want still 2", n)
	}
	if d := time.Since(start); d > maxKidWait {
		t.Fatalf("20 unknown kids took %v: they waited for a refetch they cannot have", d)
	}
	// An HS256 token is never checked against JWKS keys.
	if _, err := v.Verify(context.Background(), testtoken.Sign(t, jwt.SigningMethodHS256, []byte("x"), baseClaims(), nil)); err == nil {
		t.Fatal("HS256 token accepted with only a JWKS configured")
	}
}

// A request cancelled at once must not spend the refetch allowance: the
// fetch it triggers runs to its own deadline.
func TestJWKSFetchOutlivesACancelledRequest(t *testing.T) {
	k := newTestKeys(t)
	srv := newJWKSServer(t, k.ec, "old-kid")
	ks := newTestKeySet(t, srv, time.Hour)
	srv.rotate(k.ec, "new-kid")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ks.Keys(ctx, "new-kid", "ES256")
	if got := ks.Keys(context.Background(), "new-kid", "ES256"); len(got) != 1 {
		t.Fatalf("after a cancelled request, the published key is unknown (%d keys) until the next refetch window", len(got))
	}
}

func TestJWKSRefusesHugeDocuments(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSBytes) + `"}`))
	}))
	defer srv.Close()
	ks, err := NewRemoteKeySet(context.Background(), RemoteKeySetConfig{URL: srv.URL, Client: srv.Client(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if got := ks.Keys(context.Background(), "", "ES256"); len(got) != 0 {
		t.Fatalf("%d keys from an oversized document", len(got))
	}
}

func TestJWKSSkipsWeakRSAKeys(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enc := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "weak", "n": enc(weak.N.Bytes()), "e": enc(big.NewInt(int64(weak.E)).Bytes()),
		}}})
	}))
	defer srv.Close()
	ks, err := NewRemoteKeySet(context.Background(), RemoteKeySetConfig{URL: srv.URL, Client: srv.Client(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if got := ks.Keys(context.Background(), "weak", "RS256"); len(got) != 0 {
		t.Fatal("a 1024-bit RSA key was trusted")
	}
}
