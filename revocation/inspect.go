package revocation

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// TokenInfo is what the Inspector knows of one raw token: a Credential,
// under the name the guard's code knows it by.
type TokenInfo = Credential

// DefaultCacheSize is how many tokens an Inspector remembers by default.
const DefaultCacheSize = 100_000

// DefaultSessionClaim is the claim that names a token's session unless
// configured otherwise (the OpenID Connect sid).
const DefaultSessionClaim = "sid"

// InspectorConfig configures an Inspector.
type InspectorConfig struct {
	// Verifier checks tokens; nil when no key is configured, in which case
	// only decoded (unverified) claims are available, for blocking.
	Verifier *Verifier
	// SessionClaim names the session claim when there is no Verifier.
	SessionClaim string
	// Store receives notes of the sessions in use.
	Store Store
	// SessionTTL is how long a noted session is remembered.
	SessionTTL time.Duration
	// CacheSize bounds the number of tokens remembered. Default
	// DefaultCacheSize.
	CacheSize int
	// Hasher derives the keys of jtis, sessions and subjects; nil derives
	// them unkeyed.
	Hasher *Hasher
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Inspector answers, per request, whether a credential is revoked. A
// token seen before costs one SHA-256 and a few map lookups; only a new
// token is parsed and verified.
type Inspector struct {
	cfg    InspectorConfig
	shards [cacheShards]cacheShard
	perCap int
}

const (
	cacheShards = 64
	// unverifiedFor bounds how long an unverifiable token's decoded claims
	// are remembered, so that a key that appears later (JWKS rotation)
	// is taken into account soon.
	unverifiedFor = 30
	// noExpiryFor bounds how long a token without exp is remembered.
	noExpiryFor = 600
)

type cacheShard struct {
	mu sync.RWMutex
	t  tokenTable
	_  [8]byte // 64 bytes a shard
}

// shard is the shard that holds cache key ck.
func (in *Inspector) shard(ck *[32]byte) *cacheShard { return &in.shards[ck[0]%cacheShards] }

// get returns what the shard remembers under ck, or nil.
func (s *cacheShard) get(ck *[32]byte) *TokenInfo {
	s.mu.RLock()
	info := s.t.get(ck)
	s.mu.RUnlock()
	return info
}

// NewInspector returns an Inspector with an empty cache.
func NewInspector(cfg InspectorConfig) *Inspector {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionClaim == "" {
		cfg.SessionClaim = DefaultSessionClaim
	}
	if cfg.Verifier != nil {
		cfg.SessionClaim = cfg.Verifier.SessionClaim()
	}
	return &Inspector{cfg: cfg, perCap: max(1, cfg.CacheSize/cacheShards)}
}

// Inspect returns what is known of a raw token, verified when it can be,
// from the cache when it can. The result is shared and must not be
// modified.
func (in *Inspector) Inspect(ctx context.Context, raw string) *TokenInfo {
	return in.InspectAt(ctx, raw, in.cfg.Now().Unix(), true)
}

// InspectAt is Inspect at a time the caller already read (unix seconds),
// to spare the request path a second clock read. With verify false, a
// token not seen before is only decoded: enough to block it, and a token
// that nobody presents as an access token costs no signature check.
func (in *Inspector) InspectAt(ctx context.Context, raw string, now int64, verify bool) *TokenInfo {
	// The cache is keyed by the whole token, signature included: another
	// encoding of a token must be verified on its own, never inherit a
	// verdict. (The denylist key, in info.ID, ignores the encoding.)
	ck := sumString(raw)
	s := in.shard(&ck)
	info := s.get(&ck)
	if info != nil && info.until > now && (info.verifyTried || !verify) {
		return info
	}
	return in.learnAt(ctx, s, &ck, raw, now, verify)
}

// learnAt learns raw, of cache key ck in shard s, and remembers it.
func (in *Inspector) learnAt(ctx context.Context, s *cacheShard, ck *[32]byte, raw string, now int64, verify bool) *TokenInfo {
	info := in.learn(ctx, raw, now, verify)
	s.mu.Lock()
	if s.t.n >= in.perCap && s.t.find(ck) == nil {
		s.t.evict(ck, now)
	}
	s.t.put(ck, info, in.perCap)
	s.mu.Unlock()
	return info
}

// Check is InspectAt followed by dl.CheckInfo, as the guard asks it of
// the credentials a request presents, and verified is info.Verified. A
// token met before and found clean since dl last changed is answered
// from the cache's table alone, without reading info: on the request
// path that read was a cache miss of its own, the largest single cost
// of a repeat request after the table's (see tokenTable).
func (in *Inspector) Check(ctx context.Context, dl *Denylist, raw string, now int64, verify bool) (info *TokenInfo, reason Reason, verified bool) {
	ck := sumString(raw)
	s := in.shard(&ck)
	// Read before the check below, as CheckInfo reads it: an Apply that
	// the check might miss replaces it after its entries.
	e := dl.epoch.Load()
	s.mu.RLock()
	if sl := s.t.find(&ck); sl != nil && sl.until > now && (sl.verifyTried || !verify) {
		if sl.clean(e) {
			info, verified = sl.info, sl.verified
			s.mu.RUnlock()
			return info, NotBlocked, verified
		}
		info = sl.info
	}
	s.mu.RUnlock()
	return in.checkAgain(ctx, dl, s, &ck, info, raw, now, verify, e)
}

// checkAgain is Check for a token not found clean in epoch e: learnt
// first when info is nil (not remembered, or not usable), then checked
// against dl, and marked clean in e when it is. It is out of Check's
// line: a repeat request runs none of it.
//
//go:noinline
func (in *Inspector) checkAgain(ctx context.Context, dl *Denylist, s *cacheShard, ck *[32]byte, info *TokenInfo, raw string, now int64, verify bool, e *epoch) (*TokenInfo, Reason, bool) {
	if info == nil {
		info = in.learnAt(ctx, s, ck, raw, now, verify)
	}
	reason := dl.checkInfoIn(info, now, e)
	if reason == NotBlocked {
		s.mu.RLock()
		if sl := s.t.find(ck); sl != nil && sl.info == info {
			sl.setClean(e)
		}
		s.mu.RUnlock()
	}
	return info, reason, info.Verified
}

// Cached returns what is remembered of a raw token, or nil when nothing
// is (or what is remembered has expired): one hash and one lookup, never
// a decoding. A guard that has spent its decoding budget on a request
// still checks each further JWT it has met before by all its claims.
func (in *Inspector) Cached(raw string, now int64) *TokenInfo {
	ck := sumString(raw)
	info := in.shard(&ck).get(&ck)
	if info == nil || info.until <= now {
		return nil
	}
	return info
}

// learn decodes, and verifies when asked, a token seen for the first
// time (or first seen where it was not verified).
func (in *Inspector) learn(ctx context.Context, raw string, now int64, verify bool) *TokenInfo {
	if !LooksLikeJWT(raw) {
		// Opaque: only its hash matters.
		info := readCredential(raw, &jws{}, nil, false, nil)
		info.until, info.verifyTried = now+noExpiryFor, verify
		return info
	}
	j, isJWT := readJWS(raw)
	if !isJWT {
		// Not a JWT after all: only its hashes matter.
		info := readCredential(raw, &j, nil, false, nil)
		info.until, info.verifyTried = now+unverifiedFor, verify
		return info
	}
	var claims *Claims
	verified := false
	if v := in.cfg.Verifier; v != nil && verify {
		if c, err := v.verify(ctx, raw, &j); err == nil {
			claims, verified = c, true
		}
	}
	if claims == nil {
		claims = decodeClaims(&j, in.cfg.SessionClaim)
	}
	info := readCredential(raw, &j, claims, verified, in.cfg.Hasher)
	info.Claims = nil // the keys are what is remembered
	info.until, info.verifyTried = now+unverifiedFor, verify
	if info.Verified {
		info.until = now + noExpiryFor
		if claims.ExpiresAt != 0 {
			// Verified tokens stay valid for the leeway past exp.
			info.until = int64(ExpiryOf(claims.ExpiresAt + UnixMillis(in.cfg.Verifier.Leeway().Milliseconds())))
		}
		if claims.Subject != "" && claims.Session != "" && in.cfg.Store != nil {
			in.cfg.Store.NoteSession(info.ID.Subject, info.ID.Session, in.cfg.SessionTTL)
		}
	} else if exp := int64(ExpiryOf(claims.ExpiresAt)); claims.ExpiresAt != 0 && exp < info.until && exp > now {
		// Remembered no longer than it lives. One already expired is
		// remembered as it is for unverifiedFor, since it cannot become
		// valid again: forgetting it at once cost each of its requests (a
		// client that keeps sending it) a decoding and a signature check.
		info.until = exp
	}
	return info
}

// CacheLen returns how many tokens are remembered.
func (in *Inspector) CacheLen() int {
	n := 0
	for i := range in.shards {
		s := &in.shards[i]
		s.mu.RLock()
		n += s.t.n
		s.mu.RUnlock()
	}
	return n
}

// sumString is sha256.Sum256 of a string, the cache's key: the whole
// token, with no domain (it is never stored). It hashes the string's own
// bytes: copying them first (domainHash's stack buffer, zeroed in full on
// every call) cost as much as a third of the hash on every request.
// Sum256 only reads its argument.
func sumString(s string) [32]byte {
	return sha256.Sum256(readOnlyBytes(s))
}

// readOnlyBytes is s's own bytes, not a copy: only for a callee that
// reads them and keeps nothing of them (a hash).
func readOnlyBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
