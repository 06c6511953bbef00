package revocation

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// A compact snapshot is the compact denylist's static parts (filter.go)
// as one replica held them at a feed position, so that a starting compact
// replica copies them straight into its mapped blocks with a few large
// reads, instead of reading every entry key, hashing each into a delta
// and sorting it into buckets. It lives beside the exact snapshot
// (snapshot.go), under keys of its own, so exact and compact replicas
// sharing one Redis each read their own kind:
//
//	<base>csnap           "1 <id> <feed id> <entries added> <chunks> <written unix ms> <values> <hash key fingerprint or ->"
//	<base>csnap:<id>:<n>  chunk n of the static parts, shard after shard
//	<base>csnap:<id>:x    far plain entries, subject and global entries, as change-feed records
//
// The chunks cut one stream of little-endian 32-bit words, per shard (0
// to 255): the count n of its values, then, when n > 0, its
// compactBuckets+1 bucket offsets and its n values. The writer folds its
// delta into the static parts first, so that every plain entry it holds
// is in them or, when its expiry is too far ahead for a value to tell
// (compactHorizon), in the x part as an exact record.
//
// The values carry the expiry modulo 2^13 units of 15 minutes, relative
// to the clock: they read right for a replica whose clock is at or after
// the unit the snapshot was written in, and less than compactHorizon
// units (42 days) after it. Before it, a value written as compactHorizon-1
// units ahead would read as expired: a false negative, so a snapshot
// written "in the future" of the reader's clock is not used. After the
// horizon, a value that had expired would read as live again: no false
// negative (a match is confirmed in Redis), but a flood of false matches,
// so such a snapshot is not used either (its keys expire long before, as
// the exact snapshot's do: csnapMaxAge is a guard, not the usual case).
//
// A compact replica never blocks what Redis does not confirm, so unlike
// the exact snapshot, a new compact snapshot does not merge the previous
// one in: entries Redis lost would not block through it anyway.

// csnapFormat is the compact snapshot's format version, the header's
// first field: a replica reads only its own.
const csnapFormat = "1"

// csnapMaxAge is the oldest compact snapshot a replica loads, in units of
// compactUnit: a little inside the horizon, for the clocks' skew.
const csnapMaxAge = compactHorizon - 8

type csnapHeader struct {
	snapshotHeader
	values      int64
	fingerprint string
}

// hashKeyMark is the hash key fingerprint a compact snapshot header
// carries: the replica's, "-" when it has no hash key.
func (s *RedisStore) hashKeyMark() string {
	if fp := s.hasher.Fingerprint(); fp != "" {
		return fp
	}
	return "-"
}

func (s *RedisStore) readCompactHeader(ctx context.Context) (*csnapHeader, error) {
	v, err := s.client.Get(ctx, s.base+"csnap").Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read compact snapshot header: %w", err)
	}
	f := strings.Fields(v)
	if len(f) != 8 || f[0] != csnapFormat {
		return nil, fmt.Errorf("%w: header %q: unknown format", errCsnapUnusable, v)
	}
	h := &csnapHeader{snapshotHeader: snapshotHeader{id: f[1], from: f[2]}, fingerprint: f[7]}
	var ms int64
	if h.applied, err = strconv.ParseInt(f[3], 10, 64); err == nil {
		if h.chunks, err = strconv.Atoi(f[4]); err == nil {
			if ms, err = strconv.ParseInt(f[5], 10, 64); err == nil {
				h.values, err = strconv.ParseInt(f[6], 10, 64)
			}
		}
	}
	if err == nil && (h.chunks < 0 || h.values < 0) {
		err = errors.New("negative count")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header %q: %w", errCsnapUnusable, v, err)
	}
	h.written = time.UnixMilli(ms)
	return h, nil
}

// errCsnapUnusable marks a compact snapshot that is there but must not
// be used; the replica loads otherwise.
var errCsnapUnusable = errors.New("compact snapshot not usable")

