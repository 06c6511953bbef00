package revocation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is wrapped (with ErrUnavailable) by a commit that
// Redis applied but that no replica confirmed within the wait timeout:
// the caller is told it failed, so that it retries (the commit is
// idempotent), rather than trust a revocation that a failover could lose.
var ErrNotReplicated = errors.New("not confirmed by a Redis replica")

// runCommit runs the commit script on the master and, when replicas are
// wanted, waits on the same connection until they hold it (WAIT counts
// the writes of its own connection, so the two are one pipeline).
//
// With Sentinel or Cluster (RedisOptions.Failover), a commit that never reached a master (a failed dial, a connection
// reset, a replica that was just demoted answering READONLY, a master
// still loading) is sent again with a short pause until ctx ends: in
// Sentinel mode each new dial asks the Sentinels for the master, so a
// failover costs the commit a pause rather than an error. The retries
// end with ctx or after the I/O timeout (redis_timeout), whichever comes
// first, so that a Redis that is really gone still fails fast. Sending again
// is safe because the commit is idempotent (a put keeps the later
// expiry; a cut "now" sent again only moves later, revoking more).
func (s *RedisStore) runCommit(ctx context.Context, keys []string, args []any) ([]string, error) {
	pause := 20 * time.Millisecond
	until := time.Now().Add(s.ioTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(until) {
		until = d
	}
	for {
		reply, err := s.commitOnce(ctx, keys, args)
		if err == nil || !s.failover || !retryable(err) || ctx.Err() != nil {
			return reply, err
		}
		if time.Until(until) < pause {
			return nil, err
		}
		if cc, ok := s.client.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx)
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(pause):
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// commitOnce is one try of runCommit.
func (s *RedisStore) commitOnce(ctx context.Context, keys []string, args []any) ([]string, error) {
	want := s.wantReplicas()
	if want == 0 {
		reply, err := commitScript.Run(ctx, s.client, keys, args...).StringSlice()
		if err != nil {
			return nil, fmt.Errorf("run commit script: %w", err)
		}
		return reply, nil
	}
	var c redis.Cmdable = s.client
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		// WAIT names no key: it must go to the master of the feed's slot
		// on the script's connection, not to a node picked at random.
		m, err := cc.MasterForKey(ctx, s.feed)
		if err != nil {
			return nil, fmt.Errorf("find the denylist's master: %w", err)
		}
		c = m
	}
	for range 2 {
		pipe := c.Pipeline()
		run := commitScript.EvalSha(ctx, pipe, keys, args...)
		wait := pipe.Do(ctx, "WAIT", want, max(s.waitTimeout.Milliseconds(), 1))
		var info *redis.StringCmd
		if s.waitFor == 0 {
			// Automatic: the count of replicas as the wait ends, on the
			// same master, so that a master that has none (just promoted,
			// its replicas gone) is not waited for on a stale count.
			info = pipe.Info(ctx, "replication")
		}
		_, _ = pipe.Exec(ctx) // errors are read per command
		reply, err := run.StringSlice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			if err := commitScript.Load(ctx, c).Err(); err != nil {
				return nil, fmt.Errorf("load commit script: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("run commit script: %w", err)
		}
		n, err := wait.Int64()
		if err != nil {
			return nil, fmt.Errorf("wait for replicas: %w", err)
		}
		if info != nil {
			if v, err := info.Result(); err == nil {
				now := connectedReplicas(v)
				s.replicas.Store(now)
				if n >= now {
					// Every replica the master has (none, or fewer
					// than before) holds the commit.
					return reply, nil
				}
			}
		}
		if n < int64(want) {
			return nil, fmt.Errorf("%w: %d of %d replicas within %v", ErrNotReplicated, n, want, s.waitTimeout)
		}
		return reply, nil
	}
	return nil, errors.New("run commit script: NOSCRIPT after loading it")
}

// wantReplicas is how many replicas a commit waits for now.
func (s *RedisStore) wantReplicas() int {
	switch {
	case s.waitFor > 0:
		return s.waitFor
	case s.waitFor < 0:
		return 0
	}
	if s.replicas.Load() > 0 {
		return 1
	}
	return 0
}

// retryable reports whether a commit failed before any master applied
// it, so that sending it again (to the master a new dial finds) is the
// fix.
func retryable(err error) bool {
	if errors.Is(err, ErrNotReplicated) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	for _, p := range []string{"READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// watchReplicas keeps the count of replicas the master reports, every
// second, for the automatic wait (RedisOptions.WaitReplicas zero). A
// failover shows within a second: until then a commit waits as for the
// old master, and fails if the new one has fewer replicas, never the
// reverse.
func (s *RedisStore) watchReplicas(ctx context.Context) {
	defer s.finished.Done()
	check := func() {
		var c redis.Cmdable = s.client
		if cc, ok := s.client.(*redis.ClusterClient); ok {
			m, err := cc.MasterForKey(ctx, s.feed)
			if err != nil {
				return
			}
			c = m
		}
		opCtx, cancel := context.WithTimeout(ctx, s.ioTimeout)
		info, err := c.Info(opCtx, "replication").Result()
		cancel()
		if err != nil {
			return // the count stays: the commits meet the same error
		}
		s.replicas.Store(connectedReplicas(info))
	}
	check()
	every(ctx, time.Second, check)
}

// connectedReplicas reads connected_slaves from INFO replication.
func connectedReplicas(info string) int64 {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// historyLost reports whether the feed no longer holds what this replica
// read from it, not because it was trimmed (which removes the oldest
// entries only) but because Redis lost data or went back in time: the
// feed is gone, its last id or its count of entries added is behind this
// replica's position, or its first entry is older than the position that
// is missing from it. A replica that sees it re-commits its copy (heal).
func historyLost(from string, applied int64, info *redis.XInfoStream, exists bool) bool {
	if from == "" || from == "0-0" {
		return false
	}
	if !exists {
		return true
	}
	if compareIDs(info.LastGeneratedID, from) < 0 || info.EntriesAdded < applied {
		return true
	}
	return info.FirstEntry.ID != "" && compareIDs(info.FirstEntry.ID, from) < 0
}

// compareIDs orders two stream ids ("<ms>-<seq>").
func compareIDs(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ams, _ := strconv.ParseUint(am, 10, 64)
	bms, _ := strconv.ParseUint(bm, 10, 64)
	if ams != bms {
		if ams < bms {
			return -1
		}
		return 1
	}
	aseq, _ := strconv.ParseUint(as, 10, 64)
	bseq, _ := strconv.ParseUint(bs, 10, 64)
	switch {
	case aseq < bseq:
		return -1
	case aseq > bseq:
		return 1
	}
	return 0
}

// healBatch is how many plain entries one heal commit carries.
const healBatch = 1000

// heal writes back into Redis every unexpired entry of the local copy, so
// that a Redis that lost data (a restart without persistence, a failover
// to a replica that lagged) gets back every revocation some replica still
// holds, and a replica started later loads them. Plain entries are
// committed again (idempotent: the later expiry wins); subject and global
// entries are written back only where Redis has none (healScript): a cut
// committed again would also revoke the sessions seen since.
func (s *RedisStore) heal(ctx context.Context) {
	defer s.finished.Done()
	defer s.healing.Store(false)
	start := s.now()
	now := start.Unix()
	var puts []Put
	var cuts []Entry
	s.dl.Entries(now, func(e Entry) bool {
		if e.Kind().hasCutoff() {
			cuts = append(cuts, e)
		} else {
			puts = append(puts, Put{Key: e.Key, Expires: e.Expires})
		}
		return true
	})
	written := 0
	for len(puts) > 0 && ctx.Err() == nil {
		batch := puts[:min(len(puts), healBatch)]
		cctx, cancel := context.WithTimeout(ctx, 2*s.ioTimeout)
		_, err := s.Commit(cctx, Change{Puts: batch})
		cancel()
		if err != nil && ctx.Err() != nil {
			return // closing
		}
		if err != nil {
			s.log.Error("denylist heal stopped: redis refused the entries it lost", "written", written, "left", len(puts), "error", err)
			return
		}
		written += len(batch)
		puts = puts[len(batch):]
	}
	restored := 0
	for len(cuts) > 0 && ctx.Err() == nil {
		batch := cuts[:min(len(cuts), healBatch)]
		n, err := s.healCuts(ctx, batch)
		if err != nil && ctx.Err() != nil {
			return // closing
		}
		if err != nil {
			s.log.Error("denylist heal stopped: redis refused the entries it lost", "written", written+restored, "error", err)
			return
		}
		restored += n
		cuts = cuts[len(batch):]
	}
	s.log.Warn("denylist healed: redis lost data; this replica wrote back every unexpired revocation it holds",
		"entries", written, "cutoffs_restored", restored, "took", s.now().Sub(start).String())
}

// healCuts writes back subject and global entries Redis lacks, and
// appends those it wrote to the feed; it returns how many it wrote.
func (s *RedisStore) healCuts(ctx context.Context, cuts []Entry) (int, error) {
	keys := []string{s.feed}
	args := []any{s.maxLen, s.retain.Milliseconds()}
	for _, e := range cuts {
		keys = append(keys, s.entryKey(e.Key))
		args = append(args, e.Value(), int64(e.Expires), e.Record())
	}
	cctx, cancel := context.WithTimeout(ctx, 2*s.ioTimeout)
	defer cancel()
	n, err := healScript.Run(cctx, s.client, keys, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("write back cutoffs: %w", err)
	}
	return n, nil
}

// healScript writes back subject and global entries: KEYS[1] is the feed,
// KEYS[2..] the entry keys; ARGV: feed max length, retention (ms), then
// per key its value, expiry (unix s) and feed record. A key that exists
// is left alone (Redis has that revocation, or a later one merged with
// it); those written go to the feed as one entry. Returns how many.
var healScript = redis.NewScript(`#!lua
local maxlen, retain = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local nowSec = tonumber(t[1])
local nowMs = nowSec * 1000 + math.floor(tonumber(t[2]) / 1000)
local recs = {}
for k = 2, #KEYS do
  local i = 3 + (k - 2) * 3
  local exp = tonumber(ARGV[i + 1])
  if exp and exp > nowSec and redis.call('SET', KEYS[k], ARGV[i], 'EXAT', ARGV[i + 1], 'NX') then
    recs[#recs + 1] = ARGV[i + 2]
  end
end
if #recs > 0 then
  redis.call('XADD', KEYS[1], 'MINID', '~', string.format('%.0f', nowMs - retain), '*', 'e', table.concat(recs, ' '))
  if redis.call('XLEN', KEYS[1]) > maxlen then
    redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen)
  end
end
return #recs
`)
