package revocation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Fuzz targets for what a DPoP check reads from a client: the proof, its
// embedded key and its htu. Run one with, for example:
//
//	go test -run='^$' -fuzz=FuzzDPoPCheck -fuzztime=10s ./revocation/

// fuzzNow is the fixed clock of FuzzDPoPCheck, so that seed proofs stay
// fresh however long the fuzzer runs.
var fuzzNow = time.Unix(1_800_000_000, 0)

func FuzzDPoPCheck(f *testing.F) {
	k := newES256Key(f)
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	ed := newDPoPKey(f, edPriv, jwt.SigningMethodEdDSA)
	for _, p := range []string{
		k.proof(f, fuzzNow, proofSpec{}),
		k.proof(f, fuzzNow, proofSpec{htm: "GET"}),
		k.proof(f, fuzzNow, proofSpec{htu: testHTU + "?q#f"}),
		k.proof(f, fuzzNow, proofSpec{iat: fuzzNow.Add(-time.Hour).Unix()}),
		k.proof(f, fuzzNow, proofSpec{typ: str("jwt")}),
		k.proof(f, fuzzNow, proofSpec{method: jwt.SigningMethodNone}),
		ed.proof(f, fuzzNow, proofSpec{}),
		"", "a.b.c", "eyJhbGciOiJub25lIn0.e30.",
	} {
		f.Add(p, "POST", testHTU, k.jkt)
		f.Add(p, "POST", testHTU, ed.jkt)
	}
	f.Fuzz(func(t *testing.T, proof, htm, htu, jkt string) {
		s := NewMemoryStore(MemoryOptions{SweepEvery: -1, Now: func() time.Time { return fuzzNow }})
		defer s.Close()
		d := &DPoPChecker{Store: s, Now: func() time.Time { return fuzzNow }}
		ctx := context.Background()
		err := d.Check(ctx, proof, htm, htu, jkt)
		if err != nil {
			if !errors.Is(err, ErrInvalidDPoP) {
				t.Fatalf("error %v is not ErrInvalidDPoP (the store cannot fail here)", err)
			}
			return
		}
		// Accepted: every documented constraint holds.
		if len(proof) > maxProof {
			t.Fatalf("accepted a proof of %d bytes", len(proof))
		}
		tok, _, err := jwt.NewParser().ParseUnverified(proof, jwt.MapClaims{})
		if err != nil {
			t.Fatalf("accepted an unparsable proof: %v", err)
		}
		if tok.Header["typ"] != "dpop+jwt" {
			t.Fatalf("accepted typ %v", tok.Header["typ"])
		}
		raw, _ := json.Marshal(tok.Header["jwk"])
		var j JWK
		if err := json.Unmarshal(raw, &j); err != nil {
			t.Fatalf("accepted jwk %s: %v", raw, err)
		}
		if th, err := j.Thumbprint(); err != nil || th != jkt {
			t.Fatalf("accepted a key of thumbprint %q for jkt %q (%v)", th, jkt, err)
		}
		claims := tok.Claims.(jwt.MapClaims)
		if claims["htm"] != htm || !sameHTU(claims["htu"].(string), htu) {
			t.Fatalf("accepted htm %v htu %v for %s %s", claims["htm"], claims["htu"], htm, htu)
		}
		jti, _ := claims["jti"].(string)
		if jti == "" || len(jti) > maxProofJTI {
			t.Fatalf("accepted jti %q", jti)
		}
		// A proof is good once.
		if err := d.Check(ctx, proof, htm, htu, jkt); !errors.Is(err, ErrInvalidDPoP) {
			t.Fatalf("replay accepted: %v", err)
		}
	})
}

