package caddymodule

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func parse(t *testing.T, input string) (*Handler, error) {
	t.Helper()
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return &h, err
}

func TestUnmarshalCaddyfileFull(t *testing.T) {
	h, err := parse(t, `revocation {
		app_id web
		redis {
			addrs 10.0.0.1:26379 10.0.0.2:26379
			master_name mymaster
			username app
			password {env.REDIS_PASSWORD}
			db 2
			tls
			tls_server_name redis.internal
		}
		key_prefix rv:
		hash_key {env.REVOCATION_HASH_KEY}
		jwt {
			hmac_secret {env.JWT_SECRET}
			public_key /etc/keys/a.pem
			public_key /etc/keys/b.pem
			jwks_url https://auth.example.com/jwks.json
			jwks_refetch_interval 1m
			issuer https://auth.example.com
			audience api web
			algorithms ES256 RS256
			leeway 10s
			session_claim session
		}
		session_ttl 24h
		endpoints {
			logout /api/logout
			revoke_sessions
		}
		on_store_down fail_open
		stale_after 1m
		require_token
		inspect_body off
		max_credentials 8
		token_cache_size 5000
		feed_max_len 2000
		feed_retention 10m
		snapshot_every 2m
		redis_timeout 500ms
		log_blocked warn
	}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(h)
	want := `{"app_id":"web","redis":{"addrs":["10.0.0.1:26379","10.0.0.2:26379"],"username":"app","password":"{env.REDIS_PASSWORD}","db":2,"tls":true,"tls_server_name":"redis.internal","master_name":"mymaster"},"key_prefix":"rv:","hash_key":"{env.REVOCATION_HASH_KEY}","session_ttl":86400000000000,"on_store_down":"fail_open","stale_after":60000000000,"feed_max_len":2000,"feed_retention":600000000000,"snapshot_every":120000000000,"redis_timeout":500000000,"jwt":{"hmac_secret":"{env.JWT_SECRET}","public_keys":["/etc/keys/a.pem","/etc/keys/b.pem"],"jwks_url":"https://auth.example.com/jwks.json","jwks_refetch_interval":60000000000,"issuer":"https://auth.example.com","audience":["api","web"],"algorithms":["ES256","RS256"],"leeway":10000000000,"session_claim":"session"},"require_token":true,"inspect_body":false,"max_credentials":8,"token_cache_size":5000,"log_blocked":"warn","endpoints":["logout","revoke_sessions"],"paths":{"logout":"/api/logout"}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestUnmarshalCaddyfileShortForms(t *testing.T) {
	cases := map[string]string{
		"redis url":               "revocation {\nredis redis://127.0.0.1:6379/1\n}",
		"redis empty (env unset)": "revocation {\nredis\n}",
		"endpoints none":          "revocation {\nendpoints none\n}",
		"endpoints list":          "revocation {\nendpoints logout invalidate_session\n}",
		"body inspection":         "revocation {\ninspect_body_limit 1MiB\noversized_body reject\n}",
		"snapshots off":           "revocation {\nsnapshot_every off\n}",
		"streams at expiry":       "revocation {\nclose_streams_at_expiry\n}",
		"memory budget":           "revocation {\nmemory_budget 256MiB\n}",
		"memory budget off":       "revocation {\nmemory_budget off\n}",
		"memory budget cgroup":    "revocation {\nmemory_budget cgroup\n}",
		"compact denylist":        "revocation {\nredis redis://127.0.0.1:6379\ncompact_denylist\n}",
		"legacy app":              "revocation {\ncredential cookie JSESSIONID\ncredential header X-Auth-Token\ncredential cookie connect.sid\napp_logout /logout /signout\napp_logout /api/logout\n}",
	}
	wants := map[string]string{
		"redis url":               `{"redis":{"url":"redis://127.0.0.1:6379/1"}}`,
		"redis empty (env unset)": `{"redis":{}}`,
		"endpoints none":          `{"endpoints":["none"]}`,
		"endpoints list":          `{"endpoints":["logout","invalidate_session"]}`,
		"body inspection":         `{"inspect_body_limit":1048576,"oversized_body":"reject"}`,
		"snapshots off":           `{"snapshot_every":-1}`,
		"streams at expiry":       `{"close_streams_at_expiry":true}`,
		"memory budget":           `{"memory_budget":268435456}`,
		"memory budget off":       `{"memory_budget":-1}`,
		"memory budget cgroup":    `{}`,
		"compact denylist":        `{"redis":{"url":"redis://127.0.0.1:6379"},"compact_denylist":true}`,
		"legacy app":              `{"credentials":[{"cookie":"JSESSIONID"},{"header":"X-Auth-Token"},{"cookie":"connect.sid"}],"app_logout":["/logout","/signout","/api/logout"]}`,
	}
	for name, in := range cases {
		h, err := parse(t, in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, _ := json.Marshal(h)
		if string(got) != wants[name] {
			t.Errorf("%s: got %s, want %s", name, got, wants[name])
		}
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"unknown option":          {"revocation {\nnope 1\n}", `unknown option "nope"`},
		"duplicate option":        {"revocation {\napp_id a\napp_id b\n}", `duplicate option "app_id"`},
		"duplicate jwt option":    {"revocation {\njwt {\nissuer a\nissuer b\n}\n}", `jwt: duplicate option "issuer"`},
		"unknown jwt option":      {"revocation {\njwt {\nsecret x\n}\n}", `jwt: unknown option "secret"`},
		"unknown redis option":    {"revocation {\nredis {\nhost x\n}\n}", `redis: unknown option "host"`},
		"bad duration":            {"revocation {\nsession_ttl soon\n}", `session_ttl: bad duration "soon"`},
		"negative duration":       {"revocation {\nstale_after -1s\n}", `must not be negative`},
		"bad jwt duration":        {"revocation {\njwt {\nleeway lots\n}\n}", `leeway: bad duration "lots"`},
		"algorithms none":         {"revocation {\njwt {\nalgorithms ES256 none\n}\n}", `"none" can never be allowed`},
		"bad on_store_down":       {"revocation {\non_store_down maybe\n}", `want fail_closed or fail_open`},
		"bad log level":           {"revocation {\nlog_blocked loud\n}", `log_blocked`},
		"bad cache size":          {"revocation {\ntoken_cache_size -3\n}", `token_cache_size`},
		"bad credential bound":    {"revocation {\nmax_credentials 0\n}", `max_credentials`},
		"missing value":           {"revocation {\napp_id\n}", `app_id: missing value`},
		"two values":              {"revocation {\nkey_prefix a b\n}", `key_prefix: want one value`},
		"redis two urls":          {"revocation {\nredis a b\n}", `redis: want one URL`},
		"require_token arg":       {"revocation {\nrequire_token yes\n}", `require_token takes no argument`},
		"streams at expiry arg":   {"revocation {\nclose_streams_at_expiry on\n}", `close_streams_at_expiry takes no argument`},
		"inspect_body value":      {"revocation {\ninspect_body maybe\n}", `inspect_body`},
		"directive argument":      {`revocation extra { }`, `wrong argument count`},
		"bad inspect_body_limit":  {"revocation {\ninspect_body_limit lots\n}", `inspect_body_limit: "lots"`},
		"huge inspect_body_limit": {"revocation {\ninspect_body_limit 1GiB\n}", `inspect_body_limit: "1GiB"`},
		"bad oversized_body":      {"revocation {\noversized_body drop\n}", `want pass or reject`},
		"endpoints empty block":   {"revocation {\nendpoints {\n}\n}", `endpoints: name at least one dialect`},
		"credential no name":      {"revocation {\ncredential cookie\n}", `credential: want cookie <name> or header <name>`},
		"credential bad source":   {"revocation {\ncredential query token\n}", `credential: "query": want cookie or header`},
		"app_logout no path":      {"revocation {\napp_logout\n}", `app_logout: want at least one path`},
		"backchannel no client":   {"revocation {\nbackchannel_logout {\nclient_id\n}\n}", `client_id: want at least one value`},
		"backchannel unknown":     {"revocation {\nbackchannel_logout {\naudience x\n}\n}", `backchannel_logout: unknown option "audience"`},
		"backchannel argument":    {"revocation {\nbackchannel_logout x\n}", `takes a block`},
		"revocation client args":  {"revocation {\ntoken_revocation {\nclient a b c\n}\n}", `want <id> [<secret>]`},
		"revocation unknown":      {"revocation {\ntoken_revocation {\nsecret x\n}\n}", `token_revocation: unknown option "secret"`},
		"ssf duplicate":           {"revocation {\nsecurity_events {\nissuer a\nissuer b\n}\n}", `security_events: duplicate option "issuer"`},
		"ssf no audience":         {"revocation {\nsecurity_events {\naudience\n}\n}", `audience: want at least one value`},
		"typo, nearest named":     {"revocation {\nsesion_ttl 1h\n}", `unknown option "sesion_ttl"; did you mean session_ttl?`},
		"redis typo":              {"revocation {\nredis {\npasword x\n}\n}", `redis: unknown option "pasword"; did you mean password?`},
		"jwt typo":                {"revocation {\njwt {\nhmac_secert x\n}\n}", `jwt: unknown option "hmac_secert"; did you mean hmac_secret?`},
		"redis url missing value": {"revocation {\nredis {\nurl\n}\n}", `redis url: missing value, at `},
		"redis flag with a value": {"revocation {\nredis {\ntls yes\n}\n}", `redis tls takes no value`},
		"jwt bad duration":        {"revocation {\njwt {\nleeway x\n}\n}", `jwt leeway: bad duration "x"`},
		"short feed_retention":    {"revocation {\nfeed_retention 10s\n}", `feed_retention: 10s: want at least 1m0s`},
		"bad snapshot_every":      {"revocation {\nsnapshot_every never\n}", `snapshot_every: "never": want a duration of at least 10s, or off`},
		"short snapshot_every":    {"revocation {\nsnapshot_every 1s\n}", `snapshot_every: "1s"`},
		"small memory_budget":     {"revocation {\nmemory_budget 10MB\n}", `memory_budget: "10MB": want a size of at least 64MiB`},
		"receiver missing value":  {"revocation {\nbackchannel_logout {\nissuer\n}\n}", `backchannel_logout issuer: missing value, at `},
		"ssf missing value":       {"revocation {\nsecurity_events {\njwks_url\n}\n}", `security_events jwks_url: missing value, at `},
		"small feed_max_len":      {"revocation {\nfeed_max_len 99\n}", `feed_max_len: 99: want an integer of at least 100`},
		"compact with a value":    {"revocation {\ncompact_denylist on\n}", `compact_denylist takes no argument`},
	}
	for name, c := range cases {
		_, err := parse(t, c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to say %q", name, err, c.want)
			continue
		}
		// Wrapped once: one position, and no option named twice.
		if n := strings.Count(err.Error(), ", at "); n != 1 {
			t.Errorf("%s: error %q gives its position %d times, want once", name, err, n)
		}
	}
	// A word far from every option gets no guess.
	if _, err := parse(t, "revocation {\nfrobnicate on\n}"); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("frobnicate: error %v, want no guess", err)
	}
}

// TestAdaptGolden adapts each testdata/*.caddyfiletest (a Caddyfile, a
// line of dashes, the JSON it must become) through the real Caddyfile
// adapter, which also proves the directive orders itself before
// reverse_proxy without an order line.
func TestAdaptGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.caddyfiletest")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(data), "\n----------\n")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(in+"\n"), map[string]any{"filename": f})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("warning: %s", w.Message)
			}
			var pretty strings.Builder
			enc := json.NewEncoder(&pretty)
			enc.SetIndent("", "\t")
			var v any
			_ = json.Unmarshal(out, &v)
			_ = enc.Encode(v)
			if *update {
				_ = os.WriteFile(f, []byte(in+"\n----------\n"+pretty.String()), 0o644)
				return
			}
			if strings.TrimSpace(pretty.String()) != strings.TrimSpace(want) {
				t.Fatalf("adapted JSON differs:\n%s", pretty.String())
			}
		})
	}
}

