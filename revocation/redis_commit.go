package revocation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Commit implements Store: the change joins the next script call (alone
// when Redis keeps up, with others committed meanwhile under load), then
// the local copy.
func (s *RedisStore) Commit(ctx context.Context, c Change) (Result, error) {
	if err := s.hashErr.Load(); err != nil {
		// Entries written under the wrong key would revoke nothing.
		return Result{}, fmt.Errorf("commit revocation: %w", *err)
	}
	p := &pendingCommit{ctx: ctx, puts: len(c.Puts), reply: make(chan commitReply, 1)}
	if err := s.encodeChange(&c, p); err != nil {
		return Result{}, err
	}
	select {
	case s.commits <- p:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("commit revocation: %w: %w", ErrUnavailable, ctx.Err())
	case <-s.done.Done():
		return Result{}, fmt.Errorf("commit revocation: %w: store closed", ErrUnavailable)
	}
	select {
	case r := <-p.reply:
		return r.res, r.err
	case <-ctx.Done():
		// The batch may still be applied: as with any request that timed
		// out, the caller cannot tell.
		return Result{}, fmt.Errorf("commit revocation: %w: %w", ErrUnavailable, ctx.Err())
	}
}

// pendingCommit is one change waiting for its batch.
type pendingCommit struct {
	ctx   context.Context
	keys  []string
	args  []any
	puts  int
	live  []bool // per put: live in the local copy before the commit
	cost  int
	reply chan commitReply
}

type commitReply struct {
	res Result
	err error
}

// The layout of plain entries in Redis (see commitScript).
//
// bucketWidth, in seconds, groups entries by expiry: all of a bucket's
// keys expire at its end, so an entry stays up to that long past its own
// expiry. Five minutes keeps that small beside short-lived access tokens
// (a revoked 5-minute token would otherwise be held twice or more its
// life), while a bucket still gathers enough entries for its shards'
// per-key overhead to vanish: memory per entry measured the same with
// widths of 1, 5 and 15 minutes (BenchmarkRedisLoad's redis-B/entry, expiries spread
// over an hour).
//
// shardLoad is the mean number of fields per shard that triggers a split.
// With linear hashing, a shard not yet split in the current round holds
// twice the mean just before the round ends: 2 x 40 = 80 fields, and 128
// (where Redis leaves the compact listpack encoding for good) is five
// standard deviations away.
const (
	bucketWidth = 300
	shardLoad   = 40
)

// The bounds of one commit batch: enough to carry a storm in few script
// calls, small enough that one call does not hold Redis up for long.
const (
	commitWorkers  = 4
	maxBatchCost   = 2000 // puts and cuts
	maxBatchChange = 512
)

// encodeChange writes a change's part of the script's keys and arguments.
func (s *RedisStore) encodeChange(c *Change, p *pendingCommit) error {
	p.args = append(p.args, len(c.Puts))
	now := s.now().Unix()
	p.live = make([]bool, len(c.Puts))
	for i, put := range c.Puts {
		if !put.Key.Kind().Valid() || put.Key.Kind().hasCutoff() {
			return fmt.Errorf("commit: put of a %s key; use SubjectCut or GlobalCut", put.Key.Kind())
		}
		exp := put.Expires
		if exp == 0 {
			exp = expiresIn(now, put.TTL)
		}
		p.keys = append(p.keys, s.base+"e:"+strconv.FormatInt(int64(exp)/bucketWidth, 10))
		p.args = append(p.args, string(rune(put.Key.Kind())), put.Key.String(), string(put.Key[:]), int64(put.Expires), ttlSeconds(put.TTL))
		// The script sees the key's own bucket only: the same key
		// revoked before with another expiry is in another one.
		p.live[i] = s.dl.liveLocally(put.Key, now)
	}
	cuts := c.cuts()
	p.args = append(p.args, len(cuts))
	for _, sc := range cuts {
		if sc.Subject.Kind() != KindSubject || (!sc.Keep.IsZero() && sc.Keep.Kind() != KindSession) {
			return fmt.Errorf("commit: subject cut of a %s key keeping a %s key", sc.Subject.Kind(), sc.Keep.Kind())
		}
		keep := "-"
		if !sc.Keep.IsZero() {
			keep = sc.Keep.String()
		}
		also, alsoKeep := "-", "-"
		if !sc.Unkeyed.IsZero() && sc.Unkeyed.Kind() == KindSubject {
			also = sc.Unkeyed.String()
			if !sc.UnkeyedKeep.IsZero() && sc.UnkeyedKeep.Kind() == KindSession {
				alsoKeep = sc.UnkeyedKeep.String()
			}
		}
		p.keys = append(p.keys, s.entryKey(sc.Subject), s.base+"seen:"+sc.Subject.String(), s.base+"n")
		p.args = append(p.args, sc.Subject.String(), keep, ttlSeconds(sc.TTL), int64(sc.At), also, alsoKeep)
	}
	if g := c.Global; g != nil {
		gk := GlobalKey()
		p.keys = append(p.keys, s.entryKey(gk))
		p.args = append(p.args, "1", gk.String(), int64(max(g.Before, 0)), ttlSeconds(g.TTL))
	} else {
		p.args = append(p.args, "0")
	}
	p.cost = 1 + len(c.Puts) + len(cuts)
	return nil
}

// commitLoop sends waiting changes to Redis: the first that comes, with
// whatever else is waiting by then, as one script call.
func (s *RedisStore) commitLoop(ctx context.Context) {
	defer s.finished.Done()
	for {
		var first *pendingCommit
		select {
		case <-ctx.Done():
			return
		case first = <-s.commits:
		}
		batch, cost := []*pendingCommit{first}, first.cost
	drain:
		for cost < maxBatchCost && len(batch) < maxBatchChange {
			select {
			case p := <-s.commits:
				batch = append(batch, p)
				cost += p.cost
			default:
				break drain
			}
		}
		s.commitBatch(batch)
	}
}

// commitBatch runs one script call for a batch and answers each change.
func (s *RedisStore) commitBatch(batch []*pendingCommit) {
	live := batch[:0]
	var deadline time.Time
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.reply <- commitReply{err: fmt.Errorf("commit revocation: %w: %w", ErrUnavailable, err)}
			continue
		}
		live = append(live, p)
		if d, ok := p.ctx.Deadline(); !ok {
			deadline = time.Now().Add(time.Minute)
		} else if d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	// The batch lives as long as the most patient of its callers.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(live[0].ctx), deadline)
	defer cancel()
	keys := []string{s.feed}
	args := []any{s.base, s.maxLen, s.retain.Milliseconds(), bucketWidth, shardLoad, len(live)}
	for _, p := range live {
		keys = append(keys, p.keys...)
		args = append(args, p.args...)
	}
	fail := func(err error) {
		for _, p := range live {
			p.reply <- commitReply{err: err}
		}
	}
	reply, err := s.runCommit(ctx, keys, args)
	if err != nil {
		s.opError("commit", err)
		fail(fmt.Errorf("commit revocation: %w: %w", ErrUnavailable, err))
		return
	}
	if len(reply) != 2+2*len(live) {
		fail(fmt.Errorf("commit revocation: unexpected reply of %d parts for %d changes", len(reply), len(live)))
		return
	}
	at, err := strconv.ParseInt(reply[1], 10, 64)
	if err != nil {
		fail(fmt.Errorf("commit revocation: server time %q: %w", reply[1], err))
		return
	}
	results := make([]commitReply, len(live))
	for i, p := range live {
		existed, recs := reply[2+2*i], reply[3+2*i]
		if len(existed) != p.puts {
			results[i].err = fmt.Errorf("commit revocation: %d existed flags for %d puts", len(existed), p.puts)
			continue
		}
		res := Result{Existed: make([]bool, p.puts), Time: UnixMillis(at)}
		for j := range res.Existed {
			res.Existed[j] = existed[j] == '1' || p.live[j]
		}
		if res.Entries, err = ParseRecords(recs); err != nil {
			results[i].err = fmt.Errorf("commit revocation: %w", err)
			continue
		}
		s.dl.Apply(res.Entries...)
		results[i].res = res
	}
	if reply[0] != "" {
		s.mu.Lock()
		if len(s.own) >= maxOwnIDs {
			clear(s.own) // only a metric depends on it
		}
		s.own[reply[0]] = struct{}{}
		s.mu.Unlock()
	}
	for i, p := range live {
		p.reply <- results[i]
	}
}

