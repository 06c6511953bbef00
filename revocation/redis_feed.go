package revocation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// readBatch is the most feed entries one read applies.
const readBatch = 1000

// follow keeps the local copy current: load in full when there is no
// usable position, then read the feed, and after any error start over
// with a growing pause.
func (s *RedisStore) follow(ctx context.Context) {
	defer s.finished.Done()
	// Short enough that a replica resumes within half a second of Redis
	// (or the master a failover names) answering again: well inside
	// stale_after; a dial twice a second costs an unreachable Redis nothing.
	const minPause, maxPause = 50 * time.Millisecond, 500 * time.Millisecond
	pause := minPause
	checked := false
	for ctx.Err() == nil {
		s.mu.Lock()
		loaded := s.loaded
		s.mu.Unlock()
		var err error
		op := "check hash_key"
		if !checked || !loaded {
			if !loaded {
				// The check is a load's first step: status and readiness
				// say "loading" while a busy Redis keeps it waiting.
				s.loadStart.Store(s.now().UnixNano())
				s.loading.Store(true)
			}
			err = s.CheckHashKey(ctx)
			checked = err == nil
			if err != nil {
				s.loading.Store(false)
			}
		}
		if err == nil && !loaded {
			op = "load denylist"
			err = s.fullLoad(ctx)
		}
		if err == nil {
			op = "follow feed"
			err = s.read(ctx, func() { pause = minPause })
		}
		if ctx.Err() != nil {
			return
		}
		s.setDown(op, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, maxPause)
	}
}

// CheckHashKey compares the replica's hash key (RedisOptions.Hasher) with
// the record of the key in Redis, writing it when this is the first
// keyed replica. A mismatch (ErrHashKeyMismatch) is logged once and
// stops the store from loading and committing until a check passes: a
// replica that computed other keys than the rest would let their
// revocations through without a sign.
func (s *RedisStore) CheckHashKey(ctx context.Context) error {
	err := checkHashKey(ctx, s.client, s.base, s.hasher, s.now())
	switch {
	case errors.Is(err, ErrHashKeyMismatch):
		if s.hashErr.Swap(&err) == nil {
			s.log.Error("refusing to use the shared denylist", "store", "redis", "error", err)
		}
	case err == nil:
		s.hashErr.Store(nil)
	}
	return err
}

// read applies feed entries as they come, until an error. Each XREAD is
// pipelined behind a check that the server still holds the position it
// reads from; the server runs both back to back, so no trim or other
// write can fall between them. Any read, even one go-redis retried on a
// new connection or sent to a new master, is thereby checked against the
// server that answers it.
func (s *RedisStore) read(ctx context.Context, ok func()) error {
	block := time.Duration(-1) // the first read does not wait: it confirms at once
	for {
		s.mu.Lock()
		from, applied := s.lastID, s.applied
		s.mu.Unlock()
		issued := s.now()
		pipe := s.client.Pipeline()
		var (
			held *redis.XMessageSliceCmd
			info *redis.XInfoStreamCmd
		)
		if from == "0-0" {
			info = pipe.XInfoStream(ctx, s.feed)
		} else {
			held = pipe.XRangeN(ctx, s.feed, from, from, 1)
		}
		next := pipe.XRead(ctx, &redis.XReadArgs{
			Streams: []string{s.feed, from},
			Count:   readBatch,
			Block:   block,
		})
		// A read that hears nothing back within its block and the I/O
		// timeout fails: silence is a partition, and the caller then
		// reports the store unreachable instead of waiting for the
		// operating system to give up on the connection.
		rctx, cancel := context.WithTimeout(ctx, max(block, 0)+s.ioTimeout)
		blocked := block
		block = time.Duration(s.block.Load())
		_, _ = pipe.Exec(rctx) // errors are read per command below
		cancel()

		valid, lost := true, false
		if held != nil {
			msgs, err := held.Result()
			if err != nil {
				return fmt.Errorf("check change feed position: %w", err)
			}
			if len(msgs) == 0 {
				// Our entry is gone (trimmed, or the feed recreated), or it
				// never was one (we loaded from an emptied feed): only the
				// counts can still vouch that nothing was missed.
				st, exists, err := s.feedInfo(ctx)
				if err != nil {
					return err
				}
				valid = positionHeld(from, applied, st, exists)
				lost = !valid && historyLost(from, applied, st, exists)
			}
		} else {
			st, exists, err := feedInfoResult(info)
			if err != nil {
				return err
			}
			valid = positionHeld(from, applied, st, exists)
		}
		streams, err := next.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read change feed: %w", err)
		}
		if !valid {
			s.log.Warn("the change feed no longer holds every entry since the last one applied; reloading in full", "last_applied", from, "redis_lost_data", lost)
			if err := s.fullLoad(ctx); err != nil {
				return err
			}
			if lost && s.healing.CompareAndSwap(false, true) {
				// Redis went back in time: what it lost lives on in the
				// copies of the replicas, this one included. Written
				// back in the background, while the feed is followed.
				s.finished.Add(1)
				go s.heal(ctx)
			}
			continue
		}
		n := 0
		for _, st := range streams {
			s.applyMessages(st.Messages)
			n += len(st.Messages)
		}
		if n < readBatch {
			// Everything committed before the read was issued is applied
			// now; a full batch may have left more behind.
			at := issued
			if n == 0 && blocked > 0 {
				// An empty answer to a blocking read: Redis waited the
				// whole block after it received the read, so nothing was
				// committed until then either. Stamping the issue time
				// instead would make an idle, healthy copy look a whole
				// block stale right after each read.
				at = issued.Add(blocked)
				if now := s.now(); now.Before(at) {
					at = now // a clock that moved less than the block
				}
			}
			s.confirm(at)
		}
		s.setUp()
		ok()
	}
}

