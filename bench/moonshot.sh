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
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_pid=""
start_redis() { # [rdb] -> sets rport, redis_pid
	rport=$(port)
	local args=(--port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir/r$rport")
	mkdir -p "$dir/r$rport"
	[ -n "${1:-}" ] && ln -s "$1" "$dir/r$rport/dump.rdb" && args+=(--dbfilename dump.rdb)
	redis-server "${args[@]}" >"$dir/redis-$rport.log" 2>&1 &
	redis_pid=$!
	pids+=("$redis_pid")
	until [ "$(redis-cli -p "$rport" ping 2>/dev/null)" = PONG ]; do sleep 0.2; done
}
declare -A pid_of admin_of
start_replica() { # name binary redis-port extra
	local name=$1 bin=$2 rp=$3 extra=${4:-} admin site
	admin=$(port)
	site=$(port)
	cat >"$dir/$name.Caddyfile" <<EOC
{
	admin 127.0.0.1:$admin
}
:$site {
	bind 127.0.0.1
	revocation {
		redis redis://127.0.0.1:$rp
		memory_budget off
		$extra
		jwt {
			hmac_secret bench-secret-0123456789abcdef0123
		}
	}
	respond "ok"
}
EOC
	"$bin" run --config "$dir/$name.Caddyfile" --adapter caddyfile >"$dir/$name.log" 2>&1 &
	pid_of[$name]=$!
	admin_of[$name]=$admin
	pids+=("$!")
}
now() { python3 -c 'import time; print(time.time())'; }
wait_ready() { # name t0 -> seconds
	until curl -sf "http://127.0.0.1:${admin_of[$1]}/revocation/ready" >/dev/null 2>&1; do
		kill -0 "${pid_of[$1]}" 2>/dev/null || { echo "replica $1 died:" >&2; tail -5 "$dir/$1.log" >&2; return 1; }
		sleep 0.05
	done
	python3 -c "import time; print(f'{time.time() - $2:.2f}')"
}
kb() { awk -v k="$2:" '$1==k{print $2}' "/proc/${pid_of[$1]}/status"; }
row() { # label name empty-name n
	local rss hwm rss0 hwm0
	rss=$(kb "$2" VmRSS); hwm=$(kb "$2" VmHWM); rss0=$(kb "$3" VmRSS); hwm0=$(kb "$3" VmHWM)
	python3 -c "n=$4; print(f'%-28s RSS %8.1f MB  peak %8.1f MB  (empty %5.1f / %5.1f MB)  per entry: %5.2f B settled, %5.2f B peak' % ('$1', $rss/1024, $hwm/1024, $rss0/1024, $hwm0/1024, ($rss-$rss0)*1024/n, ($hwm-$hwm0)*1024/n))"
}
used() { redis-cli -p "$1" INFO memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r'; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

case "${1:-}" in
fill)
	go build -o "$dir/fill" ./bench/fill
	start_redis
	base=$rport
	from=0
	for n in $sizes; do
		"$dir/fill" -addr "127.0.0.1:$base" -from "$from" -n $((n - from)) -expires 47h -spread 1h
		from=$n
		echo "N=$n: redis used_memory $(( $(used "$base") / n )) B per entry (the entries in their buckets)"
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
