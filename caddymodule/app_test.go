package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// appConfig is a configuration of three guards: one on the app's default
// store, one on its store "billing", one with a store option of its own.
func appConfig(third string) string {
	return `{"apps": {
		"revocation": {"stores": {
			"default": {"key_prefix": "apptest-default:"},
			"billing": {"key_prefix": "apptest-billing:", "on_store_down": "fail_open", "session_ttl": 3600000000000}
		}},
		"http": {"servers": {"srv0": {"listen": ["127.0.0.1:0"], "routes": [
			{"handle": [{"handler": "revocation", "endpoints": ["none"], "log_blocked": "off"}]},
			{"handle": [{"handler": "revocation", "endpoints": ["none"], "log_blocked": "off", "store": "billing"}]},
			{"handle": [{"handler": "revocation", "endpoints": ["none"], "log_blocked": "off", ` + third + `}]}
		]}}}
	}}`
}

// runConfig runs config as Caddy runs it (admin endpoint off) and
// returns its context; caddy.Stop unloads it.
func runConfig(t *testing.T, config string) (caddy.Context, error) {
	t.Helper()
	config = `{"admin": {"disabled": true},` + strings.TrimPrefix(config, "{")
	if err := caddy.Load([]byte(config), true); err != nil {
		return caddy.Context{}, err
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return caddy.ActiveContext(), nil
}

// The app holds the stores its configuration names and those its guards
// describe; a guard uses the one it names, its own, or the default; the
// admin API sees the app's stores; unloading the configuration releases
// them.
func TestAppOwnsStores(t *testing.T) {
	ctx, err := runConfig(t, appConfig(`"key_prefix": "apptest-own:"`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ctx.App("revocation")
	if err != nil {
		t.Fatal(err)
	}
	app := v.(*App)
	var prefixes []string
	app.eachGuard(func(h *Handler) {
		if h.store.prefix != h.KeyPrefix {
			t.Errorf("guard with key_prefix %s uses the store of %s", h.KeyPrefix, h.store.prefix)
		}
		prefixes = append(prefixes, h.KeyPrefix+" "+h.OnStoreDown)
	})
	if got, want := strings.Join(prefixes, ", "), "apptest-default: fail_closed, apptest-billing: fail_open, apptest-own: fail_closed"; got != want {
		t.Fatalf("guards use %s, want %s", got, want)
	}
	if app.named["billing"].sessionTTL.Load() != 3600000000000 {
		t.Errorf("store billing keeps session revocations for %d ns, want its session_ttl 1h", app.named["billing"].sessionTTL.Load())
	}
	a := &adminAPI{}
	if err := a.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if a.app != app {
		t.Fatal("the admin API does not reach the configuration's app")
	}
	var seen []string
	for _, st := range a.statuses() {
		seen = append(seen, st.KeyPrefix)
	}
	if got := strings.Join(seen, " "); !strings.Contains(got, "apptest-default:") || !strings.Contains(got, "apptest-billing:") || !strings.Contains(got, "apptest-own:") || len(seen) != 3 {
		t.Fatalf("the admin API sees the stores %v, want the app's three", seen)
	}
	keys := make([]string, 0, len(app.held))
	for k := range app.held {
		keys = append(keys, k)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if n, ok := stores.References(k); ok {
			t.Errorf("store %s still held %d times once its configuration is unloaded", k, n)
		}
	}
}

// A guard that names a store takes no store options of its own, and
// names a store the app has.
func TestAppStoreNamingErrors(t *testing.T) {
	for third, want := range map[string]string{
		`"store": "billing", "redis_timeout": 1000000000`: `store "billing": a handler that names a store takes no store options of its own`,
		`"store": "nope"`: `store "nope": no such store in the revocation app (known: [billing default])`,
	} {
		if _, err := runConfig(t, appConfig(third)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to say %q", third, err, want)
		}
	}
	var app App
	if err := json.Unmarshal([]byte(`{"stores": {"a": {"feed_max_len": 10}}}`), &app); err != nil {
		t.Fatal(err)
	}
	if err := app.Validate(); err == nil || !strings.Contains(err.Error(), `store "a": feed_max_len: 10: want an integer of at least 100`) {
		t.Errorf("app Validate: %v", err)
	}
}
