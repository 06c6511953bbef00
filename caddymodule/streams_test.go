package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
)

// wsFrame is a server frame (unmasked) with opcode op and payload p.
func wsFrame(op byte, p []byte) []byte {
	f := []byte{0x80 | op}
	switch n := len(p); {
	case n < 126:
		f = append(f, byte(n))
	case n < 1<<16:
		f = append(f, 126, byte(n>>8), byte(n))
	default:
		f = append(f, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(f, p...)
}

// loopbackPair returns the two ends of a TCP connection on loopback.
func loopbackPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// The close frame goes out only between two frames: in the middle of
// one it would corrupt the stream, so then the connection just ends.
func TestStreamConnCloseFrameOnlyAtAFrameBoundary(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000) // a 64-bit length
	mid := bytes.Repeat([]byte("y"), 300)   // a 16-bit length
	cases := []struct {
		name   string
		writes [][]byte // as the proxy writes them, split anywhere
		want   bool
	}{
		{"nothing written", nil, true},
		{"whole frames", [][]byte{wsFrame(1, []byte("hello")), wsFrame(2, mid), wsFrame(1, big)}, true},
		{"frames split across writes", func() [][]byte {
			all := append(append(wsFrame(1, []byte("hi")), wsFrame(2, mid)...), wsFrame(1, big)...)
			return [][]byte{all[:1], all[1:3], all[3:9], all[9:400], all[400:]}
		}(), true},
		{"in a header", [][]byte{wsFrame(1, mid)[:3]}, false},
		{"in a payload", [][]byte{wsFrame(1, big)[:5000]}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			server, client := loopbackPair(t)
			sc := &streamConn{Conn: server, ws: true}
			var sent []byte
			got := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(client)
				got <- b
			}()
			for _, w := range c.writes {
				if _, err := sc.Write(w); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, w...)
			}
			if ok := sc.revoke("session"); ok != c.want {
				t.Fatalf("revoke sent a close frame: %v, want %v", ok, c.want)
			}
			if _, err := sc.Write(wsFrame(1, []byte("after"))); err == nil {
				t.Fatal("a write after the end went through")
			}
			server.Close()
			b := <-got
			want := sent
			if c.want {
				want = append(append([]byte(nil), sent...), wsClose("session")...)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("the client read %d bytes, want %d (the frames, then the close frame: %v)", len(b), len(want), c.want)
			}
		})
	}
	if f := wsClose(reasonExpired); !bytes.Equal(f[2:], []byte{0x03, 0xf0, 'e', 'x', 'p', 'i', 'r', 'e', 'd'}) || f[1] != 9 {
		t.Fatalf("close frame at expiry: % x", f)
	}
}

// A write that a client never reads cannot hold the end up: the
// deadline cuts it, and the stream ends without a close frame.
func TestStreamConnRevokeDoesNotWaitForAStuckClient(t *testing.T) {
	server, _ := loopbackPair(t)
	sc := &streamConn{Conn: server, ws: true}
	stuck := make(chan error, 1)
	go func() {
		_, err := sc.Write(wsFrame(2, bytes.Repeat([]byte("z"), 64<<20)))
		stuck <- err
	}()
	// Until the write holds the connection (it blocks once the socket
	// buffers are full).
	for sc.mu.TryLock() {
		sc.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	done := make(chan bool)
	go func() { done <- sc.revoke("token") }()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("a close frame was sent in the middle of a frame")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("revoke waited on a client that reads nothing")
	}
	if err := <-stuck; err == nil {
		t.Fatal("the stuck write succeeded")
	}
}

