package revocation

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// A snapshot is the denylist as one replica held it at a feed position,
// kept in Redis so that a starting replica loads it with a few large
// reads and then follows the feed from that position, instead of reading
// millions of keys one by one:
//
//	<base>snap            "1 <id> <feed id> <entries added> <chunks> <written unix ms>"
//	<base>snap:<id>:<n>   chunk n: plain entries, 20-byte records (key, expiry)
//	<base>snap:<id>:x     subject and global entries, as change-feed records
//
// Replicas take turns writing it (whoever finds it older than
// SnapshotEvery, under a short lock). Its keys expire a while after the
// next one is due, so a replica reading an older one is not cut short.
// A snapshot whose position the feed no longer holds is never used: the
// replica then loads entry by entry. A compact replica writes and reads a
// compact snapshot of its own instead (csnapshot.go), and reads this one
// when there is no usable compact one.

// snapshotChunk is the size of one snapshot chunk: 52428 records.
const snapshotChunk = 1 << 20

type snapshotHeader struct {
	id, from string
	applied  int64
	chunks   int
	written  time.Time
}

func (s *RedisStore) snapshotKeep() time.Duration {
	return 3*s.snapEvery + time.Minute
}

func (s *RedisStore) readSnapshotHeader(ctx context.Context) (*snapshotHeader, error) {
	v, err := s.client.Get(ctx, s.base+"snap").Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot header: %w", err)
	}
	f := strings.Fields(v)
	if len(f) != 6 || f[0] != "1" {
		return nil, fmt.Errorf("snapshot header %q: unknown format", v)
	}
	h := &snapshotHeader{id: f[1], from: f[2]}
	var ms int64
	if h.applied, err = strconv.ParseInt(f[3], 10, 64); err == nil {
		if h.chunks, err = strconv.Atoi(f[4]); err == nil {
			ms, err = strconv.ParseInt(f[5], 10, 64)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot header %q: %w", v, err)
	}
	h.written = time.UnixMilli(ms)
	return h, nil
}

// positionValid reports whether reading the feed after from misses
// nothing, as read checks it.
func (s *RedisStore) positionValid(ctx context.Context, from string, applied int64) (bool, error) {
	if from != "0-0" {
		msgs, err := s.client.XRangeN(ctx, s.feed, from, from, 1).Result()
		if err != nil {
			return false, fmt.Errorf("check change feed position: %w", err)
		}
		if len(msgs) == 1 {
			return true, nil
		}
	}
	info, exists, err := s.feedInfo(ctx)
	if err != nil {
		return false, err
	}
	return positionHeld(from, applied, info, exists), nil
}

// loadSnapshot loads the latest snapshot into the local copy and sets the
// feed position to its own. It returns false, and an error when there
// was one, when there is no usable snapshot: the caller loads entry by
// entry (what it loaded so far stays: the local copy only ever merges).
func (s *RedisStore) loadSnapshot(ctx context.Context, start time.Time) (bool, error) {
	h, err := s.readSnapshotHeader(ctx)
	if err != nil || h == nil {
		return false, err
	}
	if ok, err := s.positionValid(ctx, h.from, h.applied); err != nil || !ok {
		return false, err
	}
	perChunk := int64(snapshotChunk / plainRecordSize)
	s.loadExpect.Store(int64(h.chunks) * perChunk)
	// Every chunk but the last is full.
	s.dl.Reserve(max(int64(h.chunks)-1, 0)*perChunk + perChunk/2)
	defer s.dl.boundLoadHeap(int64(h.chunks) * perChunk)()
	total, err := s.importSnapshot(ctx, h, start.Unix())
	if err != nil {
		return false, err
	}

	s.installedSnapshot(h, "snapshot", start, total)
	return true, nil
}

// installedSnapshot records a load from a snapshot of either kind
// (source), which left the copy at h's feed position. It is not
// confirmed current yet: read confirms it once it has applied the feed
// from that position to its end.
func (s *RedisStore) installedSnapshot(h *snapshotHeader, source string, start time.Time, total int) {
	s.setUp()
	s.loading.Store(false)
	s.mu.Lock()
	s.lastID, s.applied = h.from, h.applied
	s.loaded = true
	s.loadSource = source
	s.mu.Unlock()
	took := s.now().Sub(start)
	s.log.Info("denylist loaded from redis", "source", source, "snapshot_age", start.Sub(h.written).Round(time.Millisecond).String(),
		"entries", total, "took", took.String())
	s.dl.releaseLoadMemory()
	if s.hooks.Reloaded != nil {
		s.hooks.Reloaded(total, took)
	}
}

// importSnapshot merges a snapshot's unexpired entries into the local
// copy and returns how many it read.
func (s *RedisStore) importSnapshot(ctx context.Context, h *snapshotHeader, now int64) (int, error) {
	prefix := s.base + "snap:" + h.id + ":"
	total := 0
	// Two chunks (2 MiB) per round trip: more reads no faster, and every
	// chunk in flight is heap the process holds at its peak.
	const perRound = 2
	for i := 0; i < h.chunks; i += perRound {
		pipe := s.client.Pipeline()
		var cmds []*redis.StringCmd
		for j := i; j < min(i+perRound, h.chunks); j++ {
			cmds = append(cmds, pipe.Get(ctx, prefix+strconv.Itoa(j)))
		}
		_, _ = pipe.Exec(ctx) // errors are read per command
		for j, cmd := range cmds {
			b, err := cmd.Bytes()
			if err != nil {
				return total, fmt.Errorf("read snapshot %s chunk %d: %w", h.id, i+j, err)
			}
			n, err := s.dl.importPlain(b, now)
			total += n
			s.loadRead.Add(int64(n))
			if err != nil {
				return total, fmt.Errorf("snapshot %s chunk %d: %w", h.id, i+j, err)
			}
		}
	}
	x, err := s.client.Get(ctx, prefix+"x").Result()
	if err != nil {
		return total, fmt.Errorf("read snapshot %s cutoffs: %w", h.id, err)
	}
	cuts, err := ParseRecords(x)
	if err != nil {
		return total, fmt.Errorf("snapshot %s cutoffs: %w", h.id, err)
	}
	s.dl.Apply(cuts...)
	return total + len(cuts), nil
}