// noteLoad is the notes a note shard holds on average before one is
// split: well inside Redis's listpack limit for a hash (128 fields).
const noteLoad = 64

// maxOwnIDs bounds the feed ids remembered as this replica's own writes.
const maxOwnIDs = 4096

// NoteSession implements Store: queued, written in batches by writeNotes.
func (s *RedisStore) NoteSession(subject, session Key, ttl time.Duration) {
	s.mu.Lock()
	if len(s.recent) >= maxRecentNotes {
		clear(s.recent) // they are in Redis by now, or will be soon
	}
	if s.recent == nil {
		s.recent = make(map[[2]Key]int64)
	}
	s.recent[[2]Key{subject, session}] = s.now().Unix() + ttlSeconds(ttl)
	s.mu.Unlock()
	select {
	case s.notes <- note{subject, session, ttl}:
	default:
		// The queue is full only when Redis is down or far behind; a
		// missed note weakens only the stop of future tokens of a session
		// nobody revoked yet (the subject cutoff still stops old ones).
	}
}

func (s *RedisStore) writeNotes(ctx context.Context) {
	defer s.finished.Done()
	batch := make(map[note]struct{})
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-s.notes:
			batch[n] = struct{}{}
		}
	drain:
		for len(batch) < 512 {
			select {
			case n := <-s.notes:
				batch[n] = struct{}{}
			default:
				break drain
			}
		}
		// Each note carries its own expiry, and expired ones are dropped
		// as notes come (see noteScript), so the notes of an active
		// subject are its live sessions only, not every login.
		args := make([]any, 0, 2+3*len(batch))
		args = append(args, s.base, noteLoad)
		for n := range batch {
			args = append(args, n.subject.String(), n.session.String(), ttlSeconds(n.ttl))
		}
		opCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := noteScript.Run(opCtx, s.client, []string{s.base + "n"}, args...).Err()
		cancel()
		if err != nil && ctx.Err() == nil {
			s.opError("note sessions", err)
		}
		clear(batch)
	}
}

