package caddymodule

import (
	"slices"
	"strconv"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

func init() {
	httpcaddyfile.RegisterDirective("revocation", parseDirective)
	httpcaddyfile.RegisterGlobalOption("revocation", parseGlobalOption)
	// Revocation must see a request before anything answers it. Ordered
	// with the authentication directives (just before basic_auth), it runs
	// ahead of handle, handle_path, route, respond, redir, rewrite,
	// reverse_proxy, php_fastcgi and file_server, which Caddy sorts after
	// it; ordering it just before reverse_proxy would put handle blocks and
	// respond first, and the guard would never run. No `order` line or
	// `route` block is needed.
	httpcaddyfile.RegisterDirectiveOrder("revocation", httpcaddyfile.Before, "basic_auth")
}

// parseDirective reads a site-level revocation block as
// RegisterHandlerDirective would, then expands it into the routes of its
// endpoints and its guard (as php_fastcgi expands into its routes).
func parseDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	var m Handler
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return m.expand(h, matcherSet)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	revocation [<matcher>] {
//	    store         <name>
//	    app_id        <id>
//	    redis         [<url>]
//	    redis {
//	        url                      <url>
//	        addrs                    <host:port...>
//	        username                 <user>
//	        password                 <password>
//	        db                       <n>
//	        tls
//	        tls_ca_file              <pem-file>
//	        tls_server_name          <name>
//	        tls_insecure_skip_verify
//	        master_name              <name>
//	        sentinel_username        <user>
//	        sentinel_password        <password>
//	        cluster
//	    }
//	    key_prefix    <prefix>
//	    hash_key      <secret>
//	    jwt {
//	        hmac_secret           <secret>
//	        public_key            <pem-file>
//	        jwks_url              <url>
//	        jwks_refetch_interval <duration>
//	        issuer                <iss>
//	        audience              <aud...>
//	        algorithms            <alg...>
//	        leeway                <duration>
//	        session_claim         <name>
//	    }
//	    session_ttl      <duration>
//	    endpoints        <dialect...> | none
//	    endpoints {
//	        <dialect> [<path>]
//	    }
//	    on_store_down    fail_closed|fail_open
//	    stale_after      <duration>
//	    require_token
//	    inspect_body     on|off
//	    inspect_body_limit <size>
//	    oversized_body   pass|reject
//	    max_credentials  <n>
//	    token_cache_size <n>
//	    feed_max_len     <n>
//	    feed_retention   <duration>
//	    snapshot_every   <duration>|off
//	    memory_budget    <size>|cgroup|off
//	    compact_denylist
//	    redis_timeout    <duration>
//	    redis_wait_replicas auto|off|<n>
//	    redis_wait_timeout  <duration>
//	    log_blocked      debug|info|warn|error|off
//	    backchannel_logout {
//	        client_id <id...>
//	        issuer    <iss>
//	        jwks_url  <url>
//	    }
//	    token_revocation {
//	        client <id> [<secret>]
//	    }
//	    security_events {
//	        audience   <aud...>
//	        issuer     <iss>
//	        jwks_url   <url>
//	        auth_token <token>
//	    }
//	    credential       cookie|header <name>
//	    app_logout       <path...>
//	    close_streams_at_expiry
//	}
//
// Every option may appear once, except public_key, client, credential (one
// line per cookie or header) and app_logout (whose paths add up). "redis" with no
// argument, or an empty one (as {$REDIS_URL} gives when REDIS_URL is
// unset), means the embedded store.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] && opt != "credential" && opt != "app_logout" {
			return d.Errf("duplicate option %q", opt)
		}
		seen[opt] = true
		if err := h.unmarshalOption(d, opt); err != nil {
			return err
		}
	}
	return nil
}

