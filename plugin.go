// Package caddyrevocation plugs caddy-revocation into Caddy: importing it
// registers the http.handlers.revocation handler, the "revocation"
// Caddyfile directive, the admin.api.revocation routes and the
// "caddy revocation" command. It is what xcaddy's --with names.
package caddyrevocation

import (
	// The Caddy modules live in caddymodule; the core in revocation.
	_ "github.com/caddy-revocation/caddy-revocation/caddymodule"
)
