package revocation

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// MinHashKeyLen is the shortest hash key accepted: the key is what keeps
// a list of user names from naming the revoked ones, so it must not be
// guessable.
const MinHashKeyLen = 16

// ErrHashKeyMismatch is returned when the identities in a store were
// written under another hash key than this replica's (or under one while
// this replica has none): such a replica would compute keys nobody
// wrote, and silently let every jti, session and subject revocation
// through.
var ErrHashKeyMismatch = errors.New("hash_key does not match the store's")

// Hasher derives the denylist keys of identities (jti, session, issuer
// session, subject). A nil Hasher derives them unkeyed, as every
// release before hash_key did: a domain-separated SHA-256 that anyone
// holding a candidate name can recompute. A keyed one uses HMAC-SHA256
// under a secret shared by the replicas, so that reading Redis no longer
// tells whether a known name was revoked.
//
// Token keys are never keyed: a token is itself a secret of high
// entropy, and its hash prefix is what logs, audit records and the
// explain command show to correlate a request.
//
// While a store still holds unkeyed identity entries (written before the
// key was set, or by replicas of an older build during a rolling
// upgrade), a keyed Hasher also gives the unkeyed form of each identity
// a request carries, so those entries keep blocking until they expire.
type Hasher struct {
	secret []byte
	// macs holds HMAC states keyed with secret, reset between uses: a
	// new one costs some thirty allocations.
	macs sync.Pool
	fp   string
	now  func() time.Time
	// since is when the store first saw this key over existing unkeyed
	// entries, in unix seconds: 0 when it never held any, -1 until the
	// store has been asked (unkeyed forms are then checked, to be safe).
	since atomic.Int64
	// window is how long after since unkeyed entries can live.
	window atomic.Int64
}

// NewHasher returns a Hasher keyed with secret, which must be at least
// MinHashKeyLen bytes.
func NewHasher(secret []byte) (*Hasher, error) {
	if len(secret) < MinHashKeyLen {
		return nil, fmt.Errorf("hash_key: %d bytes: want at least %d (32 random bytes, base64-encoded, are a good choice)", len(secret), MinHashKeyLen)
	}
	h := &Hasher{secret: append([]byte(nil), secret...), now: time.Now}
	h.macs.New = func() any { return hmac.New(sha256.New, h.secret) }
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte("caddy-revocation/hash-key-fingerprint\x00"))
	h.fp = hex.EncodeToString(m.Sum(nil)[:8])
	h.since.Store(-1)
	h.window.Store(int64(DefaultUnkeyedWindow / time.Second))
	return h, nil
}

// DefaultUnkeyedWindow is how long, after a key is first used on a store
// that held unkeyed entries, unkeyed identity forms are still checked:
// the longest default life of a session or subject entry (720h) and a
// day for the rolling upgrade during which older replicas still write
// them.
const DefaultUnkeyedWindow = 720*time.Hour + 24*time.Hour

// Keyed reports whether h derives keyed identities.
func (h *Hasher) Keyed() bool { return h != nil }

// Fingerprint identifies the key without revealing it (the first 8 bytes
// of an HMAC of a fixed label, in hex); empty for an unkeyed Hasher. It
// is stored in Redis, so that a replica configured with another key
// refuses to run instead of missing revocations.
func (h *Hasher) Fingerprint() string {
	if h == nil {
		return ""
	}
	return h.fp
}

// SetUnkeyedWindow sets how long after the key's first use over unkeyed
// entries those entries are still checked: the longest life of an
// identity entry (session_ttl) plus the time a rolling upgrade may take.
func (h *Hasher) SetUnkeyedWindow(d time.Duration) {
	if h != nil && d > 0 {
		h.window.Store(int64((d + time.Second - 1) / time.Second))
	}
}

// setSince records when the store first saw the key over unkeyed
// entries (0: it never held any).
func (h *Hasher) setSince(since int64) {
	if h != nil {
		h.since.Store(since)
	}
}

// SetUnkeyedSince records when the key was first used over a store that
// held unkeyed entries; the zero time says it never held any (a store
// that starts empty, as the embedded one does).
func (h *Hasher) SetUnkeyedSince(t time.Time) {
	if t.IsZero() {
		h.setSince(0)
		return
	}
	h.setSince(max(t.Unix(), 1))
}

// ChecksUnkeyed reports whether the unkeyed forms of identities are
// still checked: the key is set, and unkeyed entries may be live.
func (h *Hasher) ChecksUnkeyed() bool {
	if h == nil {
		return false
	}
	since := h.since.Load()
	if since < 0 {
		return true
	}
	return since > 0 && h.now().Unix() < since+h.window.Load()
}

// UnkeyedUntil returns when unkeyed identity entries stop being checked:
// zero when they never are, or when the store has not said yet.
func (h *Hasher) UnkeyedUntil() time.Time {
	if h == nil {
		return time.Time{}
	}
	since := h.since.Load()
	if since <= 0 {
		return time.Time{}
	}
	return time.Unix(since+h.window.Load(), 0)
}

// JTI returns the denylist key of a jti (see JTIKey).
func (h *Hasher) JTI(jti string) Key { return h.derive(KindJTI, jti, "") }

