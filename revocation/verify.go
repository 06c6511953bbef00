package revocation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken wraps every reason a token fails verification.
var ErrInvalidToken = errors.New("invalid token")

// Claims are the parts of a JWT that revocation cares about.
type Claims struct {
	Subject string
	// Session is the value of the configured session claim (default sid).
	Session string
	JTI     string
	Issuer  string
	// Times in unix milliseconds; zero when the claim is absent.
	IssuedAt  int64
	AuthTime  int64
	ExpiresAt int64
	NotBefore int64
	// Confirmation is cnf.jkt: the thumbprint of the key a DPoP-bound
	// token is bound to.
	Confirmation string
}

// Issued is the moment a subject revocation compares: auth_time when the
// token carries it (a refreshed token of an old login is as old as the
// login), else iat.
func (c *Claims) Issued() int64 {
	if c.AuthTime != 0 {
		return c.AuthTime
	}
	return c.IssuedAt
}

// Identity returns the denylist keys of a token with these claims.
func (c *Claims) Identity(token TokenHash) Identity {
	id := Identity{Token: token.Key(), Issued: c.Issued()}
	if c.JTI != "" {
		id.JTI = JTIKey(c.JTI)
	}
	if c.Subject != "" {
		id.Subject = SubjectKey(c.Subject)
	}
	if c.Session != "" {
		id.Session = SessionKey(c.Subject, c.Session)
		if c.Issuer != "" {
			id.IssuerSession = IssuerSessionKey(c.Issuer, c.Session)
		}
	}
	return id
}

// VerifierConfig configures token verification.
type VerifierConfig struct {
	// HMACSecret verifies HS256/384/512.
	HMACSecret []byte
	// PublicKeys verify RS*, PS*, ES* and EdDSA, by key type.
	PublicKeys []crypto.PublicKey
	// JWKS is a remote key set, looked up by kid.
	JWKS *RemoteKeySet
	// Issuer, when set, must equal iss.
	Issuer string
	// Audience, when set, must share a value with aud.
	Audience []string
	// Algorithms is the allow-list; empty means every algorithm the
	// configured keys can verify. "none" is never allowed.
	Algorithms []string
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway time.Duration
	// SessionClaim names the session claim; default "sid".
	SessionClaim string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Verifier checks JWT signatures and claims.
type Verifier struct {
	cfg    VerifierConfig
	algs   []string
	parser *jwt.Parser
}

var (
	hmacAlgs  = []string{"HS256", "HS384", "HS512"}
	rsaAlgs   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ecAlgs    = map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
	edAlgs    = []string{"EdDSA"}
	knownAlgs = append(append(append(slices.Clone(hmacAlgs), rsaAlgs...), "ES256", "ES384", "ES512"), edAlgs...)
)

// NewVerifier checks the configuration: at least one key, no "none", and
// every allowed algorithm backed by a key that can verify it.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.SessionClaim == "" {
		cfg.SessionClaim = "sid"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.HMACSecret) == 0 && len(cfg.PublicKeys) == 0 && cfg.JWKS == nil {
		return nil, errors.New("no verification key: set hmac_secret, public_key or jwks_url")
	}
	// What the configured keys can verify.
	can := map[string]bool{}
	if len(cfg.HMACSecret) > 0 {
		for _, a := range hmacAlgs {
			can[a] = true
		}
	}
	if cfg.JWKS != nil {
		for _, a := range knownAlgs {
			if !slices.Contains(hmacAlgs, a) {
				can[a] = true
			}
		}
	}
	for _, k := range cfg.PublicKeys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			for _, a := range rsaAlgs {
				can[a] = true
			}
		case *ecdsa.PublicKey:
			can[ecAlgs[k.Curve.Params().Name]] = true
		case ed25519.PublicKey:
			can["EdDSA"] = true
		default:
			return nil, fmt.Errorf("unsupported public key type %T", k)
		}
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		for _, a := range knownAlgs {
			if can[a] {
				algs = append(algs, a)
			}
		}
	}
	for _, a := range algs {
		if strings.EqualFold(a, "none") {
			return nil, errors.New(`algorithm "none" can never be allowed`)
		}
		if !slices.Contains(knownAlgs, a) {
			return nil, fmt.Errorf("unknown algorithm %q (known: %s)", a, strings.Join(knownAlgs, " "))
		}
		if !can[a] {
			return nil, fmt.Errorf("algorithm %s is allowed but no configured key can verify it", a)
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(), // a token issued "in the future" would escape every cutoff
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if len(cfg.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audience...))
	}
	return &Verifier{
		cfg:    cfg,
		algs:   slices.Clone(algs),
		parser: jwt.NewParser(opts...),
	}, nil
}

