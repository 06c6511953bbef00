package revocation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

const testHTU = "https://api.example.com/v1/session/revoke"

// dpopKey is a client's proof key and the thumbprint a token bound to it
// carries as cnf.jkt.
type dpopKey struct {
	priv   crypto.Signer
	method jwt.SigningMethod
	jwk    JWK
	jkt    string
}

func newDPoPKey(t testing.TB, priv crypto.Signer, method jwt.SigningMethod) *dpopKey {
	t.Helper()
	j, err := JWKFromPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := j.Thumbprint()
	if err != nil {
		t.Fatal(err)
	}
	return &dpopKey{priv: priv, method: method, jwk: j, jkt: jkt}
}

func newES256Key(t testing.TB) *dpopKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newDPoPKey(t, k, jwt.SigningMethodES256)
}

// proofSpec describes a proof; zero fields take valid defaults.
type proofSpec struct {
	typ     *string
	jwk     any // default: the key's public JWK; "-" leaves it out
	method  jwt.SigningMethod
	htm     string
	htu     string
	iat     any // default: now
	jti     any // default: a fresh value
	noIat   bool
	extraHd map[string]any
}

var proofCounter atomic.Int64

// proof signs a DPoP proof with k.
func (k *dpopKey) proof(t testing.TB, now time.Time, p proofSpec) string {
	t.Helper()
	claims := jwt.MapClaims{"htm": "POST", "htu": testHTU, "iat": now.Unix(), "jti": fmt.Sprintf("proof-%d-%d", now.UnixNano(), proofCounter.Add(1))}
	if p.htm != "" {
		claims["htm"] = p.htm
	}
	if p.htu != "" {
		claims["htu"] = p.htu
	}
	if p.iat != nil {
		claims["iat"] = p.iat
	}
	if p.noIat {
		delete(claims, "iat")
	}
	if p.jti != nil {
		claims["jti"] = p.jti
	}
	method := k.method
	if p.method != nil {
		method = p.method
	}
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = "dpop+jwt"
	if p.typ != nil {
		tok.Header["typ"] = *p.typ
	}
	switch p.jwk {
	case nil:
		tok.Header["jwk"] = k.jwk
	case "-":
	default:
		tok.Header["jwk"] = p.jwk
	}
	for h, v := range p.extraHd {
		tok.Header[h] = v
	}
	var key any = k.priv
	if method == jwt.SigningMethodNone {
		key = jwt.UnsafeAllowNoneSignatureType
	}
	if _, ok := method.(*jwt.SigningMethodHMAC); ok {
		key = []byte("0123456789abcdef0123456789abcdef")
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign proof: %v", err)
	}
	return s
}

func str(s string) *string { return &s }

func newChecker(s Store, now time.Time) *DPoPChecker {
	return &DPoPChecker{Store: s, Now: func() time.Time { return now }}
}