// usableCompact says why the compact snapshot h must not be loaded at
// now, nil when it may.
func (s *RedisStore) usableCompact(h *csnapHeader, now time.Time) error {
	if h.fingerprint != s.hashKeyMark() {
		return fmt.Errorf("%w: written under hash key fingerprint %s, this replica's is %s", errCsnapUnusable, h.fingerprint, s.hashKeyMark())
	}
	age := now.Unix()/compactUnit - h.written.Unix()/compactUnit
	if age < 0 {
		return fmt.Errorf("%w: written at %s, after this replica's clock (%s): its expiries would read wrong",
			errCsnapUnusable, h.written.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if age >= csnapMaxAge {
		return fmt.Errorf("%w: written at %s, too long ago for its expiries to read right", errCsnapUnusable, h.written.UTC().Format(time.RFC3339))
	}
	return nil
}

// loadCompactSnapshot loads the latest compact snapshot into an empty
// compact local copy and sets the feed position to its own, as
// loadSnapshot does for the exact one. It returns false, and an error
// when there was one, when it did not load it: the caller loads
// otherwise (what was installed so far stays, and merges with the rest).
func (s *RedisStore) loadCompactSnapshot(ctx context.Context, start time.Time) (bool, error) {
	if !s.dl.compactEmpty() {
		// A reload: the static parts are there already, and a snapshot
		// installs into empty ones only.
		return false, nil
	}
	h, err := s.readCompactHeader(ctx)
	if err != nil || h == nil {
		return false, err
	}
	if err := s.usableCompact(h, start); err != nil {
		return false, err
	}
	if ok, err := s.positionValid(ctx, h.from, h.applied); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("%w: the change feed no longer holds its position %s", errCsnapUnusable, h.from)
		}
		return false, err
	}
	need := h.values*4 + numShards*(compactBuckets+1)*4
	if !s.dl.mayGrow(need) {
		return false, fmt.Errorf("%w: its %s do not fit the memory budget", errCsnapUnusable, sizeString(need))
	}
	s.loadExpect.Store(h.values)
	s.dl.Reserve(0) // the compact mode's loading flag: merge once, at the end
	defer s.dl.boundLoadHeap(2 * snapshotChunk)()
	total, err := s.importCompact(ctx, h, start.Unix())
	if err != nil {
		return false, err
	}
	// Open streams of a credential the snapshot revokes end now: its
	// values name no key to look them up by.
	s.dl.appliedUnnamed()
	if s.afterScan != nil {
		s.afterScan()
	}

	s.installedSnapshot(&h.snapshotHeader, "compact snapshot", start, total)
	return true, nil
}

// csnapReader reads a compact snapshot's chunks in order, a round of two
// at a time: the only heap the load holds beyond the blocks it fills.
type csnapReader struct {
	s      *RedisStore
	ctx    context.Context
	prefix string
	chunks int
	next   int      // the next chunk to fetch
	ready  [][]byte // fetched, not yet read
	buf    []byte   // what is left of the chunk being read
}

func (r *csnapReader) fill() error {
	const perRound = 2
	pipe := r.s.client.Pipeline()
	var cmds []*redis.StringCmd
	for j := r.next; j < min(r.next+perRound, r.chunks); j++ {
		cmds = append(cmds, pipe.Get(r.ctx, r.prefix+strconv.Itoa(j)))
	}
	if len(cmds) == 0 {
		return errors.New("the chunks end before the last shard")
	}
	_, _ = pipe.Exec(r.ctx) // errors are read per command
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		if err != nil {
			return fmt.Errorf("chunk %d: %w", r.next+i, err)
		}
		r.ready = append(r.ready, b)
	}
	r.next += len(cmds)
	return nil
}

// left returns how many bytes the stream has left, at most: the chunks
// not fetched yet count as full.
func (r *csnapReader) left() int64 {
	n := int64(len(r.buf)) + int64(r.chunks-r.next)*snapshotChunk
	for _, b := range r.ready {
		n += int64(len(b))
	}
	return n
}

