package caddymodule

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-revocation/caddy-revocation/revocation"
	"github.com/caddyserver/caddy/v2"
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
		{"loading", revocation.Health{Store: "redis", Connected: true, Load: &revocation.LoadProgress{Entries: 420, Expected: 1000}}, 1 << 62, 30 * time.Second, false, "denylist loading: 420 entries read of at most 1000", false},
		{"loading, size unknown", revocation.Health{Store: "redis", Connected: true, Load: &revocation.LoadProgress{}}, 1 << 62, 30 * time.Second, false, "denylist loading: 0 entries read", false},
		{"over its memory budget, fail_open too", revocation.Health{Store: "redis", Loaded: true, Connected: true, Memory: &revocation.BudgetStatus{Budget: 256 << 20, Tables: 180 << 20, Process: 238 << 20, Dropped: 7, DroppedTotal: 7}}, 1 << 62, 30 * time.Second, false, "memory budget 256.0 MiB exceeded: 7 revocations not held in the local copy (process 238.0 MiB, of which tables 180.0 MiB); raise memory_budget and the memory limit, or wait for them to expire", true},
		{"inside its memory budget", revocation.Health{Store: "redis", Loaded: true, Connected: true, Memory: &revocation.BudgetStatus{Budget: 256 << 20, Tables: 180 << 20, Process: 238 << 20}}, time.Second, 30 * time.Second, true, "", false},
		{"reloading: the local copy still serves", revocation.Health{Store: "redis", Loaded: true, Connected: true, Load: &revocation.LoadProgress{Entries: 5}}, time.Second, 30 * time.Second, true, "", false},
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

// readmeExample returns the JSON block that follows a marker comment
// (<!-- admin: name -->) in docs/operating.md.
func readmeExample(t *testing.T, readme, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- admin: "+name+" -->\n```json\n")
	if !ok {
		t.Fatalf("docs/operating.md has no example %q", name)
	}
	block, _, _ := strings.Cut(rest, "\n```")
	return block
}

