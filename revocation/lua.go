package revocation

import "github.com/redis/go-redis/v9"

// commitScript applies a batch of Changes atomically, one after the other
// as if committed in that order, and appends all their records to the
// change feed as one entry. It must agree with planChange in memory.go;
// the store tests run the same cases against both.
//
// The shebang (Redis 7+) makes Redis refuse the whole script up front when
// it is out of memory, instead of failing halfway through the writes, so a
// revocation is applied entirely or not at all. Every argument is checked
// before the first write for the same reason.
//
// KEYS[1] is the feed stream; KEYS[2..] are the keys the changes name
// (for routing and ACL review). Keys derived from the seen-session set
// share the same hash tag, hence the same slot: go-redis routes the call
// by KEYS[1] to the master of that slot in Cluster mode.
//
// The seen-session set is a sorted set scored by each session's expiry
// (unix s): only live sessions are revoked by name, as planChange does.
//
// ARGV: base, feed max length, feed retention (ms), number of changes C,
// then per change: the number of puts N, then per put: kind, key hex,
// absolute expiry (unix s, 0 = use TTL), TTL (s); then the number of
// subject cuts M, then per cut: subject hex, kept session hex or "-", TTL
// (s), cutoff (unix ms, 0 = now; a later one is now too); then the global cut: "1", global key hex, cutoff (unix ms, 0 =
// now), TTL (s); or "0".
//
// Returns { feed id, server time (unix ms), then per change: existed
// flags ("0"/"1" per put), records (space separated "<key>=<value>") }.
var commitScript = redis.NewScript(`#!lua
local base = ARGV[1]
local maxlen = tonumber(ARGV[2])
local retain = tonumber(ARGV[3])
local nchanges = tonumber(ARGV[4])
local t = redis.call('TIME')
local nowSec = tonumber(t[1])
local nowMs = nowSec * 1000 + math.floor(tonumber(t[2]) / 1000)

local function num(x) return string.format('%.0f', x) end
local function ishex(h) return type(h) == 'string' and #h == 32 and not h:find('[^0-9a-f]') end

-- validate everything before the first write
if not nchanges then return redis.error_reply('revocation: bad change count') end
local changes = {}
local i = 5
for c = 1, nchanges do
  local n = tonumber(ARGV[i])
  if not n then return redis.error_reply('revocation: bad put count') end
  i = i + 1
  local puts = {}
  for p = 1, n do
    local kind, hex, abs, ttl = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), tonumber(ARGV[i+3])
    if (kind ~= 't' and kind ~= 'j' and kind ~= 's') or not ishex(hex) or not abs or not ttl then
      return redis.error_reply('revocation: bad put ' .. p)
    end
    local exp = abs
    if exp == 0 then exp = nowSec + ttl end
    puts[p] = { kind, hex, exp }
    i = i + 4
  end
  local m = tonumber(ARGV[i])
  if not m then return redis.error_reply('revocation: bad cut count') end
  i = i + 1
  local cuts = {}
  for k = 1, m do
    local subj, keep, ttl, at = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), tonumber(ARGV[i+3])
    if not ishex(subj) or (keep ~= '-' and not ishex(keep)) or not ttl or not at then
      return redis.error_reply('revocation: bad subject cut ' .. k)
    end
    -- type-check the seen-session set before the first write; it is
    -- read again when the cut is applied, after earlier changes
    redis.call('ZCARD', base .. 'seen:' .. subj)
    cuts[k] = { subj, keep, ttl, at }
    i = i + 4
  end
  local global = nil
  if ARGV[i] == '1' then
    local gk, before, ttl = ARGV[i+1], tonumber(ARGV[i+2]), tonumber(ARGV[i+3])
    if not ishex(gk) or not before or not ttl then
      return redis.error_reply('revocation: bad global cut')
    end
    if before == 0 then before = nowMs end
    global = { gk, before, ttl }
    i = i + 4
  elseif ARGV[i] == '0' then
    i = i + 1
  else
    return redis.error_reply('revocation: bad global flag')
  end
  changes[c] = { puts, cuts, global }
end

local function put(recs, kind, hex, exp)
  local k = base .. kind .. ':' .. hex
  local cur = tonumber(redis.call('GET', k) or '')
  if cur == nil or cur < exp then
    redis.call('SET', k, num(exp), 'EXAT', num(exp))
  end
  recs[#recs + 1] = hex .. '=' .. num(exp)
end

local out, all = {}, {}
for c = 1, nchanges do
  local puts, cuts, global = changes[c][1], changes[c][2], changes[c][3]
  local existed, recs = {}, {}
  for p = 1, #puts do
    local kind, hex, exp = puts[p][1], puts[p][2], puts[p][3]
    local live = redis.call('EXISTS', base .. kind .. ':' .. hex) == 1
    existed[p] = live and '1' or '0'
    if exp > nowSec then put(recs, kind, hex, exp) end
  end

  for _, cut in ipairs(cuts) do
    local subj, keep, ttl, at = cut[1], cut[2], cut[3], cut[4]
    local sk = base .. 'u:' .. subj
    local exp = nowSec + ttl
    local sessExp = exp
    local cutoff, floor = nowMs, 0
    if at > 0 and at < nowMs then cutoff = at end
    local seen = redis.call('ZRANGEBYSCORE', base .. 'seen:' .. subj, '(' .. num(nowSec), '+inf')
    local cur = redis.call('GET', sk)
    if cur then
      local oexp, ocut, okeep, ofloor = string.match(cur, '^(%d+):(%d+):([%-0-9a-f]+):(%d+)$')
      if oexp then
        oexp, ocut, ofloor = tonumber(oexp), tonumber(ocut), tonumber(ofloor)
        if ocut > cutoff then cutoff = ocut end
        if oexp > exp then exp = oexp end
        if keep ~= '-' then
          if okeep == keep then floor = ofloor else floor = ocut end
        end
      end
    end
    local v = num(exp) .. ':' .. num(cutoff) .. ':' .. keep .. ':' .. num(floor)
    redis.call('SET', sk, v, 'EXAT', num(exp))
    recs[#recs + 1] = subj .. '=' .. v
    for _, m in ipairs(seen) do
      if m ~= keep and ishex(m) then put(recs, 's', m, sessExp) end
    end
    redis.call('ZREMRANGEBYSCORE', base .. 'seen:' .. subj, '-inf', num(nowSec))
  end

  if global then
    local gk, cutoff, ttl = global[1], global[2], global[3]
    local key = base .. 'g:' .. gk
    local exp = nowSec + ttl
    local cur = redis.call('GET', key)
    if cur then
      local oexp, ocut = string.match(cur, '^(%d+):(%d+):%-:0$')
      if oexp then
        if tonumber(ocut) > cutoff then cutoff = tonumber(ocut) end
        if tonumber(oexp) > exp then exp = tonumber(oexp) end
      end
    end
    local v = num(exp) .. ':' .. num(cutoff) .. ':-:0'
    redis.call('SET', key, v, 'EXAT', num(exp))
    recs[#recs + 1] = gk .. '=' .. v
  end

  out[#out + 1] = table.concat(existed)
  out[#out + 1] = table.concat(recs, ' ')
  for _, r in ipairs(recs) do all[#all + 1] = r end
end

local id = ''
if #all > 0 then
  -- Retention by time: a storm cannot outrun a replica's load the way
  -- a count can. The count is a hard cap on memory all the same.
  id = redis.call('XADD', KEYS[1], 'MINID', '~', num(nowMs - retain), '*', 'e', table.concat(all, ' '))
  if redis.call('XLEN', KEYS[1]) > maxlen then
    redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen)
  end
end
local reply = { id, num(nowMs) }
for _, v in ipairs(out) do reply[#reply + 1] = v end
return reply
`)