// unmarshalOption reads one option of the block, the dispenser on its
// name.
func (h *Handler) unmarshalOption(d *caddyfile.Dispenser, opt string) error {
	switch opt {
	case "store":
		if err := oneArg(d, "", &h.Store); err != nil {
			return err
		}
	case "credential":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Errf("credential: want cookie <name> or header <name>")
		}
		switch args[0] {
		case "cookie":
			h.Credentials = append(h.Credentials, CredentialSource{Cookie: args[1]})
		case "header":
			h.Credentials = append(h.Credentials, CredentialSource{Header: args[1]})
		default:
			return d.Errf("credential: %q: want cookie or header", args[0])
		}
	case "app_logout":
		paths := d.RemainingArgs()
		if len(paths) == 0 {
			return d.Errf("app_logout: want at least one path")
		}
		h.AppLogout = append(h.AppLogout, paths...)
	case "app_id":
		if err := oneArg(d, "", &h.AppID); err != nil {
			return err
		}
	case "redis":
		if err := h.unmarshalRedis(d); err != nil {
			return err
		}
	case "key_prefix":
		if err := oneArg(d, "", &h.KeyPrefix); err != nil {
			return err
		}
	case "hash_key":
		if err := oneArg(d, "", &h.HashKey); err != nil {
			return err
		}
	case "jwt":
		if err := h.unmarshalJWT(d); err != nil {
			return err
		}
	case "session_ttl":
		if err := durationArg(d, "", &h.SessionTTL); err != nil {
			return err
		}
	case "endpoints":
		if err := h.unmarshalEndpoints(d); err != nil {
			return err
		}
	case "on_store_down":
		if err := oneArg(d, "", &h.OnStoreDown); err != nil {
			return err
		}
		if err := checkChoice("on_store_down", h.OnStoreDown, defaultOnStoreDown, "fail_open"); err != nil {
			return d.Err(err.Error())
		}
	case "stale_after":
		if err := durationArg(d, "", &h.StaleAfter); err != nil {
			return err
		}
	case "require_token":
		if d.NextArg() {
			return d.Errf("require_token takes no argument")
		}
		h.RequireToken = true
	case "close_streams_at_expiry":
		if d.NextArg() {
			return d.Errf("close_streams_at_expiry takes no argument")
		}
		h.CloseStreamsAtExpiry = true
	case "inspect_body":
		var v string
		if err := oneArg(d, "", &v); err != nil {
			return err
		}
		on := v == "on"
		if !on && v != "off" {
			return d.Errf("inspect_body: %q: want on or off", v)
		}
		h.InspectBody = &on
	case "inspect_body_limit":
		var v string
		if err := oneArg(d, "", &v); err != nil {
			return err
		}
		n, err := humanize.ParseBytes(v)
		if err == nil && n <= maxInspectBodyLimit {
			err = checkInspectBodyLimit(int64(n))
		}
		if err != nil || n > maxInspectBodyLimit {
			return d.Errf("inspect_body_limit: %q: want a size from 1B to %dMiB", v, maxInspectBodyLimit>>20)
		}
		h.InspectBodyLimit = int64(n)
	case "oversized_body":
		if err := oneArg(d, "", &h.OversizedBody); err != nil {
			return err
		}
		if err := checkChoice("oversized_body", h.OversizedBody, defaultOversizedBody, "reject"); err != nil {
			return d.Err(err.Error())
		}
	case "max_credentials":
		if err := intArg(d, 1, &h.MaxCredentials); err != nil {
			return err
		}
	case "token_cache_size":
		if err := intArg(d, 1, &h.TokenCacheSize); err != nil {
			return err
		}
	case "feed_max_len":
		var v string
		if err := oneArg(d, "", &v); err != nil {
			return err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return d.Errf("feed_max_len: %q: want an integer of at least %d", v, minFeedMaxLen)
		}
		if err := checkFeedMaxLen(n); err != nil {
			return d.Err(err.Error())
		}
		h.FeedMaxLen = n
	case "feed_retention":
		if err := durationArg(d, "", &h.FeedRetention); err != nil {
			return err
		}
		if err := checkFeedRetention(time.Duration(h.FeedRetention)); err != nil {
			return d.Errf("feed_retention: %v: %v", time.Duration(h.FeedRetention), err)
		}
	case "snapshot_every":
		var v string
		if err := oneArg(d, "", &v); err != nil {
			return err
		}
		if v == "off" {
			h.SnapshotEvery = -1 // never
			break
		}
		dur, err := caddy.ParseDuration(v)
		if err == nil {
			err = checkSnapshotEvery(dur)
		}
		if err != nil {
			return d.Errf("snapshot_every: %q: want a duration of at least %v, or off", v, minSnapshotEvery)
		}
		h.SnapshotEvery = caddy.Duration(dur)
	case "memory_budget":
		var v string
		if err := oneArg(d, "", &v); err != nil {
			return err
		}
		if v == "off" {
			h.MemoryBudget = -1 // none, whatever the cgroup says
			break
		}
		if v == "cgroup" {
			h.MemoryBudget = 0 // the default, said out loud
			break
		}
		n, err := humanize.ParseBytes(v)
		if err == nil && n <= maxMemoryBudget {
			err = checkMemoryBudget(int64(n))
		}
		if err != nil || n > maxMemoryBudget {
			return d.Errf("memory_budget: %q: want a size of at least %dMiB (such as 256MiB or 1GB), cgroup or off", v, minMemoryBudget>>20)
		}
		h.MemoryBudget = int64(n)
	case "compact_denylist":
		if d.NextArg() {
			return d.Errf("compact_denylist takes no argument")
		}
		h.CompactDenylist = true
	case "redis_timeout":
		if err := durationArg(d, "", &h.RedisTimeout); err != nil {
			return err
		}
	case "redis_wait_replicas":
		if err := oneArg(d, "", &h.RedisWaitReplicas); err != nil {
			return err
		}
		if _, err := parseWaitReplicas(h.RedisWaitReplicas); err != nil {
			return d.Err(err.Error())
		}
	case "redis_wait_timeout":
		if err := durationArg(d, "", &h.RedisWaitTimeout); err != nil {
			return err
		}
	case "log_blocked":
		if err := oneArg(d, "", &h.LogBlocked); err != nil {
			return err
		}
		if _, _, err := logLevel(h.LogBlocked); err != nil {
			return d.Err(err.Error())
		}
	case "backchannel_logout":
		if err := h.unmarshalBackchannel(d); err != nil {
			return err
		}
	case "token_revocation":
		if err := h.unmarshalTokenRevocation(d); err != nil {
			return err
		}
	case "security_events":
		if err := h.unmarshalSecurityEvents(d); err != nil {
			return err
		}
	default:
		return unknownOption(d, "", opt, handlerOptions)
	}
	return nil
}