func FuzzSameHTU(f *testing.F) {
	for _, s := range [][2]string{
		{testHTU, testHTU}, {testHTU + "?a", testHTU}, {"HTTPS://API.EXAMPLE.COM:443/v1/session/revoke", testHTU},
		{"http://a:80/", "http://a"}, {"https://u@a/p", "https://a/p"}, {"/p", "/p"}, {"", ""}, {"%zz", testHTU},
		{"http://[::1]:80/p", "http://[::1]/p"}, {"http://a/p%2F", "http://a/p/"}, {"//0", "0/"}, {"mailto:a@b", "mailto:a@b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab := sameHTU(a, b)
		if ab != sameHTU(b, a) {
			t.Fatalf("sameHTU(%q, %q) = %v, but not the other way round", a, b, ab)
		}
		ua, errA := url.Parse(a)
		ub, errB := url.Parse(b)
		if ab && (errA != nil || errB != nil || !absoluteHTTP(ua) || !absoluteHTTP(ub)) {
			t.Fatalf("sameHTU(%q, %q): matched something that is not an absolute http(s) URI without user info", a, b)
		}
		if ab && (!strings.EqualFold(ua.Scheme, ub.Scheme) || ua.Hostname() != "" && !strings.EqualFold(ua.Hostname(), ub.Hostname())) {
			t.Fatalf("sameHTU(%q, %q): schemes or hosts differ", a, b)
		}
		if errA == nil && absoluteHTTP(ua) && !sameHTU(a, a) {
			t.Fatalf("sameHTU(%q, itself) = false", a)
		}
	})
}

// FuzzJWK reads the jwk header member of a proof: decoding never panics,
// a key that decodes has a thumbprint, the key survives a round trip, and
// two encodings of one key have one thumbprint exactly when their members
// are the same strings (RFC 7638 hashes the members as written).
func FuzzJWK(f *testing.F) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	ecJWK, _ := JWKFromPublicKey(&ec.PublicKey)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edJWK, _ := JWKFromPublicKey(ed.Public())
	rsaN := new(big.Int).Lsh(big.NewInt(1), 2047)
	rsaN.Add(rsaN, big.NewInt(12345))
	for _, j := range []any{
		ecJWK, edJWK,
		JWK{Kty: "RSA", N: base64.RawURLEncoding.EncodeToString(rsaN.Bytes()), E: "AQAB"},
		JWK{Kty: "RSA", N: base64.RawURLEncoding.EncodeToString(append([]byte{0}, rsaN.Bytes()...)), E: "AAEAAQ"},
		JWK{Kty: "EC", Crv: "P-256", X: ecJWK.X, Y: ecJWK.X},
		map[string]any{"kty": "oct", "k": "c2VjcmV0"}, map[string]any{"kty": 1}, []int{1},
	} {
		b, err := json.Marshal(j)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var j JWK
		if json.Unmarshal(data, &j) != nil {
			return
		}
		pub, err := j.PublicKey()
		if err != nil {
			if _, err := j.Thumbprint(); err == nil {
				t.Fatal("a key that does not decode has a thumbprint")
			}
			return
		}
		th, err := j.Thumbprint()
		if err != nil || len(th) != 43 {
			t.Fatalf("decoded key without a thumbprint: %q %v", th, err)
		}
		back, err := JWKFromPublicKey(pub)
		if err != nil {
			t.Fatalf("decoded key cannot be encoded: %v", err)
		}
		// Round trip: the re-encoded key decodes to the same key, and its
		// thumbprint is the one j has when j's encoding is canonical.
		pub2, err := back.PublicKey()
		if err != nil {
			t.Fatalf("re-encoded key %+v does not decode: %v", back, err)
		}
		if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(pub2) {
			t.Fatalf("key changed in a round trip: %+v -> %+v", j, back)
		}
		th2, err := back.Thumbprint()
		if err != nil {
			t.Fatal(err)
		}
		if sameMembers := j.N == back.N && j.E == back.E && j.X == back.X && j.Y == back.Y; sameMembers != (th == th2) {
			t.Fatalf("thumbprints %s and %s of %+v and %+v", th, th2, j, back)
		}
	})
}
