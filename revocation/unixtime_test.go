package revocation

import (
	"testing"
	"time"
)

// An entry for a token must outlive the token: its expiry is the token's
// rounded up to the whole second, never down, whichever form it comes in.
func TestExpiryRoundsUpToTheSecond(t *testing.T) {
	for _, c := range []struct {
		ms   UnixMillis
		want UnixSeconds
	}{{1_800_000_000_000, 1_800_000_000}, {1_800_000_000_001, 1_800_000_001}, {1_800_000_000_999, 1_800_000_001}, {1, 1}, {0, 0}} {
		if got := ExpiryOf(c.ms); got != c.want {
			t.Errorf("ExpiryOf(%d) = %d, want %d", c.ms, got, c.want)
		}
		if got := ExpiryOfTime(c.ms.Time()); got != c.want {
			t.Errorf("ExpiryOfTime(%v) = %d, want %d", c.ms.Time(), got, c.want)
		}
	}
	if got := ExpiryOfTime(time.Unix(1_800_000_000, 1)); got != 1_800_000_001 {
		t.Errorf("a nanosecond past the second: %d, want the next second", got)
	}
}