// The feed must outlast the time between two snapshots, in JSON
// configurations as in the Caddyfile.
func TestStoreSettingsFeedAndSnapshot(t *testing.T) {
	cases := []struct {
		ret, snap time.Duration
		want      string
	}{
		{0, 0, ""},
		{time.Hour, -1, ""},
		{2 * time.Minute, time.Minute, ""},
		{30 * time.Second, 0, "feed_retention 30s: want at least 1m0s"},
		{0, time.Second, "snapshot_every 1s: want at least 10s"},
		{2 * time.Minute, 5 * time.Minute, "feed_retention 2m0s must be longer than snapshot_every 5m0s"},
		{0, 10 * time.Minute, "feed_retention 5m0s must be longer than snapshot_every 10m0s"},
	}
	for _, c := range cases {
		err := storeSettings{Retention: c.ret, SnapEvery: c.snap}.validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("retention %v, snapshots every %v: error %v, want %q", c.ret, c.snap, err, c.want)
		}
	}
}

// A JSON configuration is held to the same rules as a Caddyfile: Caddy
// calls Validate on the handler it loaded, whichever adapter wrote it.
func TestValidateJSON(t *testing.T) {
	cases := map[string]struct{ json, want string }{
		"small feed_max_len":    {`{"feed_max_len": 50}`, `feed_max_len: 50: want an integer of at least 100`},
		"bad on_store_down":     {`{"on_store_down": "maybe"}`, `on_store_down: "maybe": want fail_closed or fail_open`},
		"bad oversized_body":    {`{"oversized_body": "drop"}`, `oversized_body: "drop": want pass or reject`},
		"bad log level":         {`{"log_blocked": "loud"}`, `log_blocked: "loud"`},
		"huge body limit":       {`{"inspect_body_limit": 1073741824}`, `inspect_body_limit: 1073741824`},
		"credential bound":      {`{"max_credentials": 5000}`, `max_credentials: 5000: want 1 to 1024`},
		"short feed_retention":  {`{"feed_retention": 10000000000}`, `feed_retention 10s: want at least 1m0s`},
		"short snapshot_every":  {`{"snapshot_every": 1000000000}`, `snapshot_every 1s: want at least 10s`},
		"small memory_budget":   {`{"memory_budget": 1000}`, `memory_budget: 1000: want a size of at least 64MiB`},
		"wait replicas":         {`{"redis_wait_replicas": "many"}`, `redis_wait_replicas: "many"`},
		"wait timeout too long": {`{"redis_timeout": 1000000000, "redis_wait_timeout": 2000000000}`, `redis_wait_timeout 2s: want more than zero and less than redis_timeout 1s`},
		"algorithm none":        {`{"jwt": {"algorithms": ["None"]}}`, `"none" can never be allowed`},
		"negative leeway":       {`{"jwt": {"leeway": -1}}`, `jwt leeway: must not be negative`},
		"relative logout path":  {`{"app_logout": ["logout"]}`, `app_logout "logout"`},
		"compact without redis": {`{"compact_denylist": true}`, `compact_denylist: it needs redis`},
	}
	for name, c := range cases {
		var h Handler
		if err := json.Unmarshal([]byte(c.json), &h); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate: %v, want it to say %q", name, err, c.want)
		}
	}
	var h Handler
	if err := h.Validate(); err != nil {
		t.Errorf("the empty configuration (every default): %v", err)
	}
}
