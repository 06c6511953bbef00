package revocation

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Entry is one denylist entry as stores write it and the change feed
// carries it. Its kind is its key's kind.
type Entry struct {
	Key Key
	// Expires is when the entry can no longer matter, in unix seconds: a
	// token entry when the token expires, a session or subject entry after
	// the session TTL.
	Expires UnixSeconds

	// The fields below are meaningful for subject entries, and Cutoff for
	// the global entry too (which keeps no session).

	// Cutoff, in unix milliseconds: the subject's tokens issued at or
	// before it are revoked.
	Cutoff UnixMillis
	// Keep is the session an "others" revocation spared (zero: none).
	Keep Key
	// KeepFloor, in unix milliseconds: tokens of the kept session issued at
	// or before it are revoked all the same, because an earlier revocation
	// that did not spare that session already covered them.
	KeepFloor UnixMillis
}

// Kind returns the entry's kind.
func (e Entry) Kind() Kind { return e.Key.Kind() }

// liveAt reports whether the entry still matters at now (unix seconds).
func (e *Entry) liveAt(now int64) bool { return int64(e.Expires) > now }

// Value encodes everything but the key, as stored in Redis.
func (e Entry) Value() string {
	if !e.Kind().hasCutoff() {
		return strconv.FormatInt(int64(e.Expires), 10)
	}
	keep := "-"
	if !e.Keep.IsZero() {
		keep = e.Keep.String()
	}
	return fmt.Sprintf("%d:%d:%s:%d", e.Expires, e.Cutoff, keep, e.KeepFloor)
}

// hasCutoff reports whether entries of the kind carry a cutoff (and the
// subject entry's other fields) in their value.
func (k Kind) hasCutoff() bool { return k == KindSubject || k == KindGlobal }

// Record encodes the entry as one change-feed record, "<key>=<value>".
func (e Entry) Record() string { return e.Key.String() + "=" + e.Value() }

// ParseEntry decodes an entry from its key and Value form.
func ParseEntry(k Key, value string) (Entry, error) {
	e := Entry{Key: k}
	if !k.Kind().hasCutoff() {
		exp, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return e, fmt.Errorf("entry %s: expiry %q: %w", k, value, err)
		}
		e.Expires = UnixSeconds(exp)
		return e, nil
	}
	parts := strings.Split(value, ":")
	if len(parts) != 4 {
		return e, fmt.Errorf("entry %s: subject value %q: want 4 fields", k, value)
	}
	exp, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return e, fmt.Errorf("entry %s: expiry: %w", k, err)
	}
	e.Expires = UnixSeconds(exp)
	cutoff, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return e, fmt.Errorf("entry %s: cutoff: %w", k, err)
	}
	e.Cutoff = UnixMillis(cutoff)
	if parts[2] != "-" {
		if k.Kind() != KindSubject {
			return e, fmt.Errorf("entry %s: a %s entry keeps no session", k, k.Kind())
		}
		if e.Keep, err = ParseKey(parts[2]); err != nil {
			return e, fmt.Errorf("entry %s: kept session: %w", k, err)
		}
		if e.Keep.Kind() != KindSession {
			return e, fmt.Errorf("entry %s: kept key is a %s key", k, e.Keep.Kind())
		}
	}
	floor, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return e, fmt.Errorf("entry %s: keep floor: %w", k, err)
	}
	e.KeepFloor = UnixMillis(floor)
	return e, nil
}

// ParseRecord decodes one change-feed record.
func ParseRecord(rec string) (Entry, error) {
	ks, v, ok := strings.Cut(rec, "=")
	if !ok {
		return Entry{}, fmt.Errorf("feed record %q: missing '='", rec)
	}
	k, err := ParseKey(ks)
	if err != nil {
		return Entry{}, fmt.Errorf("feed record: %w", err)
	}
	return ParseEntry(k, v)
}

// ParseRecords decodes a space-separated list of change-feed records. It
// returns every record it can read, and an error naming the others, so
// that one record a reader cannot parse does not cost the rest.
func ParseRecords(s string) ([]Entry, error) {
	fields := strings.Fields(s)
	out := make([]Entry, 0, len(fields))
	var errs []error
	for _, f := range fields {
		e, err := ParseRecord(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

// cutSubject is the rule of a subject cut: it merges a new subject
// revocation e (no keep floor yet) into the live one before it, in store
// order. The cutoff never moves back. A kept session stays revoked for
// tokens the earlier revocation covered, unless the earlier revocation
// kept that same session too (absorb). The commit script in lua.go is its
// mirror; TestStoreCutsMergeByOneRule holds both stores to it.
func cutSubject(old, e Entry) Entry {
	e.Cutoff = max(e.Cutoff, old.Cutoff)
	return absorb(e, old)
}

// mergeGlobal is the rule of the global cutoff: the later cutoff and the
// later expiry of two global entries, in either order. The commit script
// mirrors it for a new global cut; the local copy merges with it
// whatever order entries reach it in.
func mergeGlobal(a, b Entry) Entry {
	later := a
	if b.Cutoff > a.Cutoff {
		later = b
	}
	return Entry{Key: later.Key, Expires: max(a.Expires, b.Expires), Cutoff: later.Cutoff}
}

// mergeSubject combines two subject entries for the same subject into the
// one that blocks at least what either blocks. Stores always merge a new
// subject revocation with the one before it, so the entry with the later
// cutoff already contains the earlier one; only a tie (two revocations in
// the same millisecond, seen in either order) needs a conservative join:
// it spares a session only if both spared it. The result does not depend
// on the order of a and b.
func mergeSubject(a, b Entry) Entry {
	switch {
	case a.Cutoff > b.Cutoff:
		return absorb(a, b)
	case b.Cutoff > a.Cutoff:
		return absorb(b, a)
	}
	out := a
	out.Expires = max(a.Expires, b.Expires)
	out.KeepFloor = max(a.KeepFloor, b.KeepFloor)
	if a.Keep != b.Keep {
		out.Keep = Key{}
		out.KeepFloor = 0
	}
	return out
}

// absorb merges an earlier subject entry into a later one. The later one
// normally already contains the earlier (the store merged them in order),
// but not when the store lost the earlier one (Redis restarted without
// persistence, or failed over before replicating it): then the kept
// session's floor must still cover what the earlier entry blocked. It is
// also the second half of cutSubject.
func absorb(later, earlier Entry) Entry {
	later.Expires = max(later.Expires, earlier.Expires)
	if !later.Keep.IsZero() {
		floor := earlier.Cutoff
		if earlier.Keep == later.Keep {
			floor = earlier.KeepFloor
		}
		later.KeepFloor = max(later.KeepFloor, floor)
	}
	return later
}
