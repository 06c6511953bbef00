package revocation

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// fullLoad reads every entry key into the local copy (merging with what
// is there: a revocation is never forgotten because Redis lost it) and
// sets the feed position to where the feed stood before the scan, so that
// anything written during the scan is applied again from the feed.
func (s *RedisStore) fullLoad(ctx context.Context) error {
	start := s.now()
	s.loadRead.Store(0)
	s.loadExpect.Store(0)
	s.loadStart.Store(start.UnixNano())
	s.loading.Store(true)
	defer s.loading.Store(false)
	if s.dl.Compact() {
		if ok, err := s.loadCompactSnapshot(ctx, start); ok {
			return nil
		} else if err != nil {
			if ctx.Err() != nil {
				return err
			}
			s.log.Warn("compact denylist snapshot unusable; loading otherwise", "error", err)
		}
	}
	if ok, err := s.loadSnapshot(ctx, start); ok {
		return nil
	} else if err != nil {
		if ctx.Err() != nil {
			return err
		}
		s.log.Warn("denylist snapshot unusable; loading entry by entry", "error", err)
	}
	info, exists, err := s.feedInfo(ctx)
	if err != nil {
		return err
	}
	expect, inBuckets := s.expectEntries(ctx)
	s.loadExpect.Store(expect)
	s.dl.Reserve(inBuckets)
	defer s.dl.boundLoadHeap(inBuckets)()
	from, added := "0-0", int64(0)
	if exists {
		from, added = info.LastGeneratedID, info.EntriesAdded
	}
	var total atomic.Int64
	read := &shardsRead{names: make(map[string]struct{})}
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		n, err := s.scanInto(ctx, c, read)
		total.Add(int64(n))
		return err
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		// The keys share one slot, but which master holds it is the
		// cluster's business (and changes on failover): ask them all.
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return scan(ctx, node)
		})
	} else {
		err = scan(ctx, s.client)
	}
	if err == nil {
		var n int
		n, err = s.readSplitShards(ctx, read)
		total.Add(int64(n))
	}
	if err != nil {
		return fmt.Errorf("load denylist: %w", err)
	}
	if s.afterScan != nil {
		s.afterScan()
	}
	// Healthy and no longer loading before loaded, so that Health never
	// shows a loaded copy on a link still reported down.
	s.setUp()
	s.loading.Store(false)
	s.mu.Lock()
	s.lastID, s.applied = from, added
	s.loaded = true
	s.loadSource = "keys"
	s.mu.Unlock()
	took := s.now().Sub(start)
	s.log.Info("denylist loaded from redis", "source", "keys", "entries", total.Load(), "took", took.String())
	s.dl.releaseLoadMemory()
	if s.hooks.Reloaded != nil {
		s.hooks.Reloaded(int(total.Load()), took)
	}
	// Not confirmed current yet, as after a snapshot: SCAN returns every
	// key that existed throughout the scan, so the copy holds what was
	// committed before the load began, but not what was committed while
	// it ran. Requests held for the load must not be released before
	// read has applied the feed from the load's position to its end,
	// which confirms the moment that read was issued.
	return nil
}

// scanInto reads every entry key of one server: SCAN pages go to a few
// readers that fetch their values (MGET) while the scan goes on, so the
// round trips overlap.
func (s *RedisStore) scanInto(ctx context.Context, c redis.UniversalClient, read *shardsRead) (int, error) {
	const readers, page = 3, 1000
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		n     atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
		pages = make(chan []string, readers)
	)
	fail := func(err error) {
		once.Do(func() { first = err; cancel() })
	}
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range pages {
				if ctx.Err() != nil {
					continue // drain
				}
				got, err := s.readEntries(ctx, c, batch, read)
				n.Add(int64(got))
				if err != nil {
					fail(err)
				}
			}
		}()
	}
	// Entry keys of both layouts: "e:" bucket keys, and the one-key
	// entries "t:" ... "g:" (subject and global entries, and plain
	// entries an earlier version wrote).
	pattern := globEscape(s.base) + "[tjsuge]:*"
	iter := c.Scan(ctx, 0, pattern, page).Iterator()
	batch := make([]string, 0, page)
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == page {
			pages <- batch
			batch = make([]string, 0, page)
		}
	}
	if len(batch) > 0 {
		pages <- batch
	}
	close(pages)
	wg.Wait()
	if err := iter.Err(); err != nil && first == nil {
		return int(n.Load()), fmt.Errorf("scan entries: %w", err)
	}
	return int(n.Load()), first
}

