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
# The store needs Redis 7 (script shebangs, XINFO entries-added), and the
# Cluster test's nodes take an explicit bus port (cluster-port, 7.0+);
# redis-cli --cluster create builds that Cluster.
redis_version=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
if [ "${redis_version:-0}" -lt 7 ]; then
	echo "error: redis-server $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') is too old: the tests need Redis 7 or later" >&2
	exit 1
fi

echo "==> gofmt"
unformatted=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './tools/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "==> go vet"
go vet ./...
(cd deploy && go vet ./...)

echo "==> staticcheck"
go tool -modfile=tools/go.mod staticcheck ./...
(cd deploy && go tool -modfile=../tools/go.mod staticcheck ./...)

echo "==> build ./caddy with ./xcaddy.sh (the README's build)"
./xcaddy.sh >/dev/null

echo "==> go test -race ./... (integration tests run the ./caddy just built)"
CADDY_BIN="$PWD/caddy" go test -race -count=1 ./...

echo "==> deploy/: the kustomize base (rendered with kustomize's Go API) and the Dockerfile"
(cd deploy && go test -race -count=1 ./...)

echo "==> fuzzing the parsers briefly (\${FUZZTIME:-5s} each)"
# Every FuzzXxx target of the module, found rather than listed, so that a
# new one is fuzzed too. The fuzzing engine can give up on a loaded
# machine ("context deadline exceeded"): one retry, then a real failure.
for pkg in ./caddymodule ./revocation; do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		run() { go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-5s}" "$pkg" >/tmp/fuzz.$$.log 2>&1; }
		if ! run; then
			if grep -q 'context deadline exceeded' /tmp/fuzz.$$.log && run; then
				continue
			fi
			cat /tmp/fuzz.$$.log >&2
			rm -f /tmp/fuzz.$$.log
			echo "fuzz target $target ($pkg) failed" >&2
			exit 1
		fi
	done
done
rm -f /tmp/fuzz.$$.log

echo "==> all tests passed"
