// Command streams measures, with the real binary, a real redis-server and
// two replicas on loopback, what issue 18 asks of open streams:
//
//  1. the time from the revoking admin call's answer at replica A to the
//     end of an event stream of the revoked token at replica B (the
//     client reads the connection's end), p50/p99, beside the time to
//     the first 401 at B in the same run (propagation), at rest and
//     during a storm of revocations at -rate that match no stream;
//  2. the same with -streams other streams open at B, and B's CPU per
//     revocation during the storm with and without them: the overhead of
//     a revocation that matches none of them;
//  3. B's resident memory per open stream (Caddy's own cost of a proxied
//     stream included).
//
// Every loop is bounded in count and in time. Processes are started on
// free loopback ports and stopped by PID.
//
//	go build -o bench/results/streams ./bench/streams
//	bench/results/streams -caddy ./caddy -streams 10000 -rate 5000
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/bench/internal/proc"
	"github.com/caddy-revocation/caddy-revocation/bench/internal/procstat"
)

const hmacSecret = "streams-secret-0123456789abcdef012"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "streams:", err)
		os.Exit(1)
	}
}

type options struct {
	caddy   string
	streams int
	rate    int
	samples int
	window  time.Duration
}

func run() error {
	var o options
	flag.StringVar(&o.caddy, "caddy", "./caddy", "caddy binary with the module (./xcaddy.sh builds ./caddy)")
	flag.IntVar(&o.streams, "streams", 10000, "other streams held open at replica B in the second half")
	flag.IntVar(&o.rate, "rate", 5000, "storm: revocations per second through replica A's admin API")
	flag.IntVar(&o.samples, "samples", 100, "samples of each latency, in each condition")
	flag.DurationVar(&o.window, "window", 10*time.Second, "storm time over which B's CPU per revocation is measured")
	flag.Parse()
	if _, err := exec.LookPath("redis-server"); err != nil {
		return errors.New("redis-server not found (on Debian: apt-get install -y redis-server)")
	}
	// Two descriptors per stream in caddy (client, upstream), and two
	// here (client, upstream): the soft limit is raised to the hard one,
	// which caddy inherits.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("open file limit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise the open file limit to %d: %w", lim.Max, err)
	}
	if need := uint64(2*o.streams + 1000); need > lim.Max {
		return fmt.Errorf("-streams %d needs %d open files per process; the hard limit is %d", o.streams, need, lim.Max)
	}
	work, err := os.MkdirTemp("", "streams-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{Group: proc.Group{Work: work}, o: o}
	defer b.stopAll()
	return b.measure()
}

type bench struct {
	proc.Group
	o     options
	rport int
	up    *http.Server
	upURL string
	seq   atomic.Int64
}

