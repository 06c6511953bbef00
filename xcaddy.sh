#!/usr/bin/env bash
# Builds ./caddy: Caddy (pinned below) with its standard modules and this
# module, through xcaddy. xcaddy is pinned as a Go tool in tools/go.mod, so
# nothing is installed globally and it stays out of the product's own
# dependency graph.
#
# The module is named at the zero pseudo-version and replaced by this
# directory, so that no step asks the module proxy for a module that is
# not published there.
set -euo pipefail
cd "$(dirname "$0")"
root="$PWD"
caddy_version="${CADDY_VERSION:-v2.11.9}"
output="${1:-$root/caddy}"
cd tools
exec go tool xcaddy build "$caddy_version" \
	--with "github.com/caddy-revocation/caddy-revocation@v0.0.0-00010101000000-000000000000=$root" \
	--output "$output"