// Session returns the denylist key of a session of a subject (see
// SessionKey).
func (h *Hasher) Session(subject, sid string) Key { return h.derive(KindSession, subject, sid) }

// IssuerSession returns the denylist key of an issuer's session (see
// IssuerSessionKey).
func (h *Hasher) IssuerSession(issuer, sid string) Key {
	k := h.derive(issuerSessionDomain, issuer, sid)
	k[15] = byte(KindSession)
	return k
}

// Subject returns the denylist key of a subject (see SubjectKey).
func (h *Hasher) Subject(subject string) Key { return h.derive(KindSubject, subject, "") }

// derive is the keyed form of the package's derive: the same framing,
// under HMAC instead of a bare SHA-256.
func (h *Hasher) derive(kind Kind, a, b string) Key {
	if h == nil {
		return derive(kind, a, b)
	}
	m := h.macs.Get().(hash.Hash)
	m.Reset()
	hdr := deriveHeader(kind, a, b)
	m.Write(hdr[:])
	io.WriteString(m, a)
	io.WriteString(m, b)
	var sum [32]byte
	m.Sum(sum[:0])
	h.macs.Put(m)
	var k Key
	copy(k[:15], sum[:15])
	k[15] = byte(kind)
	return k
}

// Identity returns the denylist keys of a token with claims c (see
// Claims.Identity), keyed by h; while unkeyed entries may be live, the
// unkeyed forms of its identities are checked too, as alternates.
func (h *Hasher) Identity(c *Claims, token TokenHash) Identity {
	id := c.identity(token, h)
	if h == nil || !h.ChecksUnkeyed() {
		return id
	}
	u := c.identity(token, nil)
	for _, k := range []Key{u.JTI, u.Session, u.IssuerSession} {
		if !k.IsZero() {
			id.Alt = append(id.Alt, k)
		}
	}
	id.Alt = append(id.Alt, u.Alt...)
	if !u.Subject.IsZero() {
		id.AltSubjects = append(id.AltSubjects, u.Subject)
	}
	id.AltSubjects = append(id.AltSubjects, u.AltSubjects...)
	id.UnkeyedSession = u.Session
	return id
}

// The record of the key in Redis: "v1:<fingerprint>:<since>", where since
// is when the first keyed replica found unkeyed entries there (unix
// seconds; 0 when it found none). It is the one key that never expires:
// a few bytes that must outlive every entry.
const hashKeyRecordVersion = "v1"

// checkHashKey compares the store's record of the hash key with h's
// fingerprint, writing the record when a keyed replica is the first to
// ask, and tells h since when unkeyed entries may be live. It fails with
// ErrHashKeyMismatch when the two differ, or when the store is keyed and
// h is not.
func checkHashKey(ctx context.Context, c redis.UniversalClient, base string, h *Hasher, now time.Time) error {
	name := base + "hashkey"
	cur, err := c.Get(ctx, name).Result()
	if errors.Is(err, redis.Nil) {
		if h == nil {
			return nil
		}
		// A store with a feed or entries already holds unkeyed ones
		// (written by replicas before the key, perhaps still running).
		n, err := c.Exists(ctx, base+"feed", base+"ebuckets", base+"snap").Result()
		if err != nil {
			return fmt.Errorf("hash key record: %w: %w", ErrUnavailable, err)
		}
		since := int64(0)
		if n > 0 {
			since = now.Unix()
		}
		rec := hashKeyRecordVersion + ":" + h.fp + ":" + strconv.FormatInt(since, 10)
		if _, err := c.SetNX(ctx, name, rec, 0).Result(); err != nil {
			return fmt.Errorf("hash key record: %w: %w", ErrUnavailable, err)
		}
		// Another replica may have written it first: read what won.
		if cur, err = c.Get(ctx, name).Result(); err != nil {
			return fmt.Errorf("hash key record: %w: %w", ErrUnavailable, err)
		}
	} else if err != nil {
		return fmt.Errorf("hash key record: %w: %w", ErrUnavailable, err)
	}
	fp, since, err := parseHashKeyRecord(cur)
	if err != nil {
		return fmt.Errorf("hash key record %s: %w", name, err)
	}
	if h == nil {
		return fmt.Errorf("%w: the identities in Redis (%s) are keyed with hash_key fingerprint %s, and this replica has no hash_key: configure the same hash_key as the other replicas", ErrHashKeyMismatch, base, fp)
	}
	if subtle.ConstantTimeCompare([]byte(fp), []byte(h.fp)) != 1 {
		return fmt.Errorf("%w: the identities in Redis (%s) are keyed with hash_key fingerprint %s, this replica's is %s: every replica must share one hash_key", ErrHashKeyMismatch, base, fp, h.fp)
	}
	h.setSince(since)
	return nil
}

func parseHashKeyRecord(s string) (fp string, since int64, err error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 || parts[0] != hashKeyRecordVersion || len(parts[1]) != 16 {
		return "", 0, fmt.Errorf("%q: want %s:<16 hex digits>:<unix seconds>", s, hashKeyRecordVersion)
	}
	since, err = strconv.ParseInt(parts[2], 10, 64)
	if err != nil || since < 0 {
		return "", 0, fmt.Errorf("%q: bad time", s)
	}
	return parts[1], since, nil
}