func TestDPoPAcceptsValidProofs(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*dpopKey{
		"ES256": newES256Key(t),
		"ES384": newDPoPKey(t, p384, jwt.SigningMethodES384),
		"RS256": newDPoPKey(t, rsaKey, jwt.SigningMethodRS256),
		"PS256": newDPoPKey(t, rsaKey, jwt.SigningMethodPS256),
		"EdDSA": newDPoPKey(t, edKey, jwt.SigningMethodEdDSA),
	}
	now := time.Now()
	s := NewMemoryStore(MemoryOptions{SweepEvery: -1})
	defer s.Close()
	d := newChecker(s, now)
	for name, k := range keys {
		if err := d.Check(context.Background(), k.proof(t, now, proofSpec{}), "POST", testHTU, k.jkt); err != nil {
			t.Errorf("%s: valid proof refused: %v", name, err)
		}
	}
	k := keys["ES256"]
	for name, htu := range map[string]string{
		"query and fragment ignored": testHTU + "?x=1#frag",
		"default port":               "https://api.example.com:443/v1/session/revoke",
		"scheme and host case":       "HTTPS://API.example.com/v1/session/revoke",
	} {
		if err := d.Check(context.Background(), k.proof(t, now, proofSpec{htu: htu}), "POST", testHTU, k.jkt); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// iat within the accepted window on either side.
	for name, iat := range map[string]time.Time{"59s old": now.Add(-59 * time.Second), "4s ahead": now.Add(4 * time.Second)} {
		if err := d.Check(context.Background(), k.proof(t, now, proofSpec{iat: iat.Unix()}), "POST", testHTU, k.jkt); err != nil {
			t.Errorf("iat %s: %v", name, err)
		}
	}
}

func TestDPoPRefusesBadProofs(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := newES256Key(t)
	other := newES256Key(t)
	dBytes, err := k.priv.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pub := k.jwk
	withD := map[string]any{"kty": pub.Kty, "crv": pub.Crv, "x": pub.X, "y": pub.Y, "d": base64.RawURLEncoding.EncodeToString(dBytes)}
	hugeRSA := JWK{Kty: "RSA", E: "AQAB", N: base64.RawURLEncoding.EncodeToString(append([]byte{0xc0}, make([]byte, 1100)...))}

	cases := []struct {
		name  string
		proof string
		htm   string
		htu   string
		want  string
	}{
		{"missing", "", "POST", testHTU, "missing"},
		{"not a JWT", "not-a-jwt", "POST", testHTU, ""},
		{"wrong key: signed by another key, its own jwk", other.proof(t, now, proofSpec{}), "POST", testHTU, "cnf.jkt"},
		{"jwk of the bound key, signed by another", other.proof(t, now, proofSpec{jwk: k.jwk}), "POST", testHTU, "signature"},
		{"wrong htm", k.proof(t, now, proofSpec{htm: "GET"}), "POST", testHTU, "htm"},
		{"htm case", k.proof(t, now, proofSpec{htm: "post"}), "POST", testHTU, "htm"},
		{"wrong htu path", k.proof(t, now, proofSpec{htu: "https://api.example.com/v1/auth/logout"}), "POST", testHTU, "htu"},
		{"wrong htu host", k.proof(t, now, proofSpec{htu: "https://evil.example.com/v1/session/revoke"}), "POST", testHTU, "htu"},
		{"wrong htu scheme", k.proof(t, now, proofSpec{htu: "http://api.example.com/v1/session/revoke"}), "POST", testHTU, "htu"},
		{"wrong htu port", k.proof(t, now, proofSpec{htu: "https://api.example.com:8443/v1/session/revoke"}), "POST", testHTU, "htu"},
		{"htu with user info", k.proof(t, now, proofSpec{htu: "https://user@api.example.com/v1/session/revoke"}), "POST", testHTU, "htu"},
		{"relative htu", k.proof(t, now, proofSpec{htu: "/v1/session/revoke"}), "POST", testHTU, "htu"},
		{"stale iat", k.proof(t, now, proofSpec{iat: now.Add(-61 * time.Second).Unix()}), "POST", testHTU, "iat"},
		{"future iat", k.proof(t, now, proofSpec{iat: now.Add(6 * time.Second).Unix()}), "POST", testHTU, "iat"},
		{"no iat", k.proof(t, now, proofSpec{noIat: true}), "POST", testHTU, "iat"},
		{"iat not a number", k.proof(t, now, proofSpec{iat: "now"}), "POST", testHTU, "iat"},
		{"no jti", k.proof(t, now, proofSpec{jti: ""}), "POST", testHTU, "jti"},
		{"jti not a string", k.proof(t, now, proofSpec{jti: 42}), "POST", testHTU, "jti"},
		{"jti too long", k.proof(t, now, proofSpec{jti: strings.Repeat("j", 257)}), "POST", testHTU, "jti"},
		{"typ jwt", k.proof(t, now, proofSpec{typ: str("JWT")}), "POST", testHTU, "typ"},
		{"no typ", k.proof(t, now, proofSpec{typ: str("")}), "POST", testHTU, "typ"},
		{"no jwk", k.proof(t, now, proofSpec{jwk: "-"}), "POST", testHTU, "jwk"},
		{"jwk not an object", k.proof(t, now, proofSpec{jwk: "a key"}), "POST", testHTU, "jwk"},
		{"jwk with private key", k.proof(t, now, proofSpec{jwk: withD}), "POST", testHTU, "private"},
		{"jwk of unknown type", k.proof(t, now, proofSpec{jwk: map[string]any{"kty": "oct", "k": "c2VjcmV0"}}), "POST", testHTU, "not supported"},
		{"alg none", k.proof(t, now, proofSpec{method: jwt.SigningMethodNone}), "POST", testHTU, ""},
		{"alg HS256", k.proof(t, now, proofSpec{method: jwt.SigningMethodHS256}), "POST", testHTU, ""},
		{"alg not the jwk's", forgeProof(t, map[string]any{"typ": "dpop+jwt", "alg": "ES384", "jwk": k.jwk}, now), "POST", testHTU, "does not match"},
		{"RSA key too large", forgeProof(t, map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": hugeRSA}, now), "POST", testHTU, "at most"},
		{"too long", strings.Repeat("a", 9000), "POST", testHTU, "longer"},
	}
	s := NewMemoryStore(MemoryOptions{SweepEvery: -1})
	defer s.Close()
	d := newChecker(s, now)
	for _, c := range cases {
		err := d.Check(context.Background(), c.proof, c.htm, c.htu, k.jkt)
		if !errors.Is(err, ErrInvalidDPoP) {
			t.Errorf("%s: %v, want ErrInvalidDPoP", c.name, err)
			continue
		}
		if c.want != "" && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
	// None of the refused proofs used up a jti: the refusals happen before
	// the replay check, so nothing was remembered.
	s.mu.Lock()
	remembered := len(s.once)
	s.mu.Unlock()
	if remembered != 0 {
		t.Fatalf("refused proofs remembered %d jtis", remembered)
	}
}

// forgeProof builds a proof with any header and a garbage signature: the
// checks of the header come before the signature's.
func forgeProof(t *testing.T, header map[string]any, now time.Time) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	claims := map[string]any{"htm": "POST", "htu": testHTU, "iat": now.Unix(), "jti": "forged"}
	return enc(header) + "." + enc(claims) + "." + base64.RawURLEncoding.EncodeToString([]byte("not a signature"))
}

func TestDPoPReplay(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			now := time.Now()
			d := newChecker(s, now)
			k := newES256Key(t)
			ctx := context.Background()
			p := k.proof(t, now, proofSpec{jti: "once"})
			if err := d.Check(ctx, p, "POST", testHTU, k.jkt); err != nil {
				t.Fatalf("first use: %v", err)
			}
			err := d.Check(ctx, p, "POST", testHTU, k.jkt)
			if !errors.Is(err, ErrInvalidDPoP) || !strings.Contains(err.Error(), "already used") {
				t.Fatalf("replay: %v, want refused as already used", err)
			}
			// Another proof with the same jti by the same key is a replay
			// too; by another key it is not (jtis are per key).
			if err := d.Check(ctx, k.proof(t, now, proofSpec{jti: "once", htu: testHTU + "?again"}), "POST", testHTU, k.jkt); !errors.Is(err, ErrInvalidDPoP) {
				t.Fatalf("same key, same jti: %v", err)
			}
			o := newES256Key(t)
			if err := d.Check(ctx, o.proof(t, now, proofSpec{jti: "once"}), "POST", testHTU, o.jkt); err != nil {
				t.Fatalf("other key, same jti: %v", err)
			}
			// Another replica sharing the store refuses the replay as well.
			d2 := newChecker(s, now)
			if err := d2.Check(ctx, p, "POST", testHTU, k.jkt); !errors.Is(err, ErrInvalidDPoP) {
				t.Fatalf("replay through another checker: %v", err)
			}
		})
	}
}

