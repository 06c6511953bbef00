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
. bench/lib.sh

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

# extra_for old|new: the line for that build's revocation block.
extra_for() { if [ "$1" = new ]; then echo "${EXTRA:-}"; fi; }

echo "N=$n entries, settle ${settle}s; OLD=$old NEW=$new ${EXTRA:+(NEW with: $EXTRA)}"
start_redis
empty=$rport
start_replica old-empty "$old" "$empty"
start_replica new-empty "$new" "$empty" "$(extra_for new)"

# Cold starts: fill one Redis, then start each build's replica in turn.
start_redis
keys=$rport
"$fillbin" -addr "127.0.0.1:$keys" -n "$n"
for b in old new; do
	bin=$old; [ $b = new ] && bin=$new
	t0=$(now)
	start_replica "$b-keys" "$bin" "$keys" "$(extra_for "$b")"
	echo "$b keys: ready $(wait_ready "$b-keys" "$t0") s after start"
done
sleep "$settle"
row "old keys" old-keys old-empty "$n"
row "new keys" new-keys new-empty "$n"

echo "waiting for a snapshot (written every minute)..."
until [ -n "$(redis-cli -p "$keys" GET 'revocation:{dl}:snap')" ]; do sleep 1; done
for b in old new; do
	bin=$old; [ $b = new ] && bin=$new
	t0=$(now)
	start_replica "$b-snap" "$bin" "$keys" "$(extra_for "$b")"
	echo "$b snapshot: ready $(wait_ready "$b-snap" "$t0") s after start, $(grep -o '"source":"[a-z]*"' "$dir/$b-snap.log" | head -1)"
done
sleep "$settle"
row "old snapshot" old-snap old-empty "$n"
row "new snapshot" new-snap new-empty "$n"
for b in old new; do kill "${pid_of[$b-keys]}" "${pid_of[$b-snap]}"; done

# The storm: both builds running on one Redis while it is filled.
start_redis
storm=$rport
for b in old new; do
	bin=$old; [ $b = new ] && bin=$new
	t0=$(now)
	start_replica "$b-storm" "$bin" "$storm" "$(extra_for "$b")"
	wait_ready "$b-storm" "$t0" >/dev/null
done
"$fillbin" -addr "127.0.0.1:$storm" -n "$n" -keep-feed
# Settled once both copies hold every entry.
for b in old new; do
	until [ "$(entries "$b-storm")" -ge "$n" ]; do sleep 1; done
done
sleep "$settle"
row "old storm" old-storm old-empty "$n"
row "new storm" new-storm new-empty "$n"
mem=$(redis-cli -p "$storm" INFO memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
echo "redis after the storm: used_memory $mem bytes, $((mem / n)) B per entry (feed kept)"