// The admin API as docs/operating.md documents it is what the routes
// answer: the ready bodies byte for byte, the other answers field for
// field.
func TestDocsDocumentAdminAPI(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	encode := func(v any) string {
		var b bytes.Buffer
		if err := json.NewEncoder(&b).Encode(v); err != nil { // as writeAdminJSON does
			t.Fatal(err)
		}
		return strings.TrimSuffix(b.String(), "\n")
	}

	t.Run("ready", func(t *testing.T) {
		// A real embedded store, answered by the real route.
		app := newTestApp(t)
		if _, err := app.open(StoreConfig{KeyPrefix: "readme-ready:", SessionTTL: caddy.Duration(time.Hour), StaleAfter: caddy.Duration(30 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		if err := (&adminAPI{app: app}).handleReady(w, httptest.NewRequest(http.MethodGet, "/revocation/ready", nil)); err != nil {
			t.Fatal(err)
		}
		if got, want := w.Body.String(), readmeExample(t, readme, "ready-response")+"\n"; w.Code != http.StatusOK || got != want {
			t.Fatalf("GET /revocation/ready: %d %q; the docs document 200 %q", w.Code, got, want)
		}
	})

	t.Run("not ready", func(t *testing.T) {
		desc := "redis " + revocation.RedisConfig{URL: "redis://10.0.0.5:6379"}.Describe()
		h := revocation.Health{Store: "redis", Loaded: true, LastError: "follow feed: dial tcp 10.0.0.5:6379: connect: connection refused"}
		ready, reason := readiness(h, 6*time.Second, 5*time.Second, true)
		code, answer := readyAnswer([]StoreStatus{{Describe: desc, Ready: ready, Reason: reason}})
		if got, want := encode(answer), readmeExample(t, readme, "not-ready-response"); code != http.StatusServiceUnavailable || got != want {
			t.Fatalf("not ready: %d\n%s\nthe docs document 503\n%s", code, got, want)
		}
	})

	// Every field of an answer is in its example, and nothing else.
	fields := func(v any) []string {
		var m map[string]any
		if err := json.Unmarshal([]byte(encode(v)), &m); err != nil {
			t.Fatal(err)
		}
		return slices.Sorted(maps.Keys(m))
	}
	exampleFields := func(name string, into any) []string {
		dec := json.NewDecoder(strings.NewReader(readmeExample(t, readme, name)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			t.Fatalf("docs example %s: %v", name, err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(readmeExample(t, readme, name)), &m); err != nil {
			t.Fatal(err)
		}
		return slices.Sorted(maps.Keys(m))
	}
	t.Run("revoke", func(t *testing.T) {
		var ex AdminRevokeResponse
		if got, want := exampleFields("revoke-response", &ex), fields(AdminRevokeResponse{}); !slices.Equal(got, want) {
			t.Fatalf("docs revoke example has fields %v, the route answers %v", got, want)
		}
	})
	t.Run("status", func(t *testing.T) {
		var ex StatusResponse
		if got, want := exampleFields("status-response", &ex), fields(StatusResponse{}); !slices.Equal(got, want) {
			t.Fatalf("docs status example has fields %v, the route answers %v", got, want)
		}
		if !strings.Contains(readme, "| `streams_open` |") {
			t.Errorf("the docs' status table does not describe streams_open")
		}
		if len(ex.Stores) != 1 {
			t.Fatalf("docs status example has %d stores, want 1", len(ex.Stores))
		}
		var m struct {
			Stores []map[string]any `json:"stores"`
		}
		_ = json.Unmarshal([]byte(readmeExample(t, readme, "status-response")), &m)
		got := slices.Sorted(maps.Keys(m.Stores[0]))
		// What a healthy Redis store under a memory budget (the
		// default in a container) shows: everything but the fields
		// omitted when empty.
		now := time.Now()
		want := fields(StoreStatus{Confirmed: &now, Memory: &MemoryStatus{}, LoadedFrom: "snapshot"})
		if !slices.Equal(got, want) {
			t.Fatalf("docs status example has fields %v, a healthy store shows %v", got, want)
		}
		// The table describes every field a store may show, and the
		// memory row every field of its object.
		all := fields(StoreStatus{Confirmed: &now, Reason: "r", LastError: "e", HashKey: "h", UnkeyedUntil: &now, Load: &LoadStatus{}, Memory: &MemoryStatus{},
			LoadedFrom: "keys", Compact: &CompactStatus{}})
		for _, f := range all {
			if !strings.Contains(readme, "| `"+f+"` |") {
				t.Errorf("the docs' status table does not describe %s", f)
			}
		}
		_, row, _ := strings.Cut(readme, "| `memory` |")
		row, _, _ = strings.Cut(row, "\n")
		for _, f := range fields(MemoryStatus{NotHeldUntil: &now}) {
			if !strings.Contains(row, "`"+f+"`") {
				t.Errorf("the docs' status table does not describe memory.%s", f)
			}
		}
		_, row, _ = strings.Cut(readme, "| `compact` |")
		row, _, _ = strings.Cut(row, "\n")
		for _, f := range fields(CompactStatus{}) {
			if !strings.Contains(row, "`"+f+"`") {
				t.Errorf("the docs' status table does not describe compact.%s", f)
			}
		}
	})
}

// While Redis does not answer, a replica that has not loaded says so and
// why, rather than that it is loading.
func TestReadinessLoadingWithoutRedis(t *testing.T) {
	h := revocation.Health{Store: "redis", Load: &revocation.LoadProgress{}, LastError: "initial load: dial tcp: refused"}
	ready, reason := readiness(h, 1<<62, 30*time.Second, true)
	if ready || reason != "denylist not loaded yet: initial load: dial tcp: refused" {
		t.Fatalf("readiness = %v %q", ready, reason)
	}
}