// read fills dst from the stream.
func (r *csnapReader) read(dst []byte) error {
	for len(dst) > 0 {
		if len(r.buf) == 0 {
			if len(r.ready) == 0 {
				if err := r.fill(); err != nil {
					return err
				}
			}
			r.buf, r.ready = r.ready[0], r.ready[1:]
			continue
		}
		n := copy(dst, r.buf)
		dst, r.buf = dst[n:], r.buf[n:]
	}
	return nil
}

// words reads len(dst) 32-bit words into dst.
func (r *csnapReader) words(dst []uint32) error {
	if len(dst) == 0 {
		return nil
	}
	if err := r.read(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), len(dst)*4)); err != nil {
		return err
	}
	if !littleEndian {
		for i, w := range dst {
			dst[i] = bits.ReverseBytes32(w)
		}
	}
	return nil
}

// littleEndian: the stream's words copy into memory as they are.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// importCompact reads the compact snapshot h into the empty static parts,
// then its x part, and returns how many entries it installed.
func (s *RedisStore) importCompact(ctx context.Context, h *csnapHeader, now int64) (int, error) {
	r := &csnapReader{s: s, ctx: ctx, prefix: s.base + "csnap:" + h.id + ":", chunks: h.chunks}
	total := 0
	left := h.values
	var word [1]uint32
	for i := range s.dl.shards {
		if err := r.words(word[:]); err != nil {
			return total, fmt.Errorf("read compact snapshot %s shard %d: %w", h.id, i, err)
		}
		n := int64(word[0])
		if n > left {
			return total, fmt.Errorf("compact snapshot %s shard %d: %d values, more than the header's %d", h.id, i, n, h.values)
		}
		left -= n
		if n == 0 {
			continue
		}
		if (compactBuckets+1+n)*4 > r.left() {
			return total, fmt.Errorf("compact snapshot %s shard %d: %d values, more than its chunks hold", h.id, i, n)
		}
		p := compactPart{}
		p.off, p.offMem = allocUint32s(compactBuckets + 1)
		p.vals, p.valMem = allocUint32s(int(n))
		err := r.words(p.off)
		if err == nil {
			err = r.words(p.vals)
		}
		if err != nil {
			p.free()
			return total, fmt.Errorf("read compact snapshot %s shard %d: %w", h.id, i, err)
		}
		kinds, err := p.check(now)
		if err != nil {
			p.free()
			return total, fmt.Errorf("compact snapshot %s shard %d: %w", h.id, i, err)
		}
		if err := s.dl.installCompact(i, &p, kinds); err != nil {
			p.free()
			return total, err
		}
		total += len(p.vals)
		s.loadRead.Add(int64(len(p.vals)))
	}
	if left != 0 {
		return total, fmt.Errorf("compact snapshot %s: %d values fewer than its header says", h.id, left)
	}
	if r.next < r.chunks || len(r.buf) > 0 || len(r.ready) > 0 {
		return total, fmt.Errorf("compact snapshot %s: bytes left after the last shard", h.id)
	}
	x, err := s.client.Get(ctx, r.prefix+"x").Result()
	if err != nil {
		return total, fmt.Errorf("read compact snapshot %s records: %w", h.id, err)
	}
	recs, err := ParseRecords(x)
	if err != nil {
		return total, fmt.Errorf("compact snapshot %s records: %w", h.id, err)
	}
	s.dl.Apply(recs...)
	return total + len(recs), nil
}