func (s *RedisStore) applyMessages(msgs []redis.XMessage) {
	now := s.now()
	for _, m := range msgs {
		raw, _ := m.Values["e"].(string)
		entries, err := ParseRecords(raw)
		if err != nil {
			// A record this version cannot read is skipped, loudly, and
			// the others of the entry are applied; the entry keys still
			// hold the skipped one for the next full load.
			s.log.Error("skipping unreadable change feed records", "id", m.ID, "error", err)
		}
		s.dl.Apply(entries...)
		s.mu.Lock()
		s.lastID = m.ID
		s.applied++
		_, mine := s.own[m.ID]
		delete(s.own, m.ID)
		s.mu.Unlock()
		// The lag of another replica's revocation; this replica applied
		// its own before its commit returned.
		if s.hooks.RemoteApplied != nil && len(entries) > 0 && !mine {
			if ms, ok := idMillis(m.ID); ok {
				s.hooks.RemoteApplied(len(entries), now.Sub(time.UnixMilli(ms)))
			}
		}
	}
}

// positionHeld reports whether reading the feed after id misses nothing,
// when id is not (or no longer) an entry of the feed: id is "0-0" for a
// replica loaded before the feed existed, else the feed's last id when it
// was loaded or read, with applied the count of entries added up to it
// (XINFO entries-added, Redis 7+).
//
// Trimming (XADD MAXLEN) removes the oldest entries and does not move
// max-deleted-entry-id, so the count of entries added is what tells a
// trim from a quiet feed. A recreated feed cannot be told from a trimmed
// one once it has grown, so anything but an unchanged feed reloads.
func positionHeld(id string, applied int64, info *redis.XInfoStream, exists bool) bool {
	if id == "0-0" && applied == 0 {
		// Every entry is new to us: all of them must still be there.
		return !exists || info.EntriesAdded <= info.Length
	}
	if !exists {
		return false // the feed is gone: a flush, a restart that lost data
	}
	return info.LastGeneratedID == id && info.EntriesAdded == applied
}

func (s *RedisStore) feedInfo(ctx context.Context) (*redis.XInfoStream, bool, error) {
	return feedInfoResult(s.client.XInfoStream(ctx, s.feed))
}

func feedInfoResult(cmd *redis.XInfoStreamCmd) (*redis.XInfoStream, bool, error) {
	info, err := cmd.Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("inspect change feed: %w", err)
	}
	return info, true, nil
}

func idMillis(id string) (int64, bool) {
	ms, _, ok := strings.Cut(id, "-")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(ms, 10, 64)
	return v, err == nil
}