// storeOptions are the options of a store, in the site-level block and
// in the global revocation option alike.
var storeOptions = []string{"redis", "key_prefix", "hash_key", "session_ttl", "on_store_down", "stale_after",
	"feed_max_len", "feed_retention", "snapshot_every", "memory_budget", "redis_timeout",
	"redis_wait_replicas", "redis_wait_timeout"}

// parseGlobalOption reads the global revocation option, which configures
// the revocation app (see App):
//
//	revocation {
//	    <store options>     # the store named "default"
//	    store <name> {
//	        <store options>
//	    }
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := &App{Stores: map[string]*StoreConfig{}}
	d.Next() // the option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var dflt Handler
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt == "store" {
			var name string
			if !d.NextArg() {
				return nil, d.Errf("store: want a name and a block")
			}
			name = d.Val()
			if d.NextArg() {
				return nil, d.Errf("store %s: want a block, not more arguments", name)
			}
			if _, dup := app.Stores[name]; dup || name == defaultStoreName && len(seen) > 0 {
				return nil, d.Errf("store %q given twice", name)
			}
			cfg, err := unmarshalStore(d, d.Nesting())
			if err != nil {
				return nil, err
			}
			app.Stores[name] = cfg
			continue
		}
		if seen[opt] {
			return nil, d.Errf("duplicate option %q", opt)
		}
		seen[opt] = true
		if !slices.Contains(storeOptions, opt) {
			return nil, unknownOption(d, "revocation", opt, append([]string{"store"}, storeOptions...))
		}
		if err := dflt.unmarshalOption(d, opt); err != nil {
			return nil, err
		}
	}
	if len(seen) > 0 {
		if _, dup := app.Stores[defaultStoreName]; dup {
			return nil, d.Errf("store %q given twice: by its block and by options outside any store block", defaultStoreName)
		}
		cfg := dflt.StoreConfig
		app.Stores[defaultStoreName] = &cfg
	}
	if len(app.Stores) == 0 {
		app.Stores = nil
	}
	return httpcaddyfile.App{Name: "revocation", Value: caddyconfig.JSON(app, nil)}, nil
}

// unmarshalStore reads the store options of one store block.
func unmarshalStore(d *caddyfile.Dispenser, nesting int) (*StoreConfig, error) {
	var h Handler
	seen := map[string]bool{}
	for d.NextBlock(nesting) {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("duplicate option %q", opt)
		}
		seen[opt] = true
		if !slices.Contains(storeOptions, opt) {
			return nil, unknownOption(d, "store", opt, storeOptions)
		}
		if err := h.unmarshalOption(d, opt); err != nil {
			return nil, err
		}
	}
	cfg := h.StoreConfig
	return &cfg, nil
}

func (h *Handler) unmarshalBackchannel(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("backchannel_logout takes a block, not arguments")
	}
	b := &BackchannelLogoutConfig{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("backchannel_logout: duplicate option %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "client_id":
			if b.ClientID = d.RemainingArgs(); len(b.ClientID) == 0 {
				return d.Errf("backchannel_logout client_id: want at least one value")
			}
		case "issuer":
			err = oneArg(d, "backchannel_logout", &b.Issuer)
		case "jwks_url":
			err = oneArg(d, "backchannel_logout", &b.JWKSURL)
		default:
			return d.Errf("backchannel_logout: unknown option %q", opt)
		}
		if err != nil {
			return err // oneArg's error names the block, the option and the line
		}
	}
	h.BackchannelLogout = b
	return nil
}