func (b *bench) measure() error {
	if err := b.startRedis(); err != nil {
		return err
	}
	if err := b.startUpstream(); err != nil {
		return err
	}
	a, err := b.startReplica("a")
	if err != nil {
		return err
	}
	r, err := b.startReplica("b")
	if err != nil {
		return err
	}
	fmt.Printf("streams: %s, %d cores shared with the other processes of the machine; figures of one run\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU())
	for _, held := range []int{0, b.o.streams} {
		if held > 0 {
			rss0 := rss(r.Cmd.Process.Pid)
			conns, err := b.hold(r, held)
			if err != nil {
				return err
			}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			time.Sleep(time.Second)
			rss1 := rss(r.Cmd.Process.Pid)
			open, _ := streamsOpen(r)
			fmt.Printf("%d streams held open at B (B's status says %d): B's resident memory +%.1f MiB, %.1f KiB per stream (Caddy's proxied stream included)\n",
				held, open, float64(rss1-rss0)/(1<<20), float64(rss1-rss0)/1024/float64(held))
		}
		end, prop, err := b.latencies(a, r)
		if err != nil {
			return err
		}
		report(fmt.Sprintf("at rest, %d other streams open: stream end at B", held), end)
		report(fmt.Sprintf("at rest, %d other streams open: first 401 at B", held), prop)

		ctx, stop := context.WithCancel(context.Background())
		st := &storm{}
		var wg sync.WaitGroup
		wg.Go(func() { st.run(ctx, a, b.o.rate) })
		time.Sleep(2 * time.Second) // let the storm settle
		cpu0, _ := procstat.CPU(r.Cmd.Process.Pid)
		n0 := st.applied.Load()
		time.Sleep(b.o.window)
		cpu1, _ := procstat.CPU(r.Cmd.Process.Pid)
		n1 := st.applied.Load()
		end, prop, err = b.latencies(a, r)
		stop()
		wg.Wait()
		if err != nil {
			return err
		}
		fmt.Printf("storm at %d/s through A, %d other streams open at B: B's CPU %.2f µs per revocation applied (%d revocations in %s; %d late or failed)\n",
			b.o.rate, held, float64((cpu1-cpu0).Nanoseconds())/1000/float64(n1-n0), n1-n0, b.o.window, st.missed.Load())
		report(fmt.Sprintf("storm at %d/s, %d other streams open: stream end at B", b.o.rate, held), end)
		report(fmt.Sprintf("storm at %d/s, %d other streams open: first 401 at B", b.o.rate, held), prop)
	}
	return nil
}

func report(what string, lat []time.Duration) {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("%s: %d samples, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		what, len(lat), ms(proc.Pct(lat, 0.5)), ms(proc.Pct(lat, 0.9)), ms(proc.Pct(lat, 0.99)), ms(lat[len(lat)-1]))
}

func (b *bench) latencies(a, r *proc.Replica) (end, prop []time.Duration, err error) {
	for range b.o.samples {
		jti := "victim-" + strconv.FormatInt(b.seq.Add(1), 10)
		tok, err := token("victim", jti)
		if err != nil {
			return nil, nil, err
		}
		c, br, err := openSSE(r, tok)
		if err != nil {
			return nil, nil, err
		}
		ended := make(chan time.Time, 1)
		go func() {
			_, _ = io.Copy(io.Discard, br)
			ended <- time.Now()
		}()
		if err := adminRevoke(a, jti); err != nil {
			c.Close()
			return nil, nil, err
		}
		answered := time.Now()
		select {
		case at := <-ended:
			end = append(end, at.Sub(answered))
		case <-time.After(5 * time.Second):
			c.Close()
			return nil, nil, fmt.Errorf("stream of %s still open at B 5 s after its revocation", jti)
		}
		c.Close()

		jti = "probe-" + strconv.FormatInt(b.seq.Add(1), 10)
		if tok, err = token("probe", jti); err != nil {
			return nil, nil, err
		}
		if st, err := get(r, tok); err != nil || st != http.StatusOK {
			return nil, nil, fmt.Errorf("%s before revoking: %d %v", jti, st, err)
		}
		if err := adminRevoke(a, jti); err != nil {
			return nil, nil, err
		}
		answered = time.Now()
		for {
			st, err := get(r, tok)
			if err != nil {
				return nil, nil, err
			}
			if st == http.StatusUnauthorized {
				prop = append(prop, time.Since(answered))
				break
			}
			if time.Since(answered) > 5*time.Second {
				return nil, nil, fmt.Errorf("%s not blocked at B after 5 s", jti)
			}
		}
	}
	return end, prop, nil
}

// hold opens n event streams at r, each with a token of its own user,
// and returns their connections once each has received its first event.
func (b *bench) hold(r *proc.Replica, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for i := range n {
		tok, err := token("holder-"+strconv.Itoa(i), "held-"+strconv.Itoa(i))
		if err != nil {
			return conns, err
		}
		c, _, err := openSSE(r, tok)
		if err != nil {
			return conns, fmt.Errorf("stream %d of %d: %w", i, n, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// openSSE opens an event stream at r with tok over a connection of its
// own and returns once the first event has arrived.
func openSSE(r *proc.Replica, tok string) (net.Conn, *bufio.Reader, error) {
	c, err := net.Dial("tcp", r.Addr)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(c, "GET /events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nAuthorization: Bearer %s\r\n\r\n", r.Addr, tok)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("open a stream: %w", err)
		}
		if strings.HasPrefix(line, "HTTP/1.1 ") && !strings.HasPrefix(line, "HTTP/1.1 200") {
			c.Close()
			return nil, nil, fmt.Errorf("open a stream: %s", strings.TrimSpace(line))
		}
		if strings.Contains(line, "data: hello") {
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, br, nil
}

func token(sub, jti string) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "sid": "s-" + jti, "jti": jti, "iat": now.Unix() - 1, "exp": now.Add(time.Hour).Unix(),
	}).SignedString([]byte(hmacSecret))
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func get(r *proc.Replica, tok string) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.Addr+"/api", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func adminRevoke(r *proc.Replica, jti string) error {
	_, err := r.Revoke(context.Background(), client, []byte(`{"jti":"`+jti+`","expires":"1h"}`))
	return err
}

func streamsOpen(r *proc.Replica) (int, error) {
	resp, err := client.Get(r.Admin + "/revocation/status")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	i := bytes.Index(data, []byte(`"streams_open":`))
	if i < 0 {
		return 0, errors.New("no streams_open in the status")
	}
	rest := data[i+len(`"streams_open":`):]
	j := bytes.IndexAny(rest, ",}")
	return strconv.Atoi(string(rest[:j]))
}

// storm sends rate revocations per second, as one bulk admin call every
// 10 ms (at most four in flight), of jtis no stream carries.
type storm struct {
	applied atomic.Int64
	missed  atomic.Int64
}

func (s *storm) run(ctx context.Context, r *proc.Replica, rate int) {
	per := max(1, rate/100)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	defer wg.Wait()
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			s.missed.Add(1)
			continue
		}
		var body strings.Builder
		body.WriteByte('[')
		for i := range per {
			if i > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"jti":"storm-%d-%d-%d","expires":"1h"}`, time.Now().UnixNano(), seq, i)
		}
		body.WriteByte(']')
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := r.Revoke(context.WithoutCancel(ctx), client, []byte(body.String())); err != nil {
				s.missed.Add(1)
				return
			}
			s.applied.Add(int64(per))
		})
	}
}

// rss reads a process's resident set size in bytes (Linux).
func rss(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	_, _ = fmt.Sscan(string(data), &size, &resident)
	return resident * int64(os.Getpagesize())
}

func (b *bench) startRedis() error {
	port, _, err := b.Redis("")
	b.rport = port
	return err
}

// startUpstream serves the app: /events sends one event and holds the
// stream open until the proxy closes it; anything else answers "ok".
func (b *bench) startUpstream() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.upURL = l.Addr().String()
	b.up = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: hello\n\n")
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})}
	go func() { _ = b.up.Serve(l) }()
	return nil
}

func (b *bench) startReplica(name string) (*proc.Replica, error) {
	r, _, err := b.Caddy(b.o.caddy, name, func(admin, site int) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
}
:%d {
	bind 127.0.0.1
	log {
		output discard
	}
	revocation {
		redis redis://127.0.0.1:%d
		jwt {
			hmac_secret %s
		}
	}
	reverse_proxy %s
}
`, admin, site, b.rport, hmacSecret, b.upURL)
	}, 60*time.Second)
	return r, err
}

func (b *bench) stopAll() {
	if b.up != nil {
		_ = b.up.Close()
	}
	b.StopAll()
}
