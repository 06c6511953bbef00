package revocation

import (
	"context"
	"errors"
	"time"
)

// Put asks a store to write one plain (token, jti or session) entry.
type Put struct {
	Key Key
	// Expires is when the entry stops mattering, in unix seconds. Zero
	// means TTL from the store's clock.
	Expires UnixSeconds
	// TTL applies when Expires is zero.
	TTL time.Duration
}

// SubjectCut asks a store to revoke a subject's tokens issued at or before
// the store's clock, and every session of the subject it has seen, except
// the kept session when there is one.
type SubjectCut struct {
	Subject Key
	// Keep is the session spared ("others"); zero spares none ("all").
	Keep Key
	// TTL is how long the subject entry and the session entries it writes
	// are kept.
	TTL time.Duration
	// At, in unix milliseconds, is the cutoff when it is set and earlier
	// than the store's clock: an identity provider's event says when the
	// subject's sessions ended, and a replayed event then cuts nothing new.
	At UnixMillis
	// Unkeyed and UnkeyedKeep are the unkeyed forms of Subject and Keep
	// while unkeyed entries are checked (see Hasher): the sessions noted
	// under the unkeyed subject (by replicas before the key) are revoked
	// by name too, but for UnkeyedKeep. Zero: none. The embedded store
	// ignores them: it never holds notes from before the key.
	Unkeyed, UnkeyedKeep Key
}

// GlobalCut asks a store to revoke every token of every subject issued
// at or before a moment: the global cutoff, one entry however many
// subjects there are.
type GlobalCut struct {
	// Before is the cutoff in unix milliseconds; zero means the store's
	// clock, as a SubjectCut uses.
	Before UnixMillis
	// TTL is how long the entry is kept, from the store's clock.
	TTL time.Duration
}

// Change is one revocation: every entry it writes, applied all at once or
// not at all.
type Change struct {
	Puts    []Put
	Subject *SubjectCut
	// Subjects are further subject cuts, applied after Subject in order
	// (bulk revocations).
	Subjects []SubjectCut
	Global   *GlobalCut
}

// cuts returns every subject cut of the change, in order.
func (c *Change) cuts() []SubjectCut {
	if c.Subject == nil {
		return c.Subjects
	}
	return append([]SubjectCut{*c.Subject}, c.Subjects...)
}

// Result says what a committed change did.
type Result struct {
	// Existed[i] reports whether the entry of Puts[i] was already live.
	Existed []bool
	// Entries are the entries written, as the store merged them.
	Entries []Entry
	// Time is the store's clock at the change, in unix milliseconds; for a
	// subject revocation it is the cutoff.
	Time UnixMillis
}

// StoreKind names what keeps a store's revocations. Its values are the
// words the status API, the metrics' store label and the logs use.
type StoreKind string

// The kinds of store.
const (
	// StoreEmbedded keeps the denylist in this process only.
	StoreEmbedded StoreKind = "embedded"
	// StoreRedis keeps it in Redis, shared by every replica.
	StoreRedis StoreKind = "redis"
)

// Shared reports whether other replicas write the store too, so that its
// local copy is confirmed current only now and then (and can be stale);
// an embedded store is its own truth.
func (k StoreKind) Shared() bool { return k != StoreEmbedded }

// String returns the kind's word.
func (k StoreKind) String() string { return string(k) }

// Health describes how far the local copy of a store can be trusted.
type Health struct {
	// Store says what keeps the revocations.
	Store StoreKind
	// Loaded is true once the local copy has been loaded in full.
	Loaded bool
	// Connected is true while the backing service answers.
	Connected bool
	// Confirmed is the last moment the local copy was known to hold every
	// revocation. The embedded store is always current.
	Confirmed time.Time
	// LastError is the most recent store error, empty when healthy.
	LastError string
	// Load is the progress of a full load under way, nil when none is.
	Load *LoadProgress
	// Memory is how the local copy stands against its memory budget,
	// nil when there is none.
	Memory *BudgetStatus
	// LoadedFrom says where the last full load of a shared store's local
	// copy read: "snapshot", "compact snapshot", "keys", or "carried"
	// (taken over from the store it replaced at a reload); empty before
	// the first.
	LoadedFrom string
}

// LoadProgress describes a full load of the local copy under way.
type LoadProgress struct {
	// Entries is how many entries it has read so far.
	Entries int64
	// Expected is an upper estimate of how many it will read (the
	// snapshot's records, or the entries the expiry buckets count plus
	// every other key of the database when it began); zero when unknown.
	Expected int64
	// Started is when it began.
	Started time.Time
}

// ErrUnavailable is returned (wrapped) when the store cannot be reached.
var ErrUnavailable = errors.New("revocation store unavailable")

// Store keeps the denylist. Every store has a local copy in memory, the
// Denylist that the request path reads; a shared store also keeps that
// copy current with what every other replica revokes.
type Store interface {
	// Denylist returns the local copy.
	Denylist() *Denylist
	// Commit applies a change atomically. When it returns nil, the change
	// is durable in the store and already visible in the local copy.
	Commit(ctx context.Context, c Change) (Result, error)
	// NoteSession records that a session of a subject is in use, so that a
	// later SubjectCut revokes it by name and stops its future tokens too.
	// It is asynchronous and best effort: it never blocks a request.
	NoteSession(subject, session Key, ttl time.Duration)
	// SessionSeen reports whether a session of a subject has been noted
	// (and not expired) by any replica: a caller may name only such a
	// session, so that naming random ones cannot fill the store.
	SessionSeen(ctx context.Context, subject, session Key) (bool, error)
	// Remember stores key for ttl and reports whether it was absent, for
	// one-time values such as DPoP proof jtis.
	Remember(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Claim stores value under key for ttl unless the key holds a value
	// already, and returns the value it holds afterwards: value itself
	// when this call claimed it, else the earlier holder's. A one-time id
	// (an event's jti) is bound so to the content first seen with it.
	Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error)
	// Health reports on the local copy.
	Health() Health
	// Staleness is how long ago the local copy was last confirmed to hold
	// every revocation: zero for the embedded store, very long for a store
	// that has not loaded yet. It is cheap enough for every request.
	Staleness(now time.Time) time.Duration
	// Close stops background work and releases connections.
	Close() error
}

// every calls f every d until ctx is done.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// expiresIn is the expiry of an entry kept for ttl from now (unix
// seconds): ttl rounded up to whole seconds, at least one.
func expiresIn(now int64, ttl time.Duration) UnixSeconds {
	return UnixSeconds(now + ttlSeconds(ttl))
}

// ttlSeconds rounds a TTL up to whole seconds, at least one.
func ttlSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
