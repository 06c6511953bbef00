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
	IssuedAt  UnixMillis
	AuthTime  UnixMillis
	ExpiresAt UnixMillis
	NotBefore UnixMillis
	// Confirmation is cnf.jkt: the thumbprint of the key a DPoP-bound
	// token is bound to.
	Confirmation string

	// Alternates are other readings of an ambiguous payload (a claim
	// given twice, or under a name that Go's encoding/json folds onto it,
	// such as "SUB"): some library reads each of them, so each blocks.
	AltSubjects, AltSessions, AltJTIs []string
	// EarliestIssued is the earliest issue time among all readings,
	// which a subject cutoff compares (zero: unknown).
	EarliestIssued UnixMillis

	badCnf bool // cnf or cnf.jkt present but not usable
}

// Issued is the moment a subject revocation compares: auth_time when the
// token carries it (a refreshed token of an old login is as old as the
// login), else iat.
func (c *Claims) Issued() UnixMillis {
	if c.AuthTime != 0 {
		return c.AuthTime
	}
	return c.IssuedAt
}

// maxAlternates bounds the readings of an ambiguous payload that count.
const maxAlternates = 4

// Identity returns the denylist keys of a token with these claims: its
// exact token hash, and the jti, session and subject of every reading,
// unkeyed (Hasher.Identity keys them).
func (c *Claims) Identity(token TokenHash) Identity { return c.identity(token, nil) }

// identity derives the identities with h (nil: unkeyed).
func (c *Claims) identity(token TokenHash, h *Hasher) Identity {
	id := Identity{Token: token.Key(), Issued: c.Issued()}
	if c.EarliestIssued != 0 && (id.Issued == 0 || c.EarliestIssued < id.Issued) {
		id.Issued = c.EarliestIssued
	}
	if c.JTI != "" {
		id.JTI = h.JTI(c.JTI)
	}
	if c.Subject != "" {
		id.Subject = h.Subject(c.Subject)
	}
	if c.Session != "" {
		id.Session = h.Session(c.Subject, c.Session)
		if c.Issuer != "" {
			id.IssuerSession = h.IssuerSession(c.Issuer, c.Session)
		}
	}
	for _, j := range c.AltJTIs {
		id.Alt = append(id.Alt, h.JTI(j))
	}
	subjects := append([]string{c.Subject}, c.AltSubjects...)
	sessions := append([]string{c.Session}, c.AltSessions...)
	for i, sub := range subjects {
		if i > 0 && sub != "" {
			id.AltSubjects = append(id.AltSubjects, h.Subject(sub))
		}
		for j, sid := range sessions {
			if (i > 0 || j > 0) && sid != "" {
				id.Alt = append(id.Alt, h.Session(sub, sid))
			}
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
	// SessionClaim names the session claim; default DefaultSessionClaim.
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
		cfg.SessionClaim = DefaultSessionClaim
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
	j, ok := readJWS(raw)
	if !ok {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrInvalidToken)
	}
	return v.verify(ctx, raw, &j)
}

// verify is Verify of a token already read as j.
func (v *Verifier) verify(ctx context.Context, raw string, j *jws) (*Claims, error) {
	_, err := v.parser.ParseWithClaims(raw, jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
		return v.keysFor(ctx, t)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	c := decodeClaims(j, v.cfg.SessionClaim)
	if c.badCnf {
		return nil, fmt.Errorf(`%w: claim "cnf" must be an object whose jkt is a non-empty string`, ErrInvalidToken)
	}
	return c, nil
}

// Decode reads a JWT's claims without checking anything, as leniently as
// the most lenient mainstream library (see jws.go): the result may be
// forged and may hold several readings, so use it only to block more,
// never to allow. Claims of an unexpected type are read as apps read them
// (a numeric sub as its decimal text) or left out; they never make the
// whole token unreadable. The error wraps ErrInvalidToken when raw has no
// payload that is a JSON object.
func Decode(raw, sessionClaim string) (*Claims, error) {
	j, ok := readJWS(raw)
	if !ok {
		return nil, fmt.Errorf("%w: not three dot-separated parts with a base64 payload", ErrInvalidToken)
	}
	if _, ok := readPayload(j.payload); !ok {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrInvalidToken)
	}
	return decodeClaims(&j, sessionClaim), nil
}

// decodeClaims reads the claims of a token read as j (see Decode). A
// payload that is not a JSON object gives no claims.
func decodeClaims(j *jws, sessionClaim string) *Claims {
	names := []string{"sub", sessionClaim, "jti", "iss", "iat", "auth_time", "exp", "nbf", "cnf"}
	cr, _ := readPayload(j.payload, names...)
	var acr claimReadings
	if j.payloadAlt != nil {
		acr, _ = readPayload(j.payloadAlt, names...)
	}
	readings := func(name string) []string {
		vals := cr.strings(name)
		for _, v := range acr.strings(name) {
			if !slices.Contains(vals, v) {
				vals = append(vals, v)
			}
		}
		return vals
	}
	first := func(vals []string) (string, []string) {
		if len(vals) == 0 {
			return "", nil
		}
		return vals[0], capped(vals[1:])
	}
	c := &Claims{}
	c.Subject, c.AltSubjects = first(readings("sub"))
	c.Session, c.AltSessions = first(readings(sessionClaim))
	c.JTI, c.AltJTIs = first(readings("jti"))
	if iss := cr.strings("iss"); len(iss) > 0 { // the primary reading
		c.Issuer = iss[0]
	}
	for _, f := range []struct {
		name string
		dst  *UnixMillis
	}{{"iat", &c.IssuedAt}, {"auth_time", &c.AuthTime}, {"exp", &c.ExpiresAt}, {"nbf", &c.NotBefore}} {
		vals := cr[f.name]
		if len(vals) > 0 {
			*f.dst = numericDate(vals[len(vals)-1])
		}
	}
	// The earliest issue time of any reading: a subject cutoff must stop
	// the token if any library would see it as issued before the cutoff.
	for _, name := range []string{"iat", "auth_time"} {
		for _, v := range cr[name] {
			if t := numericDate(v); t != 0 && (c.EarliestIssued == 0 || t < c.EarliestIssued) {
				c.EarliestIssued = t
			}
		}
	}
	if vals := cr["cnf"]; len(vals) > 0 {
		var cnf map[string]json.RawMessage
		if json.Unmarshal(vals[len(vals)-1], &cnf) != nil {
			c.badCnf = true
		} else if jkt, ok := cnf["jkt"]; ok {
			if json.Unmarshal(jkt, &c.Confirmation) != nil || c.Confirmation == "" {
				c.badCnf = true
			}
		}
	}
	return c
}

func capped(vals []string) []string {
	if len(vals) > maxAlternates {
		vals = vals[:maxAlternates]
	}
	return vals
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

// numericDate reads a NumericDate claim as unix milliseconds; zero when
// it is not a usable number (an unknown issue time is blocked by every
// subject cutoff, an unknown expiry bounds nothing).
func numericDate(v json.RawMessage) UnixMillis {
	var n json.Number
	if json.Unmarshal(v, &n) != nil {
		var s string // some issuers write "1700000000"
		if json.Unmarshal(v, &s) != nil {
			return 0
		}
		n = json.Number(s)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return 0
	}
	return UnixMillis(math.Round(f * 1000))
}
