package revocation

import "time"

// Times carry their unit in their type, so that a field family never
// mixes seconds and milliseconds unseen: entries expire in whole seconds
// (what Redis's EXAT and the denylist's tables hold), while issue times,
// cutoffs and a token's exp claim are kept to the millisecond (two
// revocations a few milliseconds apart must stay ordered). The wire
// forms, in Redis and in snapshots, are the same integers as before.

// UnixSeconds is a moment in whole seconds since 1970 (UTC).
type UnixSeconds int64

// UnixMillis is a moment in milliseconds since 1970 (UTC).
type UnixMillis int64

// SecondsOf returns t in whole seconds, rounded down: a clock reading.
func SecondsOf(t time.Time) UnixSeconds { return UnixSeconds(t.Unix()) }

// MillisOf returns t in milliseconds, rounded down: a clock reading.
func MillisOf(t time.Time) UnixMillis { return UnixMillis(t.UnixMilli()) }

// ExpiryOf is the one rounding of an expiry: the first whole second at or
// after ms, so that an entry for a token that expires at ms outlives it.
func ExpiryOf(ms UnixMillis) UnixSeconds {
	if ms <= 0 {
		return UnixSeconds(ms / 1000)
	}
	return UnixSeconds((ms + 999) / 1000)
}

// ExpiryOfTime is ExpiryOf for a time.Time: the first whole second at or
// after t.
func ExpiryOfTime(t time.Time) UnixSeconds {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return UnixSeconds(s)
}

// Millis returns the moment in milliseconds.
func (s UnixSeconds) Millis() UnixMillis { return UnixMillis(s) * 1000 }

// Time returns the moment as a time.Time.
func (s UnixSeconds) Time() time.Time { return time.Unix(int64(s), 0) }

// Time returns the moment as a time.Time.
func (ms UnixMillis) Time() time.Time { return time.UnixMilli(int64(ms)) }
