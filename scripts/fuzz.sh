#!/usr/bin/env bash
# Fuzzes every FuzzXxx target of the module for ${FUZZTIME:-30s} each
# (CI runs it after scripts/test.sh). The targets' seed corpora already
# run in scripts/test.sh as unit tests; this searches beyond them. Each
# target first compiles a coverage-instrumented test binary (minutes with
# a cold Go cache), then fuzzes for FUZZTIME.
#
#   scripts/fuzz.sh                      # every target, 30s each
#   FUZZTIME=5m scripts/fuzz.sh          # longer
#   scripts/fuzz.sh Authorization        # targets whose name matches
set -euo pipefail
cd "$(dirname "$0")/.."

match="${1:-.}"
start=$SECONDS
# Targets are found rather than listed, so that a new one is fuzzed too.
# The fuzzing engine can give up on a loaded machine ("context deadline
# exceeded"): one retry, then a real failure.
for pkg in ./caddymodule ./extract ./revocation; do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' | grep -e "$match" || true); do
		echo "==> $target ($pkg), ${FUZZTIME:-30s}"
		run() { go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-30s}" "$pkg" >/tmp/fuzz.$$.log 2>&1; }
		if ! run; then
			if grep -q 'context deadline exceeded' /tmp/fuzz.$$.log && run; then
				continue
			fi
			cat /tmp/fuzz.$$.log >&2
			rm -f /tmp/fuzz.$$.log
			echo "fuzz target $target ($pkg) failed; its failing input is under $pkg/testdata/fuzz/$target/" >&2
			exit 1
		fi
	done
done
rm -f /tmp/fuzz.$$.log
echo "==> fuzzing passed in $((SECONDS - start))s"
