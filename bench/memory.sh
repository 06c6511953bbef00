#!/usr/bin/env bash
# Resident memory per entry as users see it, with the real binary and
# Redis, for two builds measured side by side in the same run (OLD, the
# build before issue 21, and NEW, this worktree's): for each build,
#
#   keys      a replica cold-started on a Redis holding N entries and no
#             snapshot yet (it loads entry by entry);
#   snapshot  a replica cold-started once a snapshot exists;
#   storm     a replica started on an empty Redis, running while N entries
#             are revoked through the store's commit path in bulk (8
#             writers of 2000-entry changes) and applied from the feed;
#
# each left to settle SETTLE seconds (30) after it is ready (or after the
# storm ends), then RSS (VmRSS) and peak (VmHWM) read from /proc, minus
# those of an empty replica of the same build started alongside, divided
# by N. Also prints start to ready for the cold starts.
#
#   ./bench/memory.sh                        # N=1000000, OLD built from e3ec1a5
#   N=10000000 ./bench/memory.sh             # about 15 minutes here
#   OLD=/path/to/caddy NEW=/path/to/caddy ./bench/memory.sh
#   EXTRA='memory_budget 64MiB' ./bench/memory.sh  # a line added to NEW's revocation block
set -euo pipefail
cd "$(dirname "$0")/.."
n="${N:-1000000}"
settle="${SETTLE:-30}"
out=bench/results
mkdir -p "$out"
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

new="${NEW:-$out/caddy}"
[ -n "${NEW:-}" ] || go build -o "$new" ./cmd/caddy
old="${OLD:-}"
if [ -z "$old" ]; then
	old="$out/caddy-old"
	if [ ! -x "$old" ]; then
		git worktree add -f "$dir/old" e3ec1a5 >/dev/null 2>&1
		(cd "$dir/old" && go build -o "$OLDPWD/$old" ./cmd/caddy)
		git worktree remove --force "$dir/old"
	fi
fi
fillbin="$out/fill"
go build -o "$fillbin" ./bench/fill

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_redis() { # -> port
	local p
	p=$(port)
	redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >"$dir/redis-$p.log" 2>&1 &
	pids+=("$!")
	until redis-cli -p "$p" ping >/dev/null 2>&1; do sleep 0.05; done
	echo "$p"
}
declare -A pid_of admin_of
start_replica() { # name binary redis-port; sets pid_of[name], admin_of[name]
	local name=$1 bin=$2 rport=$3 admin site extra=""
	admin=$(port)
	site=$(port)
	[ "$bin" = "$new" ] && extra="${EXTRA:-}"
	cat >"$dir/$name.Caddyfile" <<EOC
{
	admin 127.0.0.1:$admin
}
:$site {
	bind 127.0.0.1
	revocation {
		redis redis://127.0.0.1:$rport
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
wait_ready() { # name -> seconds since t0 (global)
	until curl -sf "http://127.0.0.1:${admin_of[$1]}/revocation/ready" >/dev/null 2>&1; do sleep 0.02; done
	python3 -c "import time; print(f'{time.time() - $t0:.2f}')"
}
entries() { # name -> entries in its local copy
	curl -s "http://127.0.0.1:${admin_of[$1]}/revocation/status" |
		python3 -c 'import json,sys; print(sum(sum(s["entries"].values()) for s in json.load(sys.stdin)["stores"]))' 2>/dev/null || echo 0
}
kb() { awk -v k="$2:" '$1==k{print $2}' "/proc/${pid_of[$1]}/status"; }
row() { # label name empty-name
	local rss hwm rss0 hwm0
	rss=$(kb "$2" VmRSS); hwm=$(kb "$2" VmHWM); rss0=$(kb "$3" VmRSS); hwm0=$(kb "$3" VmHWM)
	python3 -c "n=$n; print(f'%-22s RSS %7.1f MB  peak %7.1f MB  (empty %5.1f / %5.1f MB)  per entry: %5.1f B settled, %5.1f B peak' % ('$1', $rss/1024, $hwm/1024, $rss0/1024, $hwm0/1024, ($rss-$rss0)*1024/n, ($hwm-$hwm0)*1024/n))"
}

echo "N=$n entries, settle ${settle}s; OLD=$old NEW=$new ${EXTRA:+(NEW with: $EXTRA)}"
empty=$(start_redis)
start_replica old-empty "$old" "$empty"
start_replica new-empty "$new" "$empty"

# Cold starts: fill one Redis, then start each build's replica in turn.
keys=$(start_redis)
"$fillbin" -addr "127.0.0.1:$keys" -n "$n"
for b in old new; do
	bin=$old; [ $b = new ] && bin=$new
	t0=$(python3 -c 'import time; print(time.time())')
	start_replica "$b-keys" "$bin" "$keys"
	echo "$b keys: ready $(wait_ready "$b-keys") s after start"
done
sleep "$settle"
row "old keys" old-keys old-empty
row "new keys" new-keys new-empty

echo "waiting for a snapshot (written every minute)..."
until [ -n "$(redis-cli -p "$keys" GET 'revocation:{dl}:snap')" ]; do sleep 1; done
for b in old new; do
	bin=$old; [ $b = new ] && bin=$new
	t0=$(python3 -c 'import time; print(time.time())')
	start_replica "$b-snap" "$bin" "$keys"
	echo "$b snapshot: ready $(wait_ready "$b-snap") s after start, $(grep -o '"source":"[a-z]*"' "$dir/$b-snap.log" | head -1)"
done
sleep "$settle"
row "old snapshot" old-snap old-empty
row "new snapshot" new-snap new-empty
for b in old new; do kill "${pid_of[$b-keys]}" "${pid_of[$b-snap]}"; done

# The storm: both builds running on one Redis while it is filled.
storm=$(start_redis)
for b in old new; do
	bin=$old; [ $b = new ] && bin=$new
	t0=$(python3 -c 'import time; print(time.time())')
	start_replica "$b-storm" "$bin" "$storm"
	wait_ready "$b-storm" >/dev/null
done
"$fillbin" -addr "127.0.0.1:$storm" -n "$n" -keep-feed
# Settled once both copies hold every entry.
for b in old new; do
	until [ "$(entries "$b-storm")" -ge "$n" ]; do sleep 1; done
done
sleep "$settle"
row "old storm" old-storm old-empty
row "new storm" new-storm new-empty
mem=$(redis-cli -p "$storm" INFO memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
echo "redis after the storm: used_memory $mem bytes, $((mem / n)) B per entry (feed kept)"
