#!/usr/bin/env bash
# Reproduces the benchmark tables of docs/performance.md (SPEC section 6), all in one run:
#
#   (a) the denylist check at 0, 1e4, 1e6 and 1e7 entries (ns/op, allocs/op),
#       beside four plain map lookups of the same size;
#   (b) resident heap bytes per entry at 1e6 entries;
#       plus the whole per-request path for a token seen before, beside a
#       SHA-256 of the token alone, and the handler's own cost per request
#       for each place a credential comes from (bearer header, query,
#       cookie, JSON, form, multipart and gzip bodies, none), beside a
#       SHA-256 of the token measured in the same process;
#       each Go benchmark runs COUNT times (3), and the median of the runs
#       is printed at the end of this part (bench/results/go-median.txt);
#   (c) proxied requests/s and p99 latency: plain reverse_proxy, revocation
#       with HS256, with ES256, and forward_auth to a service that asks
#       Redis on every request; the servers share one core, wrk the other;
#       ROUNDS rounds (5) of DURATION (10s) each after a 2 s warm-up, each
#       ratio taken against the baseline of its own round, the median over
#       rounds printed with its range;
#   (d) propagation of a revocation to other replicas, p50/p99;
#   (e) the headline overhead: the same binary with and without the
#       revocation directive only (Redis store, HS256, 1000 tokens), as
#       PAIRS (10) pairs of side-by-side processes, each pair loaded at
#       once (one wrk each) over SLICES (6) slices of 3 s, the proxy's
#       CPU time per request (from /proc) as a ratio to the baseline
#       process of its pair; a run reports the mean over pairs with its
#       95% confidence interval, and the median with the interquartile
#       range; two repeat runs (about 3.5 minutes each here), whose
#       agreement is the measurement's precision;
#   (f) with 1M entries in one Redis and two, then three replicas
#       (bench/storm): revocations/s through the admin API in bulk,
#       propagation p50/p99 at rest and during a 5k/s storm (bulk calls,
#       then single calls), a replica joining during the storm;
#   (g) start to ready with the real binary and Redis bytes per entry
#       (bench/startup.sh) at each of STARTUP_N entries ("0 1000000";
#       "0 1000000 5000000 10000000" adds about 10 minutes);
#   (h) resident memory per entry as users see it (bench/memory.sh), the
#       build before issue 21 beside this one, at each of MEMORY_N
#       entries ("1000000": about 5 minutes; "1000000 10000000" adds
#       about 20).
#
# Results go to bench/results/ (not committed). Needs wrk and redis-server
# (installed from Debian's packages when run as root).
#
#   ./bench/run.sh              # about 20 minutes here
#   ROUNDS=7 COUNT=5 DURATION=20s ./bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"

for bin in wrk redis-server; do
	if ! command -v "$bin" >/dev/null 2>&1; then
		if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
			apt-get update -qq
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk redis-server >/dev/null
		else
			echo "error: $bin not found; on Debian: sudo apt-get install -y wrk redis-server" >&2
			exit 1
		fi
	fi
done

echo "==> (a, b) Go benchmarks: denylist check, memory per entry, request path"
go test -run '^$' -bench 'DenylistCheck|BaselineMapLookup|DenylistMemory|RequestPath' \
	-benchmem -count "${COUNT:-3}" ./revocation/ | tee "$out/go.txt"
echo "==> the handler's own cost per proxied request, per credential source (a token seen before)"
go test -run '^$' -bench 'Guard' -benchmem -count "${COUNT:-3}" ./caddymodule/ | grep -E '^(Benchmark|ok)' | tee -a "$out/go.txt"
echo "==> (a, b) median of the ${COUNT:-3} runs of each Go benchmark (what docs/performance.md quotes)"
# For each benchmark, in the order they ran, the median of every metric
# (ns/op, B/op, allocs/op, bytes/entry) over its runs.
awk '/^Benchmark/ {
	if (!($1 in runs)) order[++n] = $1
	r = ++runs[$1]
	for (i = 3; i < NF; i += 2) { unit[$1, (i - 1) / 2] = $(i + 1); val[$1, (i - 1) / 2, r] = $i; m[$1] = (i - 1) / 2 }
}
END {
	for (k = 1; k <= n; k++) {
		b = order[k]; line = b
		for (j = 1; j <= m[b]; j++) {
			c = 0
			for (r = 1; r <= runs[b]; r++) if ((b, j, r) in val) v[++c] = val[b, j, r] + 0
			for (x = 2; x <= c; x++) for (y = x; y > 1 && v[y - 1] > v[y]; y--) { t = v[y]; v[y] = v[y - 1]; v[y - 1] = t }
			med = c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
			line = line sprintf(med >= 1e4 ? "\t%.0f %s" : "\t%.4g %s", med, unit[b, j])
		}
		print line
	}
}' "$out/go.txt" | tee "$out/go-median.txt"

echo "==> (c) end-to-end load"
go build -o "$out/caddy" ./cmd/caddy
go build -o "$out/loadbench" ./bench/loadbench
"$out/loadbench" -caddy "$out/caddy" -rounds "${ROUNDS:-5}" -duration "${DURATION:-10s}" \
	-json "$out/load.json" | tee "$out/load.md"

echo "==> (d) propagation between three replicas sharing one Redis"
PROPAGATION_OUT="$PWD/$out/propagation.json" go test -count=1 -run '^TestReplicasPropagateRevocations$' -v ./integration/ \
	| grep -E 'propagation over|^(ok|FAIL|---)' | tee "$out/propagation.txt"
cat "$out/propagation.json"

echo "==> (e) overhead of the directive alone: two repeat runs of ${PAIRS:-10} pairs of processes"
for i in 1 2; do
	"$out/loadbench" -caddy "$out/caddy" -scenarios 1 -pairs "${PAIRS:-10}" -slices "${SLICES:-6}" -duration 3s -warmup 1s \
		-threads 1 -connections 16 -json "$out/overhead-$i.json" | tee "$out/overhead-$i.md"
done

echo "==> (f) revocations/s, propagation in a storm, a replica joining in a storm (1M entries)"
go build -o "$out/storm" ./bench/storm
"$out/storm" -caddy "$out/caddy" -json "$out/storm.json" | tee "$out/storm.txt"
"$out/storm" -caddy "$out/caddy" -single -json "$out/storm-single.json" | tee "$out/storm-single.txt"

echo "==> (g) start to ready and Redis bytes per entry at ${STARTUP_N:-0 1000000} entries"
for n in ${STARTUP_N:-0 1000000}; do
	N="$n" CADDY="$out/caddy" ./bench/startup.sh | tee "$out/startup-$n.txt"
done

echo "==> (h) RSS per entry, settled and at peak, cold from keys, from the snapshot and through a storm, old build beside this one, at ${MEMORY_N:-1000000} entries"
for n in ${MEMORY_N:-1000000}; do
	N="$n" NEW="$out/caddy" ./bench/memory.sh | tee "$out/memory-$n.txt"
done
