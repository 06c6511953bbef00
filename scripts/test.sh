#!/usr/bin/env bash
# Runs the whole test suite, as CI does (.ci/run calls this script).
#
# Makes sure the Redis binaries the tests start exist (redis-server,
# redis-sentinel, redis-cli): from PATH, else installed from Debian's
# packages when running as root, else it stops and says what to install.
# The tests start their own servers on free loopback ports and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for bin in redis-server redis-sentinel redis-cli; do
	command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
if ((${#missing[@]})); then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "==> installing redis-server redis-sentinel redis-tools (missing: ${missing[*]})"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-sentinel redis-tools >/dev/null
	else
		echo "error: ${missing[*]} not found on PATH." >&2
		echo "Install them and run again; on Debian: sudo apt-get install -y redis-server redis-sentinel redis-tools" >&2
		exit 1
	fi
fi

echo "==> gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './tools/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "==> go vet"
go vet ./...

echo "==> staticcheck"
go tool -modfile=tools/go.mod staticcheck ./...

echo "==> build ./caddy with ./xcaddy.sh (the README's build)"
./xcaddy.sh >/dev/null

echo "==> go test -race ./... (integration tests run the ./caddy just built)"
CADDY_BIN="$PWD/caddy" go test -race -count=1 ./...

echo "==> all tests passed"