// check validates a static part read from a snapshot (offsets in order
// and in range, each run sorted, one value per fingerprint and kind, a
// known kind) and drops its values expired at now, in place. It returns
// how many live values it holds of each kind (compactKinds' order).
func (p *compactPart) check(now int64) ([3]int64, error) {
	var kinds [3]int64
	if p.off[0] != 0 || int(p.off[compactBuckets]) != len(p.vals) {
		return kinds, fmt.Errorf("bucket offsets from %d to %d for %d values", p.off[0], p.off[compactBuckets], len(p.vals))
	}
	n := 0
	for b := range compactBuckets {
		from, to := p.off[b], p.off[b+1]
		if to < from || int(to) > len(p.vals) {
			return kinds, fmt.Errorf("bucket %d: offsets %d to %d out of order", b, from, to)
		}
		p.off[b] = uint32(n)
		var prev uint32
		for i, v := range p.vals[from:to] {
			if i > 0 && prev&^compactCodeMask >= v&^compactCodeMask {
				return kinds, fmt.Errorf("bucket %d: values out of order", b)
			}
			prev = v
			kind := v >> compactKindShift & 3
			if kind > 2 {
				return kinds, fmt.Errorf("bucket %d: a value of unknown kind %d", b, kind)
			}
			if codeAhead(v, now) == 0 {
				continue
			}
			p.vals[n] = v // n <= from+i: the write never overtakes the read
			n++
			kinds[kind]++
		}
	}
	p.off[compactBuckets] = uint32(n)
	p.vals = p.vals[:n]
	return kinds, nil
}

// compactEmpty reports whether the compact denylist holds no plain entry
// yet, static or in a delta: what a compact snapshot installs into.
func (d *Denylist) compactEmpty() bool {
	if d.compact == nil || d.compact.static.Load() != 0 {
		return false
	}
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.RLock()
		busy := s.cp.off != nil
		s.mu.RUnlock()
		if busy {
			return false
		}
	}
	return true
}

// installCompact makes p shard i's static part. The shard's must be
// empty still: a merge during the load (a storm of local revocations)
// made one, and the load then stops, to go on entry by entry.
func (d *Denylist) installCompact(i int, p *compactPart, kinds [3]int64) error {
	s := &d.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cp.off != nil {
		return fmt.Errorf("%w: shard %d changed during the load", errCsnapUnusable, i)
	}
	s.cp.off, s.cp.vals, s.cp.offMem, s.cp.valMem = p.off, p.vals, p.offMem, p.valMem
	s.cp.clean = nil
	d.compact.static.Add(int64(len(p.vals)))
	for j, k := range compactKinds {
		d.counts[k].Add(kinds[j])
	}
	d.mem.tables.Add(s.cp.bytes())
	// A credential found clean before may not be now.
	d.epoch.Store(new(epoch))
	return nil
}

// maybeCompactSnapshot is maybeSnapshot for a compact replica: it writes
// a compact snapshot when no replica wrote one within the period.
func (s *RedisStore) maybeCompactSnapshot(ctx context.Context) error {
	h, err := s.readCompactHeader(ctx)
	if errors.Is(err, errCsnapUnusable) {
		// Unreadable, or another build's format: written over below.
		s.log.Warn("compact denylist snapshot header not read; writing a new one", "error", err)
		h = nil
	} else if err != nil {
		return err
	}
	if h != nil && h.fingerprint == s.hashKeyMark() && s.now().Sub(h.written) < s.snapEvery*9/10 {
		return nil
	}
	s.mu.Lock()
	from, applied := s.lastID, s.applied
	s.mu.Unlock()
	if h != nil && h.from == from && h.applied == applied && h.fingerprint == s.hashKeyMark() &&
		s.now().Unix()/compactUnit-h.written.Unix()/compactUnit < csnapMaxAge/2 {
		// Nothing was revoked since: keep the snapshot there is.
		return s.expireSnapshot(ctx, "csnap", &h.snapshotHeader, s.snapshotKeep(), true)
	}
	lock := s.base + "csnap:lock"
	ok, err := s.client.SetNX(ctx, lock, "1", max(s.snapEvery/2, 10*time.Second)).Result()
	if err != nil || !ok {
		return err
	}
	defer s.client.Del(context.WithoutCancel(ctx), lock)
	return s.writeCompactSnapshot(ctx, h)
}

