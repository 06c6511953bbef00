package revocation

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// confirmScript looks one plain entry up in the expiry buckets that may
// hold it, for the compact denylist (filter.go), which knows a match's
// expiry to within compactUnit: the buckets of that interval, a handful,
// are read in one call. In each, the key's shard follows from the
// bucket's state as commitScript computes it. The per-key layout of
// earlier versions (<base><kind>:<hex>, a string holding the expiry) is
// read too.
//
// KEYS[1] is the first bucket's state key (for routing: every key shares
// the base's hash tag). ARGV: base, the key's 16 raw bytes, its hex form,
// its kind, the first and last bucket. Returns the latest live expiry
// found (unix s), 0 when there is none.
var confirmScript = redis.NewScript(`
local base, bin, hex, kind = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local from, to = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = tonumber(redis.call('TIME')[1])
if #bin ~= 16 or not from or not to or to - from > 64 then
  return redis.error_reply('revocation: bad confirm')
end
local function num(x) return string.format('%.0f', x) end
local b1, b2, b3, b4 = string.byte(bin, 1, 4)
local h = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
local best = 0
for b = from, to do
  local v = redis.call('GET', base .. 'e:' .. num(b))
  if v then
    local l, p = string.match(v, '^(%d+) (%d+) %d+$')
    if l then
      local size = 2 ^ tonumber(l)
      local a = h % size
      if a < tonumber(p) then a = h % (2 * size) end
      local exp = tonumber(redis.call('HGET', base .. 'e:' .. num(b) .. ':' .. num(a), bin))
      if exp and exp > now and exp > best then best = exp end
    end
  end
end
local old = tonumber(redis.call('GET', base .. kind .. ':' .. hex))
if old and old > now and old > best then best = old end
return best
`)

// confirmCompact asks Redis whether k is live with an expiry in (from,
// to], and returns its expiry: the compact denylist's confirmation of a
// match. It is bounded by IOTimeout and by the store's life.
func (s *RedisStore) confirmCompact(k Key, from, to int64) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.ioTimeout)
	defer cancel()
	first, last := from/bucketWidth, to/bucketWidth
	exp, err := confirmScript.Run(ctx, s.client, []string{s.base + "e:" + strconv.FormatInt(first, 10)},
		s.base, string(k[:]), k.String(), string(rune(k.Kind())), first, last).Int64()
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.opError("confirm", err)
		}
		return 0, false, fmt.Errorf("confirm a compact denylist match: %w", err)
	}
	return exp, exp > 0, nil
}

// setCompact turns the local copy's compact mode on (RedisOptions.Compact).
func (s *RedisStore) setCompact(on bool) {
	if on {
		s.dl.SetCompact(s.confirmCompact)
	}
}