// An ordinary request that returns young gives its openStream back to
// the store's pool; the next requests reuse it. A long request served
// by a reused one must still be registered once it outlives the
// threshold and ended by a revocation, and a crowd of short requests
// must leave nothing tracked, no request young and the sweep stopped.
func TestStreamPooledLongRequestTrackedAndEnded(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{JWT: &JWTConfig{HMACSecret: secret}, LegacyEndpoints: LegacyEndpoints{Endpoints: []string{"none"}}, LogBlocked: "off", AppID: "pooltest"}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	token := func(sub string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": sub, "sid": "s-" + sub, "jti": "j-" + sub,
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	long, quit := make(chan struct{}), make(chan struct{})
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Path == "/long" {
			close(long)
			select { // a long poll: ended only by the guard (or the test's end)
			case <-r.Context().Done():
			case <-quit:
			}
			return nil
		}
		_, err := io.WriteString(w, "ok")
		return err
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.ServeHTTP(w, asServed(r), next); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	defer close(quit) // before srv.Close, which waits for the long request
	get := func(path, tok string) (int, error) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}

	// A crowd of short requests, from both cores.
	var wg sync.WaitGroup
	for g := range 8 {
		tok := token(fmt.Sprintf("crowd-%d", g))
		wg.Go(func() {
			for range 100 {
				if st, err := get("/short", tok); err != nil || st != http.StatusOK {
					t.Errorf("short request: %d %v", st, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := h.store.tracker.Len(); n != 0 {
		t.Fatalf("%d requests tracked after short requests only", n)
	}
	if h.store.anyYoung() {
		t.Fatal("a request is still young after every request returned")
	}
	// With nothing young left, the store's sweep stops (it wakes no
	// process that has nothing to register); the long request below must
	// start it again.
	for deadline := time.Now().Add(5 * time.Second); h.store.sweeping.Load(); {
		if time.Now().After(deadline) {
			t.Fatal("the sweep still runs with no request young")
		}
		time.Sleep(20 * time.Millisecond)
	}

	victim := token("victim")
	status := make(chan int, 1)
	go func() {
		st, err := get("/long", victim)
		if err != nil {
			t.Error(err)
		}
		status <- st
	}()
	select {
	case <-long:
	case <-time.After(5 * time.Second):
		t.Fatal("the long request never reached the handler")
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.store.tracker.Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("a long request served by a reused openStream was never registered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := h.revoker.RevokeToken(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-status:
		if st != http.StatusUnauthorized {
			t.Fatalf("long request ended with %d, want 401", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the revocation did not end the long request")
	}
	for h.store.tracker.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the ended request is still tracked")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A young request is taken out of the young ones exactly once: by its
// own return (leave) or by the sweep's claim of the generation it saw,
// whichever comes first, and a claim of an earlier request's generation
// of the same openStream never takes the request serving it now.
func TestYoungCellLeaveOrClaim(t *testing.T) {
	var c youngCell
	for i := range 2000 {
		c.enter()
		g := c.gen.Load()
		if g&1 != 1 {
			t.Fatalf("after enter, gen %d is not odd", g)
		}
		var left, claimed atomic.Bool
		var wg sync.WaitGroup
		wg.Go(func() { left.Store(c.leave()) })
		wg.Go(func() { claimed.Store(c.claim(g)) })
		wg.Wait()
		if left.Load() == claimed.Load() {
			t.Fatalf("round %d: leave %v, claim %v: want exactly one", i, left.Load(), claimed.Load())
		}
		if c.leave() {
			t.Fatalf("round %d: left twice", i)
		}
		// The next request of the same openStream: a late claim of the
		// last one's generation must not take it.
		c.enter()
		if c.claim(g) {
			t.Fatalf("round %d: a claim of an earlier generation took the next request", i)
		}
		if !c.leave() {
			t.Fatalf("round %d: the next request was not young", i)
		}
	}
}

// The store's sweep looks at the openStreams its pool made through weak
// pointers: the ones the pool lets go of are collected, and dropped from
// the members at the next sweep, so that a burst of requests does not
// leave the store holding their openStreams.
func TestYoungMembersLetGo(t *testing.T) {
	st := &sharedStore{epoch: time.Now()}
	var held []*openStream
	for range 64 {
		held = append(held, st.newStream())
	}
	held[0].young.born.Store(int64(time.Since(st.epoch)))
	held[0].young.enter()
	for _, s := range held[1:] {
		st.streams.Put(s)
	}
	keep := held[0]
	held = nil
	// sync.Pool lets go of what it holds over two collections.
	runtime.GC()
	runtime.GC()
	runtime.GC()
	due, oldest := st.takeDue(time.Since(st.epoch), nil)
	if len(due) != 0 || oldest < 0 {
		t.Fatalf("takeDue: %d due, oldest %v; want none due and one young", len(due), oldest)
	}
	st.membersMu.Lock()
	n := len(st.members)
	st.membersMu.Unlock()
	if n != 1 {
		t.Fatalf("%d members after the pool let go of 63 openStreams and one is in use, want 1", n)
	}
	if !st.anyYoung() || !keep.young.leave() || st.anyYoung() {
		t.Fatal("the openStream in use was not the young member")
	}
}

// A request that returns young gives its openStream back to the pool
// with its streamState zero (finish zeroes it whole), so that the next
// request starts from nothing of it: proxy sets only the fields a
// request has.
func TestPooledStreamIsZero(t *testing.T) {
	h := guardHandler(t, nil)
	tok := guardTokens.Mint(t, jwt.MapClaims{"sub": "pooled", "sid": "s1"})
	checked := 0
	for range 50 {
		r := httptest.NewRequest(http.MethodGet, "/app", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		r.AddCookie(&http.Cookie{Name: "session_id", Value: "a-long-session-value-0123456789"})
		if code, reached := serve(t, h, r); code != http.StatusOK || !reached {
			t.Fatalf("status %d, reached %v", code, reached)
		}
		s, ok := h.store.streams.Get().(*openStream)
		if !ok {
			continue // the race detector's pool drops some of what it is given
		}
		if !reflect.ValueOf(&s.streamState).Elem().IsZero() {
			t.Fatalf("a pooled openStream kept its request's state: %+v", &s.streamState)
		}
		if s.young.gen.Load()&1 != 0 {
			t.Fatal("a pooled openStream is still young")
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("the pool never gave back an openStream")
	}
}
