#!/usr/bin/env bash
# Runs the whole test suite: what a change must pass, and what the README's
# test command is. It ends with scripts/test-deploy.sh (the deploy/
# module: the kustomize base and the Dockerfile, with the Kubernetes
# libraries; also runnable alone). The fuzz targets' seed corpora run
# here, as the unit tests they also are; CI (.ci/run) then fuzzes each
# target for a while with scripts/fuzz.sh.
#
# Makes sure the binaries the tests run exist (redis-server,
# redis-sentinel, redis-cli; promtool for the alerting rules): from PATH,
# else installed from Debian's packages when running as root, else it
# stops and says what to install. The tests start their own servers on
# free loopback ports and stop them.
#
# Each step prints how long it took. ./caddy is rebuilt only when a file
# it is built from changed (a hash of them is kept in .caddy.sha256);
# go vet, staticcheck and go test keep their own caches.
set -euo pipefail
cd "$(dirname "$0")/.."

# ./xcaddy.sh builds with -trimpath, CGO_ENABLED=0 and the tags below
# (xcaddy's defaults); go vet and staticcheck get the same, so that the
# three compile each dependency once between them instead of twice
# (minutes with a cold cache). Not go test: -race needs cgo, and the
# integration tests find the repository from their source file's path.
trimpath=(env CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath -tags=nobadger,nomysql,nopgx")

# step NAME: ends the previous step (printing its time) and starts NAME.
step_name="" step_start=$SECONDS
step() {
	if [ -n "$step_name" ]; then
		echo "    (took $((SECONDS - step_start))s)"
	fi
	step_name="$1" step_start=$SECONDS
	[ -z "$1" ] || echo "==> $1"
}

# need BIN... -- PACKAGE...: installs the Debian packages when a binary is
# missing (as root), else stops with the command to run.
need() {
	local bins=() pkgs=() missing=()
	while [ "$1" != "--" ]; do bins+=("$1"); shift; done
	shift
	pkgs=("$@")
	for bin in "${bins[@]}"; do
		command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
	done
	((${#missing[@]})) || return 0
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "==> installing ${pkgs[*]} (missing: ${missing[*]})"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
	else
		echo "error: ${missing[*]} not found on PATH." >&2
		echo "Install them and run again; on Debian: sudo apt-get install -y ${pkgs[*]}" >&2
		exit 1
	fi
}
need redis-server redis-sentinel redis-cli -- redis-server redis-sentinel redis-tools
# promtool checks deploy/monitoring's alerting rules; Debian ships it
# with the prometheus package.
need promtool -- prometheus
# The store needs Redis 7 (script shebangs, XINFO entries-added), and the
# Cluster test's nodes take an explicit bus port (cluster-port, 7.0+);
# redis-cli --cluster create builds that Cluster.
redis_version=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
if [ "${redis_version:-0}" -lt 7 ]; then
	echo "error: redis-server $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') is too old: the tests need Redis 7 or later" >&2
	exit 1
fi

step "gofmt"
unformatted=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './tools/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

step "go vet"
"${trimpath[@]}" go vet ./...

step "staticcheck (it keeps its own cache: ~/.cache/staticcheck, or \$STATICCHECK_CACHE)"
"${trimpath[@]}" go tool -modfile=tools/go.mod staticcheck ./...

step "build ./caddy with ./xcaddy.sh (the quick start's build)"
# What ./caddy is built from: the product's Go files (tests excluded),
# the module files, the build script, the Go and Caddy versions.
build_hash=$( {
	go version
	echo "${CADDY_VERSION:-}"
	git ls-files --cached --others --exclude-standard -- '*.go' go.mod go.sum tools/go.mod tools/go.sum xcaddy.sh |
		grep -v -e '_test\.go$' -e '^integration/' -e '^deploy/' -e '^bench/' | sort | xargs sha256sum
} | sha256sum | cut -d' ' -f1)
if [ -x caddy ] && [ -f .caddy.sha256 ] && [ "$(cat .caddy.sha256)" = "$build_hash" ]; then
	echo "    ./caddy is up to date (no source changed since it was built); not rebuilt"
else
	rm -f .caddy.sha256
	if ! ./xcaddy.sh >/tmp/xcaddy.$$.log 2>&1; then
		cat /tmp/xcaddy.$$.log >&2
		rm -f /tmp/xcaddy.$$.log
		exit 1
	fi
	rm -f /tmp/xcaddy.$$.log
	echo "$build_hash" >.caddy.sha256
fi

step "caddy fmt: the shipped Caddyfiles"
for f in Caddyfile.example deploy/kubernetes/Caddyfile cmd/session-app/Caddyfile; do
	if ! ./caddy fmt "$f" | cmp -s - "$f"; then
		echo "$f is not formatted as caddy fmt formats it; run: ./caddy fmt --overwrite $f" >&2
		./caddy fmt --diff "$f" >&2
		exit 1
	fi
done

step "promtool: deploy/monitoring's alerting rules, and their unit tests"
promtool check rules deploy/monitoring/alerts.yml
promtool test rules deploy/monitoring/alerts_test.yml

step "go test -race ./... (integration tests run the ./caddy just built)"
CADDY_BIN="$PWD/caddy" go test -race -count=1 ./...

step "deploy/: the kustomize base, its overlay and the Dockerfile (scripts/test-deploy.sh)"
scripts/test-deploy.sh

step ""
echo "==> all tests passed in ${SECONDS}s"
