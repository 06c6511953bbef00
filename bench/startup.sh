#!/usr/bin/env bash
# Start to ready with the real binary: a Redis holding N entries (default
# one million, SHA-256-spread keys as real ones are, written by
# bench/fill through the store's commit path), a first replica that
# loads them entry by entry, then, once a replica has written its
# snapshot (every minute), a second replica that loads from it. Prints
# the seconds from process start to GET /revocation/ready answering 200.
#
#   ./bench/startup.sh            # N=1000000
#   N=5000000 ./bench/startup.sh
#   N=0 ./bench/startup.sh        # an empty Redis: first replica only
#   CADDY=/path/to/caddy FIRST_ONLY=1 ./bench/startup.sh   # another build, first replica only
set -euo pipefail
cd "$(dirname "$0")/.."
n="${N:-1000000}"
out=bench/results
mkdir -p "$out"
caddy="${CADDY:-$out/caddy}"
[ -n "${CADDY:-}" ] || go build -o "$caddy" ./cmd/caddy
dir=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
rpid=$!
pids=("$rpid")
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done

# The entries go in through the store's own commit path, in bulk, expiring
# over the hour after the next; the change feed that carried them is
# deleted, as its retention would empty it after five minutes.
fillbin="$out/fill"
go build -o "$fillbin" ./bench/fill
mem0=$(redis-cli -p "$rport" INFO memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
if [ "$n" -gt 0 ]; then
	"$fillbin" -addr "127.0.0.1:$rport" -n "$n"
	mem=$(redis-cli -p "$rport" INFO memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
	echo "redis: $n entries, used_memory $mem bytes ($(( (mem - mem0) / n )) B/entry beyond the empty server)"
fi

start_replica() { # name -> seconds to ready
	local name=$1 admin site
	admin=$(port); site=$(port)
	cat >"$dir/$name.Caddyfile" <<EOC
{
	admin 127.0.0.1:$admin
}
:$site {
	bind 127.0.0.1
	revocation {
		redis redis://127.0.0.1:$rport
		jwt {
			hmac_secret bench-secret-0123456789abcdef0123
		}
	}
	respond "ok"
}
EOC
	local t0 t1
	t0=$(date +%s.%N)
	"$caddy" run --config "$dir/$name.Caddyfile" --adapter caddyfile >"$dir/$name.log" 2>&1 &
	pids+=("$!")
	until curl -sf "http://127.0.0.1:$admin/revocation/ready" >/dev/null 2>&1; do sleep 0.02; done
	t1=$(date +%s.%N)
	echo "$name: ready $(python3 -c "print(f'{$t1 - $t0:.2f}')") s after start; $(grep -o '"source":"[a-z]*"' "$dir/$name.log" | head -1)"
}
start_replica first
# An empty denylist has nothing to snapshot.
[ -z "${FIRST_ONLY:-}" ] && [ "$n" -gt 0 ] || exit 0
echo "waiting for a snapshot (written every minute)..."
until [ -n "$(redis-cli -p "$rport" GET 'revocation:{dl}:snap')" ]; do sleep 1; done
start_replica second
mem=$(redis-cli -p "$rport" INFO memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
echo "redis with the snapshot: used_memory $mem bytes ($(( (mem - mem0) / n )) B/entry beyond the empty server)"