func (s *RedisStore) snapshotLoop(ctx context.Context) {
	defer s.finished.Done()
	// Replicas that start together spread their turns.
	jitter := time.Duration(rand.Int64N(int64(s.snapEvery)/4 + 1))
	select {
	case <-ctx.Done():
		return
	case <-time.After(jitter):
	}
	every(ctx, s.snapEvery, func() {
		if err := s.maybeSnapshot(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("denylist snapshot not written", "error", err)
		}
	})
}

// maybeSnapshot writes a snapshot when this replica's copy is loaded and
// current, and no replica wrote one within the period.
func (s *RedisStore) maybeSnapshot(ctx context.Context) error {
	s.mu.Lock()
	ready := s.loaded && s.state == linkUp
	s.mu.Unlock()
	if !ready || s.Staleness(s.now()) > 2*time.Duration(s.block.Load())+time.Second {
		return nil
	}
	if s.dl.Compact() {
		return s.maybeCompactSnapshot(ctx)
	}
	h, err := s.readSnapshotHeader(ctx)
	if err != nil {
		return err
	}
	if h != nil && s.now().Sub(h.written) < s.snapEvery*9/10 {
		return nil
	}
	s.mu.Lock()
	from, applied := s.lastID, s.applied
	s.mu.Unlock()
	if h != nil && h.from == from && h.applied == applied {
		// Nothing was revoked since: keep the snapshot there is.
		return s.expireSnapshot(ctx, "snap", h, s.snapshotKeep(), true)
	}
	lock := s.base + "snap:lock"
	ok, err := s.client.SetNX(ctx, lock, "1", max(s.snapEvery/2, 10*time.Second)).Result()
	if err != nil || !ok {
		return err
	}
	defer s.client.Del(context.WithoutCancel(ctx), lock)
	return s.writeSnapshot(ctx)
}

// writeSnapshot writes the local copy as the latest snapshot, at the feed
// position applied so far: the copy holds at least everything up to it.
func (s *RedisStore) writeSnapshot(ctx context.Context) error {
	s.mu.Lock()
	from, applied, loaded := s.lastID, s.applied, s.loaded
	s.mu.Unlock()
	if !loaded || from == "" {
		return errors.New("write snapshot: the local copy is not loaded")
	}
	now := s.now()
	old, _ := s.readSnapshotHeader(ctx) // best effort: see below
	if old != nil {
		// A snapshot never drops an unexpired entry the previous one had:
		// if Redis lost entries this replica never saw (a failover to a
		// lagging replica), the previous snapshot may be the last place
		// they are kept. Merging them into the local copy keeps them in
		// this one too, and this replica blocks them from now on.
		if _, err := s.importSnapshot(ctx, old, now.Unix()); err != nil && ctx.Err() == nil {
			s.log.Warn("previous denylist snapshot not merged into the new one", "error", err)
		}
	}
	id := strconv.FormatInt(now.UnixMilli(), 36) + strconv.FormatUint(rand.Uint64()&0xffffff, 36)
	prefix := s.base + "snap:" + id + ":"
	keep := s.snapshotKeep()
	chunks := 0
	err := s.dl.exportPlain(now.Unix(), snapshotChunk, func(b []byte) error {
		key := prefix + strconv.Itoa(chunks)
		chunks++
		return s.client.Set(ctx, key, b, keep).Err()
	})
	if err != nil {
		return fmt.Errorf("write snapshot chunk %d: %w", chunks, err)
	}
	var recs []string
	for _, e := range s.dl.cutoffEntries(now.Unix()) {
		recs = append(recs, e.Record())
	}
	if err := s.client.Set(ctx, prefix+"x", strings.Join(recs, " "), keep).Err(); err != nil {
		return fmt.Errorf("write snapshot cutoffs: %w", err)
	}
	hdr := fmt.Sprintf("1 %s %s %d %d %d", id, from, applied, chunks, now.UnixMilli())
	if err := s.client.Set(ctx, s.base+"snap", hdr, keep).Err(); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	if old != nil && old.id != id {
		// A replica may be reading the old one: give it a minute.
		if err := s.expireSnapshot(ctx, "snap", old, time.Minute, false); err != nil {
			s.log.Warn("old denylist snapshot left to expire on its own", "error", err)
		}
	}
	s.log.Info("denylist snapshot written", "chunks", chunks, "position", from, "took", s.now().Sub(now).String())
	return nil
}

// expireSnapshot sets the expiry of a snapshot's keys (and of the header,
// when header is true); kind is "snap" for the exact snapshot, "csnap"
// for the compact one, whose keys are laid out alike.
func (s *RedisStore) expireSnapshot(ctx context.Context, kind string, h *snapshotHeader, ttl time.Duration, header bool) error {
	prefix := s.base + kind + ":" + h.id + ":"
	pipe := s.client.Pipeline()
	for i := range h.chunks {
		pipe.PExpire(ctx, prefix+strconv.Itoa(i), ttl)
	}
	pipe.PExpire(ctx, prefix+"x", ttl)
	if header {
		pipe.PExpire(ctx, s.base+kind, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("expire the %s keys of snapshot %s: %w", kind, h.id, err)
	}
	return nil
}
