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
		failOpen   bool
	}{
		{"embedded", revocation.Health{Store: "embedded", Loaded: true, Connected: true}, 0, 30 * time.Second, true, "", false},
		{"redis current", revocation.Health{Store: "redis", Loaded: true, Connected: true}, time.Second, 30 * time.Second, true, "", false},
		{"never loaded", revocation.Health{Store: "redis"}, 1 << 62, 30 * time.Second, false, "denylist not loaded yet", false},
		{"never loaded, with the error", revocation.Health{Store: "redis", LastError: "initial load: dial tcp: refused"}, 1 << 62, 30 * time.Second, false, "denylist not loaded yet: initial load: dial tcp: refused", false},
		{"unreachable for a moment: still current", revocation.Health{Store: "redis", Loaded: true, LastError: "follow feed: EOF"}, time.Second, 30 * time.Second, true, "", false},
		{"unreachable and stale", revocation.Health{Store: "redis", Loaded: true, LastError: "follow feed: EOF"}, 31 * time.Second, 30 * time.Second, false, "denylist not confirmed current for 31s (stale_after 30s); store unreachable: follow feed: EOF", false},
		{"stale", revocation.Health{Store: "redis", Loaded: true, Connected: true}, 31 * time.Second, 30 * time.Second, false, "denylist not confirmed current for 31s (stale_after 30s)", false},
		{"stale_after off", revocation.Health{Store: "redis", Loaded: true, Connected: true}, time.Hour, 0, true, "", false},
		{"unreachable and stale, fail_open: still serving", revocation.Health{Store: "redis", Loaded: true, LastError: "follow feed: EOF"}, time.Hour, 30 * time.Second, true, "denylist not confirmed current for 1h0m0s (stale_after 30s); store unreachable: follow feed: EOF; serving what is known (on_store_down fail_open)", true},
		{"never loaded, fail_open: knows nothing", revocation.Health{Store: "redis", LastError: "initial load: refused"}, 1 << 62, 30 * time.Second, false, "denylist not loaded yet: initial load: refused", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ready, reason := readiness(c.h, c.stale, c.staleAfter, !c.failOpen)
			if ready != c.ready || reason != c.reason {
				t.Fatalf("readiness = %v %q, want %v %q", ready, reason, c.ready, c.reason)
			}
			if !ready && strings.TrimSpace(reason) == "" {
				t.Fatal("not ready without a reason")
			}
		})
	}
}