func (h *Handler) unmarshalTokenRevocation(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("token_revocation takes a block, not arguments")
	}
	t := &TokenRevocationConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt != "client" {
			return d.Errf("token_revocation: unknown option %q", opt)
		}
		args := d.RemainingArgs()
		if len(args) < 1 || len(args) > 2 {
			return d.Errf("token_revocation client: want <id> [<secret>]")
		}
		c := RevocationClient{ID: args[0]}
		if len(args) == 2 {
			c.Secret = args[1]
		}
		t.Clients = append(t.Clients, c)
	}
	h.TokenRevocation = t
	return nil
}

func (h *Handler) unmarshalSecurityEvents(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("security_events takes a block, not arguments")
	}
	s := &SecurityEventsConfig{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("security_events: duplicate option %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "audience":
			if s.Audience = d.RemainingArgs(); len(s.Audience) == 0 {
				return d.Errf("security_events audience: want at least one value")
			}
		case "issuer":
			err = oneArg(d, "security_events", &s.Issuer)
		case "jwks_url":
			err = oneArg(d, "security_events", &s.JWKSURL)
		case "auth_token":
			err = oneArg(d, "security_events", &s.AuthToken)
		default:
			return d.Errf("security_events: unknown option %q", opt)
		}
		if err != nil {
			return err // oneArg's error names the block, the option and the line
		}
	}
	h.SecurityEvents = s
	return nil
}

func (h *Handler) unmarshalRedis(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) > 1 {
		return d.Errf("redis: want one URL, or a block")
	}
	cfg := &revocation.RedisConfig{}
	if len(args) == 1 {
		cfg.URL = args[0]
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("redis: duplicate option %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "url":
			err = oneArg(d, "redis", &cfg.URL)
		case "addrs":
			cfg.Addrs = d.RemainingArgs()
			if len(cfg.Addrs) == 0 {
				return d.Errf("redis addrs: want at least one host:port")
			}
		case "username":
			err = oneArg(d, "redis", &cfg.Username)
		case "password":
			err = oneArg(d, "redis", &cfg.Password)
		case "db":
			var v string
			if err = oneArg(d, "redis", &v); err == nil {
				n, convErr := strconv.Atoi(v)
				if convErr != nil || n < 0 {
					return d.Errf("redis db: %q: want a number of 0 or more", v)
				}
				cfg.DB = n
			}
		case "tls":
			err = noArg(d, "redis")
			cfg.TLS = true
		case "tls_ca_file":
			err = oneArg(d, "redis", &cfg.TLSCAFile)
		case "tls_server_name":
			err = oneArg(d, "redis", &cfg.TLSServerName)
		case "tls_insecure_skip_verify":
			err = noArg(d, "redis")
			cfg.TLSInsecureSkipVerify = true
		case "master_name":
			err = oneArg(d, "redis", &cfg.MasterName)
		case "sentinel_username":
			err = oneArg(d, "redis", &cfg.SentinelUsername)
		case "sentinel_password":
			err = oneArg(d, "redis", &cfg.SentinelPassword)
		case "cluster":
			err = noArg(d, "redis")
			cfg.Cluster = true
		default:
			return unknownOption(d, "redis", opt, redisOptions)
		}
		if err != nil {
			return err
		}
	}
	if len(seen) > 0 && len(args) == 1 && seen["url"] {
		return d.Errf("redis: url given twice")
	}
	h.Redis = cfg
	return nil
}

func (h *Handler) unmarshalJWT(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("jwt takes a block, not arguments")
	}
	j := &JWTConfig{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] && opt != "public_key" {
			return d.Errf("jwt: duplicate option %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "hmac_secret":
			err = oneArg(d, "jwt", &j.HMACSecret)
		case "public_key":
			var f string
			if err = oneArg(d, "jwt", &f); err == nil {
				j.PublicKeys = append(j.PublicKeys, f)
			}
		case "jwks_url":
			err = oneArg(d, "jwt", &j.JWKSURL)
		case "jwks_refetch_interval":
			err = durationArg(d, "jwt", &j.JWKSRefetchInterval)
		case "issuer":
			err = oneArg(d, "jwt", &j.Issuer)
		case "audience":
			j.Audience = d.RemainingArgs()
			if len(j.Audience) == 0 {
				return d.Errf("jwt audience: want at least one value")
			}
		case "algorithms":
			j.Algorithms = d.RemainingArgs()
			if len(j.Algorithms) == 0 {
				return d.Errf("jwt algorithms: want at least one algorithm")
			}
			if err := checkAlgorithms(j.Algorithms); err != nil {
				return d.Err(err.Error())
			}
		case "leeway":
			err = durationArg(d, "jwt", &j.Leeway)
		case "session_claim":
			err = oneArg(d, "jwt", &j.SessionClaim)
		default:
			return unknownOption(d, "jwt", opt, jwtOptions)
		}
		if err != nil {
			return err
		}
	}
	h.JWT = j
	return nil
}

