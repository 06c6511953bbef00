// Command fill puts token entries in a Redis through the store's own
// commit path, in bulk, as replicas' revocations would leave them, and
// prints the rate and Redis's CPU time per revocation (bench/startup.sh).
//
//	go run ./bench/fill -addr 127.0.0.1:6379 -n 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/caddy-revocation/caddy-revocation/bench/internal/fill"
)

func main() {
	var o fill.Options
	flag.StringVar(&o.Addr, "addr", "127.0.0.1:6379", "redis address")
	flag.StringVar(&o.KeyPrefix, "prefix", "revocation:", "key prefix")
	flag.IntVar(&o.Entries, "n", 1_000_000, "token entries")
	flag.IntVar(&o.From, "from", 0, "index of the first entry, to fill in steps")
	in := flag.Duration("expires", time.Hour, "the first entry expires this long from now")
	flag.DurationVar(&o.Spread, "spread", time.Hour, "the last entry expires this long after the first")
	flag.BoolVar(&o.KeepFeed, "keep-feed", false, "leave the change feed that carried the entries (default: delete it, as its retention would empty it)")
	flag.Parse()
	o.Expires = time.Now().Add(*in)
	st, err := fill.Fill(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("filled %d entries in %.2f s: %.0f revocations/s, %.2f µs of Redis CPU per revocation\n",
		o.Entries, st.Took.Seconds(), float64(o.Entries)/st.Took.Seconds(), float64(st.RedisCPU.Microseconds())/float64(o.Entries))
}