// readEntries reads the entries of a page of keys and applies them: one
// entry per one-key entry (MGET), the fields of every bucket shard
// (HGETALL, pipelined), each noted in read; bucket states are skipped.
func (s *RedisStore) readEntries(ctx context.Context, c redis.UniversalClient, keys []string, read *shardsRead) (int, error) {
	var single, shards []string
	for _, k := range keys {
		rest := k[len(s.base):]
		if rest[0] != 'e' {
			single = append(single, k)
		} else if isShardKey(rest) {
			shards = append(shards, k)
		}
	}
	var entries []Entry
	if len(single) > 0 {
		vals, err := c.MGet(ctx, single...).Result()
		if err != nil {
			return 0, fmt.Errorf("read entries: %w", err)
		}
		entries = make([]Entry, 0, len(single))
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // expired between SCAN and MGET
			}
			k, err := ParseKey(single[i][len(s.base)+2:])
			if err != nil {
				s.log.Warn("skipping unreadable denylist key", "key", single[i], "error", err)
				continue
			}
			e, err := ParseEntry(k, str)
			if err != nil {
				s.log.Warn("skipping unreadable denylist entry", "key", single[i], "error", err)
				continue
			}
			entries = append(entries, e)
		}
	}
	s.dl.Apply(entries...)
	s.loadRead.Add(int64(len(entries)))
	n := len(entries)
	// The shards go a few at a time, each few applied before the next
	// is read: a page of shards holds tens of thousands of entries, and
	// as maps of strings they would cost the heap several times what
	// the tables hold for them.
	const shardsPerRead = 16
	for len(shards) > 0 {
		group := shards[:min(len(shards), shardsPerRead)]
		shards = shards[len(group):]
		pipe := c.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(group))
		for i, k := range group {
			cmds[i] = pipe.HGetAll(ctx, k)
		}
		_, _ = pipe.Exec(ctx) // errors are read per command
		entries = entries[:0]
		for i, cmd := range cmds {
			fields, err := cmd.Result()
			if err != nil {
				return n, fmt.Errorf("read denylist shard %s: %w", group[i], err)
			}
			read.add(group[i])
			for f, v := range fields {
				if f == "" {
					continue // a placeholder that keeps a shard from vanishing
				}
				e, err := shardEntry(f, v)
				if err != nil {
					s.log.Warn("skipping unreadable denylist entry", "key", group[i], "error", err)
					continue
				}
				entries = append(entries, e)
			}
		}
		s.dl.Apply(entries...)
		s.loadRead.Add(int64(len(entries)))
		n += len(entries)
	}
	return n, nil
}

// shardsRead is the set of bucket shards a full load has read.
type shardsRead struct {
	mu    sync.Mutex
	names map[string]struct{}
}

func (r *shardsRead) add(name string) {
	r.mu.Lock()
	r.names[name] = struct{}{}
	r.mu.Unlock()
}

func (r *shardsRead) has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.names[name]
	return ok
}

