#!/usr/bin/env bash
# Issue 21's moonshot at size: N token revocations in one Redis, a replica
# of each build started on it, measured from outside as bench/memory.sh
# measures (RSS and VmHWM from /proc minus those of an empty replica of the
# same build started alongside, after SETTLE seconds).
#
#   ./bench/moonshot.sh fill              # fill one Redis in steps to each of
#                                         # SIZES, saving an RDB of each in DATA
#   ./bench/moonshot.sh measure BIN [EXTRA]
#                                         # for each saved size: start Redis on
#                                         # its RDB, then a replica of BIN (with
#                                         # EXTRA in its revocation block) from
#                                         # the keys, then, once that one has
#                                         # written a snapshot, from the snapshot
#
#   SIZES="10000000 30000000 100000000" DATA=/tmp/moon/data ./bench/moonshot.sh fill
#   STEP=10000000 SIZES=100000000 ./bench/moonshot.sh fill   # in 10M steps
#   ./bench/moonshot.sh measure bench/results/caddy-old
#   ./bench/moonshot.sh measure bench/results/caddy 'compact_denylist'
#
# For each size it prints Redis's used_memory per entry (the entries in
# their buckets, then with the snapshot too), start to ready, and RSS per
# entry settled and at peak. The entries expire from 47 h after the fill
# on, so the RDBs serve a day. At 100M Redis holds several GB and so does
# an exact replica: watch free -g.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${SIZES:-10000000 30000000 100000000}"
data="${DATA:-/tmp/moon/data}"
settle="${SETTLE:-30}"
mkdir -p "$data"
replica_lines="memory_budget off"
. bench/lib.sh

case "${1:-}" in
fill)
	go build -o "$dir/fill" ./bench/fill
	start_redis
	base=$rport
	from=0
	step="${STEP:-0}"
	for n in $sizes; do
		# In steps of STEP entries (each fill deletes the feed that
		# carried its entries, as retention would), printing Redis's
		# memory after each.
		while [ "$from" -lt "$n" ]; do
			to=$n
			[ "$step" -gt 0 ] && to=$((from + step < n ? from + step : n))
			"$dir/fill" -addr "127.0.0.1:$base" -from "$from" -n $((to - from)) -expires 47h -spread 1h
			from=$to
			echo "N=$to: redis used_memory $(( $(used "$base") / to )) B per entry (the entries in their buckets)"
		done
		redis-cli -p "$base" SAVE >/dev/null
		mv "$dir/r$base/dump.rdb" "$data/$n.rdb"
		echo "N=$n: saved $data/$n.rdb ($(du -h "$data/$n.rdb" | cut -f1))"
	done
	;;
measure)
	bin=$2
	extra=${3:-}
	start_redis
	start_replica empty "$bin" "$rport" "$extra"
	wait_ready empty "$(now)" >/dev/null
	for n in $sizes; do
		[ -f "$data/$n.rdb" ] || continue
		start_redis "$data/$n.rdb"
		# The RDB's snapshot, if any, has expired or will: load from keys.
		redis-cli -p "$rport" DEL 'revocation:{dl}:snap' 'revocation:{dl}:csnap' >/dev/null
		echo "N=$n $bin ${extra:+($extra)}: redis used_memory $(( $(used "$rport") / n )) B per entry (the entries in their buckets)"
		t0=$(now)
		start_replica "k$n" "$bin" "$rport" "$extra"
		echo "N=$n from the keys: ready $(wait_ready "k$n" "$t0") s after start"
		sleep "$settle"
		row "N=$n from the keys" "k$n" empty "$n"
		# It writes a snapshot within a minute of being ready; a compact
		# replica its compact snapshot (builds before it write none: 150 s).
		snap='revocation:{dl}:snap' limit=1000000
		[[ "$extra" == *compact_denylist* ]] && snap='revocation:{dl}:csnap' limit=150
		waited=0
		until [ -n "$(redis-cli -p "$rport" GET "$snap")" ] || [ $waited -ge $limit ]; do sleep 1; waited=$((waited + 1)); done
		if [ -z "$(redis-cli -p "$rport" GET "$snap")" ]; then
			echo "N=$n: no snapshot written in $limit s"
			stop "${pid_of[k$n]}"
			stop "$redis_pid"
			continue
		fi
		sleep 2
		echo "N=$n: redis used_memory $(( $(used "$rport") / n )) B per entry (with the snapshot)"
		stop "${pid_of[k$n]}"
		t0=$(now)
		start_replica "s$n" "$bin" "$rport" "$extra"
		echo "N=$n from the snapshot: ready $(wait_ready "s$n" "$t0") s after start, $(grep -o '"source":"[a-z ]*"' "$dir/s$n.log" | head -1)"
		sleep "$settle"
		row "N=$n from the snapshot" "s$n" empty "$n"
		stop "${pid_of[s$n]}"
		stop "$redis_pid"
	done
	;;
*)
	sed -n '2,24p' "$0"
	exit 2
	;;
esac
