// Command caddy is Caddy with the standard modules and caddy-revocation:
// the same program ./xcaddy.sh builds, kept here so that the integration
// tests and development builds need no extra tool.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules, as in the official build.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-revocation/caddy-revocation/caddymodule"
)

func main() {
	caddycmd.Main()
}