func (h *Handler) unmarshalEndpoints(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	h.Endpoints = append(h.Endpoints, args...)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if len(args) > 0 {
			return d.Errf("endpoints: give dialects as arguments or in a block, not both")
		}
		name := d.Val()
		h.Endpoints = append(h.Endpoints, name)
		if d.NextArg() {
			if h.Paths == nil {
				h.Paths = map[string]string{}
			}
			h.Paths[name] = d.Val()
			if d.NextArg() {
				return d.Errf("endpoints: %s: want at most one path", name)
			}
		}
	}
	if len(h.Endpoints) == 0 {
		return d.Errf("endpoints: name at least one dialect, or none")
	}
	return nil
}

// The options of each block, for "did you mean" hints.
var (
	handlerOptions = []string{"store", "app_id", "redis", "key_prefix", "hash_key", "jwt", "session_ttl", "endpoints",
		"on_store_down", "stale_after", "require_token", "inspect_body", "inspect_body_limit",
		"oversized_body", "max_credentials", "token_cache_size", "feed_max_len", "feed_retention",
		"snapshot_every", "memory_budget", "compact_denylist", "redis_timeout", "redis_wait_replicas", "redis_wait_timeout",
		"log_blocked", "backchannel_logout", "token_revocation", "security_events", "credential", "app_logout",
		"close_streams_at_expiry"}
	redisOptions = []string{"url", "addrs", "username", "password", "db", "tls", "tls_ca_file",
		"tls_server_name", "tls_insecure_skip_verify", "master_name", "sentinel_username",
		"sentinel_password", "cluster"}
	jwtOptions = []string{"hmac_secret", "public_key", "jwks_url", "jwks_refetch_interval",
		"issuer", "audience", "algorithms", "leeway", "session_claim"}
)

// optName names the option under the dispenser's cursor for an error
// message, with its block ("redis url") when it is inside one.
func optName(d *caddyfile.Dispenser, block string) string {
	if block == "" {
		return d.Val()
	}
	return block + " " + d.Val()
}

// unknownOption reports an option that is not one of valid, naming the
// nearest valid one when the word looks like a typo of it.
func unknownOption(d *caddyfile.Dispenser, block, opt string, valid []string) error {
	prefix := ""
	if block != "" {
		prefix = block + ": "
	}
	if near := nearest(opt, valid); near != "" {
		return d.Errf("%sunknown option %q; did you mean %s?", prefix, opt, near)
	}
	return d.Errf("%sunknown option %q", prefix, opt)
}

// nearest returns the word of words closest to w in edit distance, when
// it is close enough to be a typo (at most a third of its letters off).
func nearest(w string, words []string) string {
	best, bestDist := "", len(w)/3+1
	for _, c := range words {
		if dist := editDistance(w, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func oneArg(d *caddyfile.Dispenser, block string, dst *string) error {
	opt := optName(d, block)
	if !d.NextArg() {
		return d.Errf("%s: missing value", opt)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("%s: want one value", opt)
	}
	return nil
}

func noArg(d *caddyfile.Dispenser, block string) error {
	if opt := optName(d, block); d.NextArg() {
		return d.Errf("%s takes no value", opt)
	}
	return nil
}

// intArg reads the one integer argument of an option, at least min.
func intArg(d *caddyfile.Dispenser, min int, dst *int) error {
	opt := optName(d, "")
	var v string
	if err := oneArg(d, "", &v); err != nil {
		return err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		if min == 1 {
			return d.Errf("%s: %q: want a positive integer", opt, v)
		}
		return d.Errf("%s: %q: want an integer of at least %d", opt, v, min)
	}
	*dst = n
	return nil
}

func durationArg(d *caddyfile.Dispenser, block string, dst *caddy.Duration) error {
	opt := optName(d, block)
	var v string
	if err := oneArg(d, block, &v); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return d.Errf("%s: bad duration %q: %v", opt, v, err)
	}
	if dur < 0 {
		return d.Errf("%s: duration %q must not be negative", opt, v)
	}
	*dst = caddy.Duration(dur)
	return nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