// The stored name of a proof's jti is a hash, and lives as long as the
// proof could be accepted.
func TestDPoPRemembersHashedJTIForItsLifetime(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv.Addr(), RedisOptions{KeyPrefix: "dp:"})
	now := time.Now()
	k := newES256Key(t)
	d := newChecker(s, now)
	if err := d.Check(context.Background(), k.proof(t, now, proofSpec{jti: "visible-jti-value"}), "POST", testHTU, k.jkt); err != nil {
		t.Fatal(err)
	}
	keys, err := s.client.Keys(context.Background(), "dp:*once*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v; want one remembered proof", keys, err)
	}
	if strings.Contains(keys[0], "visible-jti-value") {
		t.Fatalf("the raw jti is stored: %s", keys[0])
	}
	ttl, err := s.client.PTTL(context.Background(), keys[0]).Result()
	if err != nil || ttl <= 60*time.Second || ttl > 65*time.Second {
		t.Fatalf("remembered for %v, %v; want the proof's lifetime, max age plus leeway (65s)", ttl, err)
	}
}

func TestDPoPStoreDownIsNotAnInvalidProof(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv.Addr(), RedisOptions{})
	srv.Stop()
	now := time.Now()
	k := newES256Key(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := newChecker(s, now).Check(ctx, k.proof(t, now, proofSpec{}), "POST", testHTU, k.jkt)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidDPoP) {
		t.Fatalf("redis down: %v, want ErrUnavailable and not ErrInvalidDPoP", err)
	}
}

func TestDPoPWindowIsConfigurable(t *testing.T) {
	now := time.Now()
	k := newES256Key(t)
	s := NewMemoryStore(MemoryOptions{SweepEvery: -1})
	defer s.Close()
	d := &DPoPChecker{Store: s, MaxAge: 10 * time.Second, Leeway: time.Second, Now: func() time.Time { return now }}
	if err := d.Check(context.Background(), k.proof(t, now, proofSpec{iat: now.Add(-11 * time.Second).Unix()}), "POST", testHTU, k.jkt); !errors.Is(err, ErrInvalidDPoP) {
		t.Fatalf("11s old with MaxAge 10s: %v", err)
	}
	if err := d.Check(context.Background(), k.proof(t, now, proofSpec{iat: now.Add(-9 * time.Second).Unix()}), "POST", testHTU, k.jkt); err != nil {
		t.Fatalf("9s old with MaxAge 10s: %v", err)
	}
}

func TestSameHTU(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"https://a.example/p", "https://a.example/p", true},
		{"https://a.example/p?q=1", "https://a.example/p", true},
		{"https://a.example/p#f", "https://a.example/p", true},
		{"https://A.EXAMPLE/p", "https://a.example/p", true},
		{"https://a.example:443/p", "https://a.example/p", true},
		{"http://a.example:80/p", "http://a.example/p", true},
		{"https://a.example", "https://a.example/", true},
		{"https://a.example/P", "https://a.example/p", false},
		{"https://a.example:80/p", "https://a.example/p", false},
		{"http://a.example/p", "https://a.example/p", false},
		{"https://a.example/p/", "https://a.example/p", false},
		{"https://u:pw@a.example/p", "https://a.example/p", false},
		{"/p", "https://a.example/p", false},
		{"", "https://a.example/p", false},
		{"https://a.example/%zz", "https://a.example/%zz", false},
	}
	for _, c := range cases {
		if got := sameHTU(c.a, c.b); got != c.want {
			t.Errorf("sameHTU(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
