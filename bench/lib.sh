# Shared by the bench/ scripts that start Redis servers and replicas of
# the real binary and read their memory from /proc (memory.sh,
# moonshot.sh). Source it after `cd` to the repository's root:
#
#   . bench/lib.sh
#   start_redis                      # sets rport and redis_pid
#   start_replica a ./caddy "$rport" 'compact_denylist'
#   echo "ready $(wait_ready a "$t0") s after t0"
#   row "label" a empty "$n"         # RSS and peak per entry, minus an empty replica
#
# Everything it starts is stopped by PID when the script exits, and its
# files live in a temporary directory removed then.

dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

# replica_lines: lines every replica's revocation block gets, beside
# the caller's extra (e.g. "memory_budget off").
replica_lines="${replica_lines:-}"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { python3 -c 'import time; print(time.time())'; }

# start_redis [rdb]: a Redis on a free loopback port, on a copy-free
# link to rdb when given. Sets rport and redis_pid (not in a subshell,
# so that cleanup knows its PID).
start_redis() {
	rport=$(port)
	local args=(--port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir/r$rport")
	mkdir -p "$dir/r$rport"
	if [ -n "${1:-}" ]; then
		ln -s "$1" "$dir/r$rport/dump.rdb"
		args+=(--dbfilename dump.rdb)
	fi
	redis-server "${args[@]}" >"$dir/redis-$rport.log" 2>&1 &
	redis_pid=$!
	pids+=("$redis_pid")
	until [ "$(redis-cli -p "$rport" ping 2>/dev/null)" = PONG ]; do
		kill -0 "$redis_pid" 2>/dev/null || { tail -5 "$dir/redis-$rport.log" >&2; return 1; }
		sleep 0.05
	done
}

declare -A pid_of admin_of
# start_replica name binary redis-port [extra]: a replica of binary on
# that Redis, extra (and replica_lines) in its revocation block. Sets
# pid_of[name] and admin_of[name]; its log is $dir/name.log.
start_replica() {
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
		$replica_lines
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

# wait_ready name t0: waits for the replica's /revocation/ready, then
# prints the seconds since t0 (from now).
wait_ready() {
	until curl -sf "http://127.0.0.1:${admin_of[$1]}/revocation/ready" >/dev/null 2>&1; do
		kill -0 "${pid_of[$1]}" 2>/dev/null || { echo "replica $1 died:" >&2; tail -5 "$dir/$1.log" >&2; return 1; }
		sleep 0.02
	done
	python3 -c "import time; print(f'{time.time() - $2:.2f}')"
}

# entries name: the entries in the replica's local copy.
entries() {
	curl -s "http://127.0.0.1:${admin_of[$1]}/revocation/status" |
		python3 -c 'import json,sys; print(sum(sum(s["entries"].values()) for s in json.load(sys.stdin)["stores"]))' 2>/dev/null || echo 0
}

kb() { awk -v k="$2:" '$1==k{print $2}' "/proc/${pid_of[$1]}/status"; }

# row label name empty-name n: the replica's RSS (VmRSS) and peak
# (VmHWM), and each per entry beyond an empty replica's.
row() {
	local rss hwm rss0 hwm0
	rss=$(kb "$2" VmRSS)
	hwm=$(kb "$2" VmHWM)
	rss0=$(kb "$3" VmRSS)
	hwm0=$(kb "$3" VmHWM)
	python3 -c "n=$4; print(f'%-28s RSS %8.1f MB  peak %8.1f MB  (empty %5.1f / %5.1f MB)  per entry: %5.2f B settled, %5.2f B peak' % ('$1', $rss/1024, $hwm/1024, $rss0/1024, $hwm0/1024, ($rss-$rss0)*1024/n, ($hwm-$hwm0)*1024/n))"
}

# used port: Redis's used_memory, in bytes.
used() { redis-cli -p "$1" INFO memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r'; }

# stop pid: stops a process this script started, and waits for it.
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