// Algorithms returns the allow-list in force.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algs) }

// Leeway returns the clock skew tolerated on exp, nbf and iat.
func (v *Verifier) Leeway() time.Duration { return v.cfg.Leeway }

// SessionClaim returns the name of the session claim.
func (v *Verifier) SessionClaim() string { return v.cfg.SessionClaim }

// Verify checks a token's signature, algorithm and claims (exp, nbf, iat,
// iss, aud) and returns its claims. The error wraps ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	mc := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, mc, func(t *jwt.Token) (any, error) {
		return v.keysFor(ctx, t)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	c, err := readClaims(mc, v.cfg.SessionClaim)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return c, nil
}

// Decode reads a JWT's claims without checking anything. The result may
// be forged: use it only to block more, never to allow.
func Decode(raw, sessionClaim string) (*Claims, error) {
	mc := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, mc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return readClaims(mc, sessionClaim)
}

// LooksLikeJWT reports whether raw has the three dot-separated parts of a
// compact JWS, the cheap test before any decoding.
func LooksLikeJWT(raw string) bool { return strings.Count(raw, ".") == 2 }

// keysFor returns the keys that may verify t: only keys of the type its
// algorithm needs, so that an HS256 token can never be checked against a
// public key used as an HMAC secret (algorithm confusion).
func (v *Verifier) keysFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	add := func(k crypto.PublicKey) {
		if keyFits(alg, k) {
			set.Keys = append(set.Keys, k)
		}
	}
	switch {
	case slices.Contains(hmacAlgs, alg):
		if len(v.cfg.HMACSecret) == 0 {
			return nil, errors.New("no hmac secret")
		}
		return v.cfg.HMACSecret, nil
	default:
		for _, k := range v.cfg.PublicKeys {
			add(k)
		}
		if v.cfg.JWKS != nil {
			for _, k := range v.cfg.JWKS.Keys(ctx, kid, alg) {
				add(k)
			}
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no key for alg %s kid %q", alg, kid)
	}
	return set, nil
}

func keyFits(alg string, k crypto.PublicKey) bool {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return slices.Contains(rsaAlgs, alg)
	case *ecdsa.PublicKey:
		return ecAlgs[k.Curve.Params().Name] == alg
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// readClaims extracts Claims; a claim of the wrong JSON type is an error.
func readClaims(mc jwt.MapClaims, sessionClaim string) (*Claims, error) {
	c := &Claims{}
	var err error
	str := func(name string) string {
		v, ok := mc[name]
		if !ok || err != nil {
			return ""
		}
		s, isStr := v.(string)
		if !isStr {
			err = fmt.Errorf("claim %q is not a string", name)
		}
		return s
	}
	c.Subject = str("sub")
	c.Session = str(sessionClaim)
	c.JTI = str("jti")
	c.Issuer = str("iss")
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"iat", &c.IssuedAt}, {"auth_time", &c.AuthTime}, {"exp", &c.ExpiresAt}, {"nbf", &c.NotBefore}} {
		if *f.dst, err = numericDate(mc, f.name); err != nil {
			return nil, err
		}
	}
	if cnf, ok := mc["cnf"]; ok {
		m, isMap := cnf.(map[string]any)
		if !isMap {
			return nil, errors.New(`claim "cnf" is not an object`)
		}
		if jkt, ok := m["jkt"]; ok {
			s, isStr := jkt.(string)
			if !isStr || s == "" {
				return nil, errors.New(`claim "cnf.jkt" is not a non-empty string`)
			}
			c.Confirmation = s
		}
	}
	return c, nil
}

// numericDate reads a NumericDate claim as unix milliseconds.
func numericDate(mc jwt.MapClaims, name string) (int64, error) {
	v, ok := mc[name]
	if !ok || v == nil {
		return 0, nil
	}
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return 0, fmt.Errorf("claim %q: %w", name, err)
		}
	default:
		return 0, fmt.Errorf("claim %q is not a number", name)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return 0, fmt.Errorf("claim %q out of range", name)
	}
	return int64(math.Round(f * 1000)), nil
}
