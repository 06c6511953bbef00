package revocation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// shardHolding finds the bucket shard that holds a plain entry expiring
// at about exp (the seconds around it, for a TTL put), addressed as
// commitScript addresses it, and returns the shard's key and the stored
// expiry.
func shardHolding(t *testing.T, s *RedisStore, k Key, exp int64) (string, int64) {
	t.Helper()
	ctx := context.Background()
	for _, e := range []int64{exp, exp - 1, exp + 1, exp - 2} {
		b := e / bucketWidth
		var l, p, n int64
		v, err := s.client.Get(ctx, s.base+"e:"+strconv.FormatInt(b, 10)).Result()
		if errors.Is(err, redis.Nil) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscanf(v, "%d %d %d", &l, &p, &n); err != nil {
			t.Fatalf("bucket %d state %q: %v", b, v, err)
		}
		h := int64(k[0])<<24 | int64(k[1])<<16 | int64(k[2])<<8 | int64(k[3])
		a := h % (1 << l)
		if a < p {
			a = h % (2 << l)
		}
		shard := s.base + "e:" + strconv.FormatInt(b, 10) + ":" + strconv.FormatInt(a, 10)
		got, err := s.client.HGet(ctx, shard, string(k[:])).Int64()
		if errors.Is(err, redis.Nil) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		return shard, got
	}
	t.Fatalf("no shard holds %s near expiry %d", k, exp)
	return "", 0
}