// maxRecentNotes bounds the notes remembered locally until Redis has
// them (they are written in batches, within milliseconds).
const maxRecentNotes = 1 << 16

// SessionSeen implements Store: noted here lately (a note is written to
// Redis a few milliseconds after it is taken), or noted in Redis by any
// replica.
func (s *RedisStore) SessionSeen(ctx context.Context, subject, session Key) (bool, error) {
	now := s.now().Unix()
	s.mu.Lock()
	exp, ok := s.recent[[2]Key{subject, session}]
	s.mu.Unlock()
	if ok && exp > now {
		return true, nil
	}
	exp, err := seenScript.Run(ctx, s.client, []string{s.base + "n"}, s.base, subject.String(), session.String()).Int64()
	if err != nil {
		s.opError("session seen", err)
		return false, fmt.Errorf("session seen: %w: %w", ErrUnavailable, err)
	}
	return exp > now, nil
}

// Remember implements Store.
func (s *RedisStore) Remember(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := s.client.SetNX(ctx, s.base+"once:"+key, "1", ttl).Result()
	if err != nil {
		s.opError("remember", err)
		return false, fmt.Errorf("remember: %w: %w", ErrUnavailable, err)
	}
	return ok, nil
}

// Claim implements Store: one SET NX GET, atomic across replicas.
func (s *RedisStore) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	held, err := s.client.SetArgs(ctx, s.base+"claim:"+key, value, redis.SetArgs{Mode: "NX", Get: true, TTL: ttl}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return value, nil // absent: claimed now
	case err != nil:
		s.opError("claim", err)
		return "", fmt.Errorf("claim: %w: %w", ErrUnavailable, err)
	}
	return held, nil
}