// readSplitShards reads the shards a SCAN may have missed. A split moves
// entries into a shard it creates, which SCAN need not return: an entry
// committed before the load, in a shard the scan read before a split
// moved it, is then only in the split's new shard, a direct child of the
// shard read (shard a splits into a+2^j for each level j from the bit
// length of a up). So after the scan, the children that the buckets'
// states name of every shard read are read, then the children of those,
// and so on. A child created after its parent was read holds nothing the
// parent did not show; including them (the states are read after the
// parents) only reads more. The rounds end when the shards read in one
// round have no children: a shard created by a split is split again only
// once the bucket's split pointer has gone round a whole level.
func (s *RedisStore) readSplitShards(ctx context.Context, read *shardsRead) (int, error) {
	total := 0
	read.mu.Lock()
	prev := make([]string, 0, len(read.names))
	for name := range read.names {
		prev = append(prev, name)
	}
	read.mu.Unlock()
	for range 1000 {
		if len(prev) == 0 {
			return total, nil
		}
		buckets, err := s.bucketStates(ctx)
		if err != nil {
			return total, err
		}
		shards := make(map[int64]int64, len(buckets)) // bucket -> shards in use
		for _, b := range buckets {
			shards[b.bucket] = (int64(1) << b.level) + b.split
		}
		var missing []string
		for _, name := range prev {
			bs, as, _ := strings.Cut(strings.TrimPrefix(name[len(s.base):], "e:"), ":")
			b, err1 := strconv.ParseInt(bs, 10, 64)
			a, err2 := strconv.ParseInt(as, 10, 64)
			if err1 != nil || err2 != nil || a < 0 {
				continue
			}
			n := shards[b]
			for j := bits.Len64(uint64(a)); j < 62 && a+int64(1)<<j < n; j++ {
				child := s.base + "e:" + bs + ":" + strconv.FormatInt(a+int64(1)<<j, 10)
				if !read.has(child) {
					missing = append(missing, child)
				}
			}
		}
		prev = missing
		for len(missing) > 0 {
			page := missing[:min(len(missing), 1000)]
			missing = missing[len(page):]
			n, err := s.readEntries(ctx, s.client, page, read)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, errors.New("read denylist shards: buckets kept splitting")
}

// bucketState is a bucket's state as commitScript keeps it.
type bucketState struct {
	bucket, level, split, fields int64
}

// bucketStates reads the state of every live bucket.
func (s *RedisStore) bucketStates(ctx context.Context) ([]bucketState, error) {
	buckets, err := s.client.ZRangeByScore(ctx, s.base+"ebuckets",
		&redis.ZRangeBy{Min: "(" + strconv.FormatInt(s.now().Unix(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("read denylist buckets: %w", err)
	}
	if len(buckets) == 0 {
		return nil, nil
	}
	names := make([]string, len(buckets))
	for i, b := range buckets {
		names[i] = s.base + "e:" + b
	}
	vals, err := s.client.MGet(ctx, names...).Result()
	if err != nil {
		return nil, fmt.Errorf("read denylist bucket states: %w", err)
	}
	out := make([]bucketState, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // expired since
		}
		st := bucketState{}
		b, err := strconv.ParseInt(buckets[i], 10, 64)
		if _, serr := fmt.Sscanf(str, "%d %d %d", &st.level, &st.split, &st.fields); err != nil || serr != nil ||
			st.level > 40 || st.split < 0 || st.split >= 1<<st.level {
			// Its shards are still read by the scan.
			s.log.Warn("skipping unreadable denylist bucket state", "bucket", buckets[i], "state", str)
			continue
		}
		st.bucket = b
		out = append(out, st)
	}
	return out, nil
}

// isShardKey reports whether a key (after the base) names a bucket shard,
// "e:<bucket>:<shard>", rather than a bucket state "e:<bucket>".
func isShardKey(rest string) bool {
	b, a, ok := strings.Cut(strings.TrimPrefix(rest, "e:"), ":")
	return ok && isDigits(b) && isDigits(a)
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// shardEntry decodes one field of a bucket shard: the key's 16 raw bytes
// and its expiry.
func shardEntry(field, value string) (Entry, error) {
	var k Key
	if len(field) != len(k) {
		return Entry{}, fmt.Errorf("shard field of %d bytes, want %d", len(field), len(k))
	}
	copy(k[:], field)
	if !k.Kind().Valid() || k.Kind().hasCutoff() {
		return Entry{}, fmt.Errorf("shard field %s: not a plain entry", k)
	}
	return ParseEntry(k, value)
}

// expectEntries estimates how many entries a full load reads, from above:
// the fields counted in each live bucket's state, and every other key of
// the database as one entry (one-key entries, and others an upper
// estimate counts too).
//
// It also returns the entries the buckets count alone, what the tables
// are sized for before the load (the other keys need not be entries).
func (s *RedisStore) expectEntries(ctx context.Context) (expect, inBuckets int64) {
	keys := s.dbSize(ctx)
	buckets, err := s.bucketStates(ctx)
	if err != nil {
		return keys, 0
	}
	var fields, bucketKeys int64
	for _, b := range buckets {
		fields += b.fields
		bucketKeys += 1 + (1 << b.level) + b.split
	}
	return fields + max(keys-bucketKeys, 0), fields
}

// dbSize counts the keys of the database (of every master in Cluster
// mode), an upper estimate of the entries a full load reads; zero when
// Redis will not say.
func (s *RedisStore) dbSize(ctx context.Context) int64 {
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		var total atomic.Int64
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			n, err := node.DBSize(ctx).Result()
			total.Add(n)
			return err
		})
		return total.Load()
	}
	n, _ := s.client.DBSize(ctx).Result()
	return n
}

// globEscape quotes the characters SCAN MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
