package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

func TestReadiness(t *testing.T) {
	cases := []struct {
		name       string
		h          revocation.Health
		stale      time.Duration
		staleAfter time.Duration
		ready      bool
		reason     string
	}{
		{"embedded", revocation.Health{Store: "embedded", Loaded: true, Connected: true}, 0, 30 * time.Second, true, ""},
		{"redis current", revocation.Health{Store: "redis", Loaded: true, Connected: true}, time.Second, 30 * time.Second, true, ""},
		{"never loaded", revocation.Health{Store: "redis"}, 1 << 62, 30 * time.Second, false, "denylist not loaded yet"},
		{"loading", revocation.Health{Store: "redis", Connected: true, Load: &revocation.LoadProgress{Entries: 420, Expected: 1000}}, 1 << 62, 30 * time.Second, false, "denylist loading: 420 entries read of at most 1000"},
		{"loading, size unknown", revocation.Health{Store: "redis", Connected: true, Load: &revocation.LoadProgress{}}, 1 << 62, 30 * time.Second, false, "denylist loading: 0 entries read"},
		{"reloading: the local copy still serves", revocation.Health{Store: "redis", Loaded: true, Connected: true, Load: &revocation.LoadProgress{Entries: 5}}, time.Second, 30 * time.Second, true, ""},
		{"never loaded, with the error", revocation.Health{Store: "redis", LastError: "initial load: dial tcp: refused"}, 1 << 62, 30 * time.Second, false, "denylist not loaded yet: initial load: dial tcp: refused"},
		{"unreachable for a moment: still current", revocation.Health{Store: "redis", Loaded: true, LastError: "follow feed: EOF"}, time.Second, 30 * time.Second, true, ""},
		{"unreachable and stale", revocation.Health{Store: "redis", Loaded: true, LastError: "follow feed: EOF"}, 31 * time.Second, 30 * time.Second, false, "denylist not confirmed current for 31s (stale_after 30s); store unreachable: follow feed: EOF"},
		{"stale", revocation.Health{Store: "redis", Loaded: true, Connected: true}, 31 * time.Second, 30 * time.Second, false, "denylist not confirmed current for 31s (stale_after 30s)"},
		{"stale_after off", revocation.Health{Store: "redis", Loaded: true, Connected: true}, time.Hour, 0, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ready, reason := readiness(c.h, c.stale, c.staleAfter)
			if ready != c.ready || reason != c.reason {
				t.Fatalf("readiness = %v %q, want %v %q", ready, reason, c.ready, c.reason)
			}
			if !ready && strings.TrimSpace(reason) == "" {
				t.Fatal("not ready without a reason")
			}
		})
	}
}
