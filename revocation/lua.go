package revocation

import "github.com/redis/go-redis/v9"

// commitScript applies a batch of Changes atomically, one after the other
// as if committed in that order, and appends all their records to the
// change feed as one entry. It must agree with planChange in memory.go;
// the store tests run the same cases against both. Its cutSubject and
// mergeGlobal mirror the Go functions of those names (entry.go), the
// rules of the subject cut and the global cutoff: change them together
// (TestStoreCutsMergeByOneRule runs one table through both stores).
//
// The shebang (Redis 7+) makes Redis refuse the whole script up front when
// it is out of memory, instead of failing halfway through the writes, so a
// revocation is applied entirely or not at all. Every argument is checked
// before the first write for the same reason.
//
// KEYS[1] is the feed stream; KEYS[2..] are the keys the changes name
// (for routing and ACL review: a put names its expiry bucket's state key,
// by the local clock when it has a TTL). Keys derived from them (a
// bucket's shards, the seen-session set) share the same hash tag, hence
// the same slot: go-redis routes the call by KEYS[1] to the master of
// that slot in Cluster mode.
//
// Plain entries (t, j, s) are grouped by expiry bucket b = floor(exp / W)
// into small hashes that Redis keeps in its compact listpack encoding
// (field: the 16 raw bytes of the key, value: the expiry, unix s), all
// of a bucket's keys expiring at its end, (b+1)*W:
//
//	<base>e:<b>       the bucket's state, "<L> <p> <n>" (a string)
//	<base>e:<b>:<a>   shard a of the bucket, a hash (an empty field: a placeholder)
//	<base>ebuckets    the live buckets, a sorted set scored by their end
//	                  (only for a load's progress estimate)
//
// Linear hashing (Litwin) keeps every shard small however many entries a
// bucket gets: with h the first four bytes of the key (big-endian), a
// key's shard is h mod 2^L, or h mod 2^(L+1) when that is below the split
// pointer p. When the bucket's n fields outgrow LOAD per shard, shard p
// is split: its fields whose h mod 2^(L+1) is not p move to shard p+2^L,
// and p moves on (L grows once p reaches 2^L). A put thus moves at most
// one shard's fields. A key written again with another expiry lands in
// another bucket too: loads merge the two by the later expiry.
//
// The seen-session set is a sorted set scored by each session's expiry
// (unix s): only live sessions are revoked by name, as planChange does.
//
// ARGV: base, feed max length, feed retention (ms), bucket width W (s),
// shard load LOAD, number of changes C, then per change: the number of
// puts N, then per put: kind, key hex, key bytes (16), absolute expiry
// (unix s, 0 = use TTL), TTL (s); then the number of subject cuts M, then
// per cut: subject hex, kept session hex or "-", TTL (s), cutoff (unix ms,
// 0 = now; a later one is now too), the subject's unkeyed form whose
// noted sessions are revoked too, or "-", and the kept session's unkeyed
// form, or "-"; then the global cut: "1", global key
// hex, cutoff (unix ms, 0 = now), TTL (s); or "0".
//
// Returns { feed id, server time (unix ms), then per change: existed
// flags ("0"/"1" per put: live in the shard of its own bucket or, for
// an expiry counted from now (a TTL), of the bucket before, where the
// same put made less than a bucket width earlier lands), records (space separated "<key>=<value>") }.
var commitScript = redis.NewScript(`#!lua
local base = ARGV[1]
local maxlen = tonumber(ARGV[2])
local retain = tonumber(ARGV[3])
local width = tonumber(ARGV[4])
local load = tonumber(ARGV[5])
local nchanges = tonumber(ARGV[6])
local t = redis.call('TIME')
local nowSec = tonumber(t[1])
local nowMs = nowSec * 1000 + math.floor(tonumber(t[2]) / 1000)

local function num(x) return string.format('%.0f', x) end
local function ishex(h) return type(h) == 'string' and #h == 32 and not h:find('[^0-9a-f]') end
` + luaNoteShard + `
-- the first four bytes of a key's raw form, big-endian: its shard hash
local function hashOf(bin)
  local b1, b2, b3, b4 = string.byte(bin, 1, 4)
  return ((b1 * 256 + b2) * 256 + b3) * 256 + b4
end

-- noted returns the live sessions noted for a subject (hex keys): in the
-- note shards (see noteScript) and, as replicas of earlier versions
-- write them, in the subject's own sorted set.
local function noted(subj)
  local out = redis.call('ZRANGEBYSCORE', base .. 'seen:' .. subj, '(' .. num(nowSec), '+inf')
  local a = noteShard(subj)
  local pre = (subj:gsub('..', function(x) return string.char(tonumber(x, 16)) end))
  local all = redis.call('HGETALL', base .. 'n:' .. num(a))
  for j = 1, #all, 2 do
    local f = all[j]
    if #f == 32 and f:sub(1, 16) == pre and (tonumber(all[j + 1]) or 0) > nowSec then
      out[#out + 1] = (f:sub(17):gsub('.', function(c) return string.format('%02x', string.byte(c)) end))
    end
  end
  return out
end

-- bucket states, read once per script call and written back at its end
-- (pre: its shards' key prefix; till: its end, when its keys expire)
local states = {}
local function state(b)
  local st = states[b]
  if st then return st end
  local v = redis.call('GET', base .. 'e:' .. num(b))
  st = { L = 0, p = 0, n = 0, dirty = false, new = not v,
    pre = base .. 'e:' .. num(b) .. ':', till = num((b + 1) * width) }
  if v then
    local l, p, n = string.match(v, '^(%d+) (%d+) (%d+)$')
    if l then st.L, st.p, st.n = tonumber(l), tonumber(p), tonumber(n) end
  end
  states[b] = st
  return st
end

-- validate everything before the first write
if not width or width < 1 or not load or load < 1 then return redis.error_reply('revocation: bad bucket parameters') end
if not nchanges then return redis.error_reply('revocation: bad change count') end
local changes = {}
local i = 7
for c = 1, nchanges do
  local n = tonumber(ARGV[i])
  if not n then return redis.error_reply('revocation: bad put count') end
  i = i + 1
  local puts = {}
  for p = 1, n do
    local kind, hex, bin, abs, ttl = ARGV[i], ARGV[i+1], ARGV[i+2], tonumber(ARGV[i+3]), tonumber(ARGV[i+4])
    if (kind ~= 't' and kind ~= 'j' and kind ~= 's') or not ishex(hex) or type(bin) ~= 'string' or #bin ~= 16
      or string.byte(bin, 16) ~= string.byte(kind) or not abs or not ttl then
      return redis.error_reply('revocation: bad put ' .. p)
    end
    local h = hashOf(bin)
    if h ~= tonumber(hex:sub(1, 8), 16) then return redis.error_reply('revocation: bad put ' .. p) end
    local exp = abs
    if exp == 0 then exp = nowSec + ttl end
    -- type-checks the bucket states before the first write: the put's
    -- own, and for an expiry counted from now the one before (peek)
    if exp > nowSec then
      state(math.floor(exp / width))
      if abs == 0 then state(math.floor(exp / width) - 1) end
    end
    puts[p] = { hex, bin, h, exp, abs == 0 }
    i = i + 5
  end
  local m = tonumber(ARGV[i])
  if not m then return redis.error_reply('revocation: bad cut count') end
  i = i + 1
  local cuts = {}
  for k = 1, m do
    local subj, keep, ttl, at = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), tonumber(ARGV[i+3])
    local also, alsoKeep = ARGV[i+4], ARGV[i+5]
    if not ishex(subj) or (keep ~= '-' and not ishex(keep)) or not ttl or not at
      or (also ~= '-' and not ishex(also)) or (alsoKeep ~= '-' and not ishex(alsoKeep)) then
      return redis.error_reply('revocation: bad subject cut ' .. k)
    end
    -- type-check the seen-session set and the bucket state of the
    -- sessions it revokes before the first write; the set is read
    -- again when the cut is applied, after earlier changes
    noted(subj)
    if also ~= '-' then noted(also) end
    if ttl > 0 then state(math.floor((nowSec + ttl) / width)) end
    cuts[k] = { subj, keep, ttl, at, also, alsoKeep }
    i = i + 6
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

-- split moves the fields of the bucket's shard p that belong to shard
-- p+2^L there, and moves the split pointer on. Every shard below 2^L+p
-- exists from its bucket's first put or its split on, with the bucket's
-- expiry: a split that would leave a shard empty leaves a placeholder
-- field ("", which loads skip) in it instead, so that no put ever
-- creates a shard without an expiry.
local function split(st)
  local size = 2 ^ st.L
  local from, to = st.pre .. num(st.p), st.pre .. num(st.p + size)
  local all = redis.call('HGETALL', from)
  local moved, gone = {}, {}
  for j = 1, #all, 2 do
    if #all[j] == 16 and hashOf(all[j]) % (2 * size) ~= st.p then
      moved[#moved + 1] = all[j]
      moved[#moved + 1] = all[j + 1]
      gone[#gone + 1] = all[j]
    end
  end
  if #gone == 0 then
    moved = { '', '0' }
  elseif #gone == #all / 2 then
    redis.call('HSET', from, '', '0')
  end
  redis.call('HSET', to, unpack(moved))
  redis.call('EXPIREAT', to, st.till)
  if #gone > 0 then redis.call('HDEL', from, unpack(gone)) end
  st.p = st.p + 1
  if st.p == size then st.L, st.p = st.L + 1, 0 end
end

-- put writes a plain entry (the later expiry wins) and returns the
-- expiry there was in the shard of its bucket, if any.
local function put(recs, hex, bin, h, exp)
  local st = state(math.floor(exp / width))
  local a = h % 2 ^ st.L
  if a < st.p then a = h % 2 ^ (st.L + 1) end
  local sk = st.pre .. num(a)
  local v = num(exp)
  local cur = nil
  if redis.call('HSETNX', sk, bin, v) == 1 then
    if st.n == 0 then redis.call('EXPIREAT', sk, st.till) end -- the bucket's first shard
    st.n = st.n + 1
    st.dirty = true
    if st.n > load * (2 ^ st.L + st.p) then split(st) end
  else
    cur = tonumber(redis.call('HGET', sk, bin))
    if cur == nil or cur < exp then redis.call('HSET', sk, bin, v) end
  end
  recs[#recs + 1] = hex .. '=' .. v
  return cur
end

-- peek returns the expiry a bucket's shard holds for a key, if any,
-- without writing anything.
local function peek(b, bin, h)
  local st = state(b)
  if st.new then return nil end
  local a = h % 2 ^ st.L
  if a < st.p then a = h % 2 ^ (st.L + 1) end
  return tonumber(redis.call('HGET', st.pre .. num(a), bin))
end

local function unhex(h)
  return (h:gsub('..', function(x) return string.char(tonumber(x, 16)) end))
end

-- cutSubject merges a new subject cut e into the entry before it (old),
-- as cutSubject in entry.go: the cutoff never moves back, and a kept
-- session's floor covers what old blocked unless old kept it too.
-- Entries are { exp, cut, keep ('-': none), floor }.
local function cutSubject(old, e)
  if old.cut > e.cut then e.cut = old.cut end
  if old.exp > e.exp then e.exp = old.exp end
  if e.keep ~= '-' then
    local floor = old.cut
    if old.keep == e.keep then floor = old.floor end
    if floor > e.floor then e.floor = floor end
  end
  return e
end

-- mergeGlobal merges two global entries { exp, cut }, as mergeGlobal in
-- entry.go: the later cutoff, the later expiry.
local function mergeGlobal(a, b)
  return { exp = math.max(a.exp, b.exp), cut = math.max(a.cut, b.cut) }
end

local out, all = {}, {}
for c = 1, nchanges do
  local puts, cuts, global = changes[c][1], changes[c][2], changes[c][3]
  local existed, recs = {}, {}
  for p = 1, #puts do
    local hex, bin, h, exp, relative = puts[p][1], puts[p][2], puts[p][3], puts[p][4], puts[p][5]
    local cur = nil
    if exp > nowSec then
      cur = put(recs, hex, bin, h, exp)
      if relative and not (cur and cur > nowSec) then
        -- The same key put with the same TTL less than a bucket width
        -- ago (another replica's revocation its feed has not brought
        -- here yet) may sit in the bucket before.
        cur = peek(math.floor(exp / width) - 1, bin, h)
      end
    end
    existed[p] = (cur and cur > nowSec) and '1' or '0'
  end

  for _, cut in ipairs(cuts) do
    local subj, keep, ttl, at, also, alsoKeep = cut[1], cut[2], cut[3], cut[4], cut[5], cut[6]
    local sk = base .. 'u:' .. subj
    local sessExp = nowSec + ttl
    local e = { exp = sessExp, cut = nowMs, keep = keep, floor = 0 }
    if at > 0 and at < nowMs then e.cut = at end
    local seen = noted(subj)
    local cur = redis.call('GET', sk)
    if cur then
      local oexp, ocut, okeep, ofloor = string.match(cur, '^(%d+):(%d+):([%-0-9a-f]+):(%d+)$')
      if oexp then
        e = cutSubject({ exp = tonumber(oexp), cut = tonumber(ocut), keep = okeep, floor = tonumber(ofloor) }, e)
      end
    end
    local v = num(e.exp) .. ':' .. num(e.cut) .. ':' .. keep .. ':' .. num(e.floor)
    redis.call('SET', sk, v, 'EXAT', num(e.exp))
    recs[#recs + 1] = subj .. '=' .. v
    for _, m in ipairs(seen) do
      if m ~= keep and ishex(m) and m:sub(31, 32) == '73' then put(recs, m, unhex(m), tonumber(m:sub(1, 8), 16), sessExp) end
    end
    if also ~= '-' then
      for _, m in ipairs(noted(also)) do
        if m ~= alsoKeep and ishex(m) and m:sub(31, 32) == '73' then put(recs, m, unhex(m), tonumber(m:sub(1, 8), 16), sessExp) end
      end
    end
    redis.call('ZREMRANGEBYSCORE', base .. 'seen:' .. subj, '-inf', num(nowSec))
  end

  if global then
    local gk, cutoff, ttl = global[1], global[2], global[3]
    local key = base .. 'g:' .. gk
    local e = { exp = nowSec + ttl, cut = cutoff }
    local cur = redis.call('GET', key)
    if cur then
      local oexp, ocut = string.match(cur, '^(%d+):(%d+):%-:0$')
      if oexp then e = mergeGlobal({ exp = tonumber(oexp), cut = tonumber(ocut) }, e) end
    end
    local v = num(e.exp) .. ':' .. num(e.cut) .. ':-:0'
    redis.call('SET', key, v, 'EXAT', num(e.exp))
    recs[#recs + 1] = gk .. '=' .. v
  end

  out[#out + 1] = table.concat(existed)
  out[#out + 1] = table.concat(recs, ' ')
  for _, r in ipairs(recs) do all[#all + 1] = r end
end

for b, st in pairs(states) do
  if st.dirty then
    local till = num((b + 1) * width)
    redis.call('SET', base .. 'e:' .. num(b), num(st.L) .. ' ' .. num(st.p) .. ' ' .. num(st.n), 'EXAT', till)
    if st.new then
      -- the live buckets, for a load's estimate of what it will read
      local idx = base .. 'ebuckets'
      redis.call('ZADD', idx, till, num(b))
      redis.call('ZREMRANGEBYSCORE', idx, '-inf', num(nowSec))
      redis.call('EXPIREAT', idx, till, 'NX')
      redis.call('EXPIREAT', idx, till, 'GT')
    end
  end
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

// noteScript notes sessions in use, for subject revocations (see noted in
// commitScript). The notes of all subjects share small hashes, like the
// plain entries: a shard's fields are the 16 raw bytes of a subject key
// followed by the 16 of a session key, its values the note's expiry
// (unix s), and linear hashing on the subject key's first four bytes
// (as in commitScript) keeps every shard near LOAD fields however many
// subjects are active, so that Redis keeps it in its compact listpack
// encoding. A subject's notes all sit in one shard, which a subject
// revocation reads whole.
//
//	<base>n       the shards' state, "<L> <p> <n> <c> <s>" (a string, never
//	              expiring): n the notes counted, c the next shard pruned in
//	              turn, s the live notes counted so far in this turn
//	<base>n:<a>   shard a, a hash, expiring with its latest note
//
// Redis expires keys, not fields: the expired fields of a shard are
// dropped when a note comes to it full (2*LOAD fields), when it is split,
// and when its turn comes (one shard per call, in order); a shard whose
// notes have all expired expires whole.
//
// KEYS[1] is the state key. ARGV: base, LOAD, then per note: subject
// hex, session hex, TTL (s). Returns the number of notes written.
var noteScript = redis.NewScript(`#!lua
local base = ARGV[1]
local load = tonumber(ARGV[2])
local t = redis.call('TIME')
local nowSec = tonumber(t[1])
local function num(x) return string.format('%.0f', x) end
local function ishex(h) return type(h) == 'string' and #h == 32 and not h:find('[^0-9a-f]') end
local function unhex(h)
  return (h:gsub('..', function(x) return string.char(tonumber(x, 16)) end))
end
local function hashOf(bin)
  local b1, b2, b3, b4 = string.byte(bin, 1, 4)
  return ((b1 * 256 + b2) * 256 + b3) * 256 + b4
end
if not load or load < 1 then return redis.error_reply('revocation: bad note load') end
local notes = {}
for i = 3, #ARGV, 3 do
  local subj, sess, ttl = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if not ishex(subj) or not ishex(sess) or not ttl or ttl < 1 then
    return redis.error_reply('revocation: bad note ' .. num((i - 0) / 3))
  end
  notes[#notes + 1] = { unhex(subj) .. unhex(sess), ttl }
end

local L, p, n, c, sum = 0, 0, 0, 0, 0
local v = redis.call('GET', base .. 'n')
if v then
  local l, q, m, cc, ss = string.match(v, '^(%d+) (%d+) (%d+) (%d+) (%d+)$')
  if l then L, p, n, c, sum = tonumber(l), tonumber(q), tonumber(m), tonumber(cc), tonumber(ss) end
end

-- The count of this turn (sum) covers the shards below c: each change to
-- one of those is counted there too, so that the count a turn ends with
-- is the live notes then.

-- prune drops the expired fields of shard a and returns its live ones,
-- as a flat field, value list.
local function prune(a)
  local sk = base .. 'n:' .. num(a)
  local all = redis.call('HGETALL', sk)
  local live, gone, last = {}, {}, 0
  for j = 1, #all, 2 do
    local e = tonumber(all[j + 1]) or 0
    if e > nowSec then
      live[#live + 1] = all[j]
      live[#live + 1] = all[j + 1]
      if e > last then last = e end
    else
      gone[#gone + 1] = all[j]
    end
  end
  if #gone > 0 then
    redis.call('HDEL', sk, unpack(gone))
    n = math.max(0, n - #gone)
    if a < c then sum = math.max(0, sum - #gone) end
  end
  return live
end

-- split moves the fields of shard p that belong to shard p+2^L there,
-- and moves the split pointer on.
local function split()
  local size = 2 ^ L
  local from, to = base .. 'n:' .. num(p), base .. 'n:' .. num(p + size)
  local live = prune(p)
  local moved, gone, last = {}, {}, 0
  for j = 1, #live, 2 do
    if hashOf(live[j]) % (2 * size) ~= p then
      moved[#moved + 1] = live[j]
      moved[#moved + 1] = live[j + 1]
      gone[#gone + 1] = live[j]
      local e = tonumber(live[j + 1])
      if e > last then last = e end
    end
  end
  if #gone > 0 then
    redis.call('HSET', to, unpack(moved))
    redis.call('EXPIREAT', to, last)
    redis.call('HDEL', from, unpack(gone))
    -- counted in this turn already, and to be counted again there
    if p < c and p + size >= c then sum = math.max(0, sum - #gone) end
  end
  p = p + 1
  if p == size then L, p = L + 1, 0 end
end

for _, nt in ipairs(notes) do
  local f, ttl = nt[1], nt[2]
  local exp = nowSec + ttl
  local h = hashOf(f)
  local a = h % 2 ^ L
  if a < p then a = h % 2 ^ (L + 1) end
  local sk = base .. 'n:' .. num(a)
  -- a full shard is pruned before it outgrows the compact encoding
  if redis.call('HLEN', sk) >= 2 * load then prune(a) end
  local cur = tonumber(redis.call('HGET', sk, f))
  if not cur then
    n = n + 1
    if a < c then sum = sum + 1 end
  end
  if not cur or cur < exp then
    redis.call('HSET', sk, f, num(exp))
    redis.call('EXPIRE', sk, ttl, 'NX')
    redis.call('EXPIRE', sk, ttl, 'GT')
  end
  if n > load * (2 ^ L + p) then split() end
end
-- One more shard in turn is pruned and counted, so that every shard is
-- pruned now and then, and the count n, which shards that expire whole
-- leave too high, is set again to the live notes once the turn is done.
if c >= 2 ^ L + p then
  n, c, sum = sum, 0, 0
end
local live = prune(c)
sum, c = sum + #live / 2, c + 1
redis.call('SET', base .. 'n', num(L) .. ' ' .. num(p) .. ' ' .. num(n) .. ' ' .. num(c) .. ' ' .. num(sum))
return #notes
`)

// luaNoteShard defines noteShard(subj) for a script that has base: the
// index of the note shard that holds a subject's notes (subj in hex), by
// linear hashing over the level and split pointer in base..'n' (see
// noteScript, which keeps them). The commit script's subject cut and
// seenScript read the shards through it.
const luaNoteShard = `
local function noteShard(subj)
  local L, p = 0, 0
  local v = redis.call('GET', base .. 'n')
  if v then
    local l, q = string.match(v, '^(%d+) (%d+) ')
    if l then L, p = tonumber(l), tonumber(q) end
  end
  local h = tonumber(subj:sub(1, 8), 16)
  local a = h % 2 ^ L
  if a < p then a = h % 2 ^ (L + 1) end
  return a
end
`

// seenScript returns the expiry (unix s) of a session's note for a
// subject, 0 when there is none, from the note shards or the subject's
// own sorted set (earlier versions). KEYS[1] is the shards' state key.
// ARGV: base, subject hex, session hex.
var seenScript = redis.NewScript(`#!lua
local base, subj, sess = ARGV[1], ARGV[2], ARGV[3]
local best = tonumber(redis.call('ZSCORE', base .. 'seen:' .. subj, sess)) or 0
` + luaNoteShard + `
local a = noteShard(subj)
local function unhex(x)
  return (x:gsub('..', function(c) return string.char(tonumber(c, 16)) end))
end
local e = tonumber(redis.call('HGET', base .. 'n:' .. string.format('%.0f', a), unhex(subj) .. unhex(sess))) or 0
if e > best then best = e end
return best
`)