// writeCompactSnapshot writes the static parts, each shard's delta folded
// in first, as the latest compact snapshot, at the feed position applied
// so far: the copy holds at least everything up to it. old is the
// snapshot it replaces, if any.
func (s *RedisStore) writeCompactSnapshot(ctx context.Context, old *csnapHeader) error {
	s.mu.Lock()
	from, applied, loaded := s.lastID, s.applied, s.loaded
	s.mu.Unlock()
	if !loaded || from == "" {
		return errors.New("write compact snapshot: the local copy is not loaded")
	}
	now := s.now()
	id := strconv.FormatInt(now.UnixMilli(), 36) + strconv.FormatUint(rand.Uint64()&0xffffff, 36)
	prefix := s.base + "csnap:" + id + ":"
	keep := s.snapshotKeep()
	chunks := 0
	out := make([]byte, 0, snapshotChunk)
	flush := func() error {
		key := prefix + strconv.Itoa(chunks)
		chunks++
		err := s.client.Set(ctx, key, out, keep).Err()
		out = out[:0]
		return err
	}
	put := func(b []byte) error {
		for len(b) > 0 {
			n := min(len(b), snapshotChunk-len(out))
			out = append(out, b[:n]...)
			b = b[n:]
			if len(out) == snapshotChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var values int64
	var far []Entry
	var shardBuf []uint32
	for i := range s.dl.shards {
		shardBuf, far = s.dl.exportCompactShard(i, now.Unix(), shardBuf[:0], far)
		if err := put(wordBytes(shardBuf)); err != nil {
			return fmt.Errorf("write compact snapshot chunk %d: %w", chunks, err)
		}
		values += int64(shardBuf[0])
	}
	if len(out) > 0 {
		if err := flush(); err != nil {
			return fmt.Errorf("write compact snapshot chunk %d: %w", chunks, err)
		}
	}
	recs := make([]string, 0, len(far))
	for _, e := range far {
		recs = append(recs, e.Record())
	}
	for _, e := range s.dl.cutoffEntries(now.Unix()) {
		recs = append(recs, e.Record())
	}
	if err := s.client.Set(ctx, prefix+"x", strings.Join(recs, " "), keep).Err(); err != nil {
		return fmt.Errorf("write compact snapshot records: %w", err)
	}
	hdr := fmt.Sprintf("%s %s %s %d %d %d %d %s", csnapFormat, id, from, applied, chunks, now.UnixMilli(), values, s.hashKeyMark())
	if err := s.client.Set(ctx, s.base+"csnap", hdr, keep).Err(); err != nil {
		return fmt.Errorf("write compact snapshot header: %w", err)
	}
	if old != nil && old.id != id {
		// A replica may be reading the old one: give it a minute.
		if err := s.expireSnapshot(ctx, "csnap", &old.snapshotHeader, time.Minute, false); err != nil {
			s.log.Warn("old compact denylist snapshot left to expire on its own", "error", err)
		}
	}
	s.log.Info("denylist snapshot written", "kind", "compact", "chunks", chunks, "values", values, "position", from, "took", s.now().Sub(now).String())
	return nil
}

// wordBytes returns the stream form of words: little-endian bytes. On a
// little-endian machine that is their memory, as it is; elsewhere they
// are swapped in place first (the caller's buffer is its own).
func wordBytes(w []uint32) []byte {
	if len(w) == 0 {
		return nil
	}
	if !littleEndian {
		for i, v := range w {
			w[i] = bits.ReverseBytes32(v)
		}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*4)
}

// exportCompactShard folds shard i's delta into its static part, then
// appends the shard's stream form (count, offsets, values) to buf and the
// delta's far entries to far. The copy, made under the shard's lock,
// lets the writes to Redis run without it.
func (d *Denylist) exportCompactShard(i int, now int64, buf []uint32, far []Entry) ([]uint32, []Entry) {
	s := &d.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plain.live > 0 {
		d.mergeCompact(s, now)
		s.plain.each(func(lo, hi uint64, exp uint32) {
			if int64(exp) > now {
				far = append(far, Entry{Key: wordsKey(lo, hi), Expires: UnixSeconds(exp)})
			}
		})
	}
	p := &s.cp
	buf = append(buf, uint32(len(p.vals)))
	if len(p.vals) > 0 {
		buf = append(buf, p.off...)
		buf = append(buf, p.vals...)
	}
	return buf, far
}
