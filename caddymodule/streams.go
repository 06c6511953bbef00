package caddymodule

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/extract"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Open streams. The guard decides once per request; a request that stays
// open (a WebSocket or other upgraded tunnel, an event stream, a long
// poll, a long download, an HTTP/2 or gRPC stream) would keep the access
// of a credential revoked after it opened. So a proxied request that
// carried a credential and lasts is registered with its store's tracker
// (revocation.Tracker), which every revocation applied to the local
// denylist consults, wherever the revocation was made; one that the
// revocation would block now is ended: its context is cancelled, which
// makes reverse_proxy close the upstream side, and the client side is
// closed (after a WebSocket close frame 1008 "revoked" where one can be
// sent safely).

// streamThreshold is how long an ordinary proxied request runs before it
// is registered (sweepYoung: within streamThreshold/16 more): most
// requests end sooner and never touch the tracker.
// Upgrades and requests that ask for a stream register at once. A
// revocation that arrives while a request is younger reaches it when it
// registers, which checks the denylist again.
const streamThreshold = 500 * time.Millisecond

// closeFrameTimeout bounds the wait to send a WebSocket close frame to a
// client that reads nothing.
const closeFrameTimeout = time.Second

// hijackCloseGrace is how long after ending a tunnel its client side is
// closed by the guard itself, if the handler that hijacked it (normally
// reverse_proxy, which closes it at once) has not.
const hijackCloseGrace = 2 * time.Second

// errStreamEnded is the cause of an ended stream's context, and what
// writes to it return after.
var errStreamEnded = errors.New("revocation: stream ended: its credential was revoked or expired")

// The reasons a stream is ended, beyond revocation.Reason's: its token
// expired (close_streams_at_expiry).
const reasonExpired = "expired"

// streamReasons are the values of the reason label of
// streams_closed_total.
var streamReasons = []string{"token", "jti", "session", "subject", "global", reasonExpired}

// openStream is one proxied request that carried a credential, from the
// guard's pass until it returns. It is the ResponseWriter the rest of the
// chain writes to, so that writes stop when it ends, and a hijacked
// connection goes through it.
//
// An ordinary request's openStream comes from its store's pool and goes
// back to it when the request returns young: streamState is the
// request's, zero whenever the pool holds the openStream (finish zeroes
// it whole before giving it back), so that a request sets only what it
// has; young stays with the openStream (see youngCell).
type openStream struct {
	streamState
	young youngCell
}

// streamState is what an openStream holds of the one request it serves.
type streamState struct {
	http.ResponseWriter
	h      *Handler      // its store (h.store) is the openStream's
	req    *http.Request // as passed on: its context is the one cancelled
	creds  []extract.Credential
	cancel context.CancelCauseFunc // nil for an ordinary request (cancelOrdinary)
	kind   string                  // what it was registered as at once; "" for a long request

	// wroteHeader is set once a final (non-1xx) answer has begun;
	// hijacked once the connection was taken over; ended once a
	// revocation or expiry ended it.
	wroteHeader, hijacked, ended atomic.Bool

	mu      sync.Mutex
	done    bool // the request returned
	tracker *revocation.Tracker
	tracked *revocation.Tracked
	hashes  []revocation.TokenHash
	expiry  *time.Timer
	expIdx  int         // the credential whose expiry ends the stream
	conn    *streamConn // the hijacked connection, nil before
	reason  string      // why it ended
}

// youngCell says whether an openStream's request is young: an ordinary
// request that has passed the guard and has neither returned nor been
// registered. The store's sweep reads it at any moment without a lock
// (sweepYoung), so it is never reset with the rest of the openStream.
//
// gen is odd while the request is young. The request makes it odd when
// it passes the guard (enter), and whichever comes first makes it even
// again: the request returning (leave) or the sweep claiming it to
// register it (claim), each by a compare-and-swap from the value it
// read, so that exactly one of them wins, and a sweep that read the
// cell of an earlier request of the same openStream wins nothing. born
// is when the request (young or not) passed the guard, since the store's
// epoch: the stream's start, for its audit line too (started).
type youngCell struct {
	gen  atomic.Uint64
	born atomic.Int64
}

// enter makes the openStream's new request, whose born is set, young.
// Only the request's own goroutine makes gen odd, so a load and a store
// do.
func (c *youngCell) enter() { c.gen.Store(c.gen.Load() + 1) }

// leave takes the returning request out of the young ones, and reports
// whether it was still young: false once the sweep has claimed it.
func (c *youngCell) leave() bool {
	g := c.gen.Load()
	return g&1 == 1 && c.gen.CompareAndSwap(g, g+1)
}

// claim takes the request the sweep saw young (gen g) out of the young
// ones, and reports whether it was still young and the same request.
func (c *youngCell) claim(g uint64) bool { return c.gen.CompareAndSwap(g, g+1) }

// proxy passes a request that the guard let through on to the next
// handler, and ends it if a revocation (or close_streams_at_expiry)
// catches up with it while it is open. now is when the guard looked at
// the request.
//
// A stream request (an upgrade, an event stream, gRPC) gets a context
// of its own, which ending it cancels. An ordinary request costs no
// more than an openStream taken from its store's pool and marked young
// (youngCell), and given back to the pool when the request returns
// young: no allocation, no lock and no memory shared with other
// requests. If it lasts and is ended, the server itself cancels its
// context (see cancelOrdinary); HTTP/3, whose server offers no such
// way, gets a context of its own too.
func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *extract.Extraction, now time.Time) error {
	st := h.store
	s := st.newStream()
	s.ResponseWriter, s.h, s.req, s.creds = w, h, r, x.Creds
	s.young.born.Store(int64(now.Sub(st.epoch)))
	if kind := streamKind(r, &x.Stream); kind != "" || r.ProtoMajor > 2 {
		s.separate(kind)
	}
	if s.kind == "" {
		s.young.enter()
		st.startSweep()
	}
	defer s.finish()
	err := next.ServeHTTP(s, s.req)
	if s.ended.Load() && !s.hijacked.Load() {
		return s.answerCut(w, r)
	}
	return err
}

// separate gives a stream request (kind, or an HTTP/3 request: kind "")
// a context of its own, and registers a stream at once. It and answerCut
// are out of proxy's line: an ordinary request runs neither, and the
// guard's cost is mostly the cache lines its code takes
// (docs/performance.md).
//
//go:noinline
func (s *openStream) separate(kind string) {
	var ctx context.Context
	ctx, s.cancel = context.WithCancelCause(s.req.Context())
	s.req = s.req.WithContext(ctx)
	s.kind = kind
	if kind != "" {
		s.register()
	}
}

// answerCut ends the answer of a request that was ended while the
// handler beneath served it, and was not hijacked.
//
//go:noinline
func (s *openStream) answerCut(w http.ResponseWriter, r *http.Request) error {
	if !s.wroteHeader.Load() {
		// Ended before the upstream answered (a long poll): the
		// client gets what a new request with the credential gets.
		if r.ProtoMajor == 1 {
			// Its connection's reads were failed on purpose
			// (cancelOrdinary): it serves no other request.
			w.Header().Set("Connection", "close")
		}
		return s.answerEnded(w, r)
	}
	// An answer cut short must not look complete, nor its connection
	// serve another request: abort it, as reverse_proxy does.
	panic(http.ErrAbortHandler)
}

// cancelOrdinary ends an ordinary request through its server: over
// HTTP/1.x a read deadline in the past fails the server's read of the
// connection, which cancels the request's context (and a request body
// still being read fails); over HTTP/2 a write deadline in the past
// resets the stream, which cancels its context. Either way the handler
// beneath sees its context end, as a cancelled one of its own would.
func (s *openStream) cancelOrdinary() {
	rc := http.NewResponseController(s.ResponseWriter)
	past := time.Unix(1, 0)
	var err error
	if s.req.ProtoMajor == 2 {
		err = rc.SetWriteDeadline(past)
	} else {
		err = rc.SetReadDeadline(past)
	}
	if err != nil {
		// Its writes fail all the same (Write); a handler that neither
		// writes nor reads stays until it answers.
		caddy.Log().Named("http.handlers.revocation").Debug("cannot cancel an ended request through its server", zap.Error(err))
	}
}

// streamKind says what a request opens that is worth registering at
// once, "" for an ordinary request.
//
// It runs on every proxied request, so it takes the headers it reads
// from the extraction (hdr), which noted them in its own pass over the
// header map, rather than looking each up again.
func streamKind(r *http.Request, hdr *extract.StreamHeaders) string {
	switch {
	case r.Method == http.MethodConnect:
		return "connect" // an HTTP/2 extended CONNECT (WebSocket over HTTP/2) or a tunnel
	case hdr.Upgrade != "":
		if isWebSocket(r, hdr.Upgrade) {
			return "websocket"
		}
		return "upgrade"
	case strings.Contains(hdr.Accept, "text/event-stream"):
		return "event_stream"
	case strings.HasPrefix(hdr.ContentType, "application/grpc"):
		return "grpc"
	}
	return ""
}

// newStream returns an openStream from the store's pool, or a new one,
// which it makes a member of the store (sweepYoung). Its streamState is
// zero either way.
func (st *sharedStore) newStream() *openStream {
	if s, ok := st.streams.Get().(*openStream); ok {
		return s
	}
	s := new(openStream)
	st.membersMu.Lock()
	st.members = append(st.members, weak.Make(s))
	st.membersMu.Unlock()
	return s
}

// sweepWake bounds how often the sweep wakes: at most once per
// sweepWake, so a request is registered within that much of reaching
// the threshold.
const sweepWake = streamThreshold / 16

// startSweep starts the store's sweep of its young requests unless it is
// running. The caller has just made a request young.
func (st *sharedStore) startSweep() {
	if !st.sweeping.Load() && st.sweeping.CompareAndSwap(false, true) {
		go st.sweepYoung()
	}
}

// sweepYoung registers the store's young requests as they outlive the
// threshold, and runs while any request is young. It looks at the young
// cell of every openStream the store's pool made that is still alive
// (members: weak pointers, so that the openStreams the pool lets go of
// are collected), which costs the requests nothing. It sleeps until the
// oldest young request reaches the threshold rather than ticking: under
// a steady flow of short requests the oldest one is always moments old,
// so the sweep wakes about twice a second per store. (Each wake-up of an
// otherwise busy process costs it CPU time shared with its neighbours: a
// sweep that woke every 10 ms took a fifth off the throughput of the
// proxy beside its baseline in loadbench.)
func (st *sharedStore) sweepYoung() {
	timer := time.NewTimer(streamThreshold)
	defer timer.Stop()
	var due []*openStream
	for range timer.C {
		var oldest time.Duration
		due, oldest = st.takeDue(time.Since(st.epoch), due)
		for _, s := range due {
			s.register()
		}
		clear(due)
		due = due[:0]
		if oldest < 0 {
			// No request was young. One made young since was made so
			// while the sweep still ran (startSweep saw it running):
			// look again once the flag is down, and carry on for it.
			st.sweeping.Store(false)
			if !st.anyYoung() || !st.sweeping.CompareAndSwap(false, true) {
				return
			}
			oldest = time.Since(st.epoch)
		}
		timer.Reset(max(time.Until(st.epoch.Add(oldest+streamThreshold)), sweepWake))
	}
}

// takeDue claims the young requests that have outlived the threshold at
// now (since the store's epoch), appending them to due, and returns when
// the oldest request still young was born (-1 when none is). It drops
// the members the pool let go of.
func (st *sharedStore) takeDue(now time.Duration, due []*openStream) ([]*openStream, time.Duration) {
	oldest := time.Duration(-1)
	st.membersMu.Lock()
	defer st.membersMu.Unlock()
	live := st.members[:0]
	for _, m := range st.members {
		s := m.Value()
		if s == nil {
			continue
		}
		live = append(live, m)
		g := s.young.gen.Load()
		if g&1 == 0 {
			continue
		}
		// Read after gen: a later request's born, if the openStream
		// has served another since, which claim then refuses.
		born := time.Duration(s.young.born.Load())
		if now-born >= streamThreshold {
			if s.young.claim(g) {
				due = append(due, s)
			}
			continue
		}
		if oldest < 0 || born < oldest {
			oldest = born
		}
	}
	clear(st.members[len(live):])
	st.members = live
	return due, oldest
}

// anyYoung reports whether any request of the store is young.
func (st *sharedStore) anyYoung() bool {
	st.membersMu.Lock()
	defer st.membersMu.Unlock()
	for _, m := range st.members {
		if s := m.Value(); s != nil && s.young.gen.Load()&1 == 1 {
			return true
		}
	}
	return false
}

// isWebSocket reports whether r, whose Upgrade header is upgrade, asks
// for a WebSocket over HTTP/1.1.
func isWebSocket(r *http.Request, upgrade string) bool {
	return strings.EqualFold(upgrade, "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// register puts the stream in its store's tracker, then checks the
// denylist again for what was revoked since the guard's check.
func (s *openStream) register() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || s.tracked != nil {
		return
	}
	h := s.h
	now := time.Now()
	unix := now.Unix()
	ids := make([]revocation.Identity, len(s.creds))
	s.hashes = make([]revocation.TokenHash, len(s.creds))
	var exp revocation.UnixMillis
	for i := range s.creds {
		// Seen by the guard moments ago: a cache hit, one hash.
		info := h.inspector.InspectAt(s.req.Context(), s.creds[i].Raw, unix, false)
		ids[i], s.hashes[i] = info.ID, info.Hash
		if s.creds[i].Kind == extract.Access && info.ExpiresAt > 0 && (exp == 0 || info.ExpiresAt < exp) {
			exp, s.expIdx = info.ExpiresAt, i
		}
	}
	s.tracker = h.store.tracker
	s.tracked = s.tracker.Add(ids, s.revoked)
	metrics.streamsOpen.Inc()
	if r, i := s.tracked.Check(h.store.Denylist(), unix); r != revocation.NotBlocked && s.tracked.Ended() {
		go s.end(r.String(), i)
	}
	if h.CloseStreamsAtExpiry && exp > 0 {
		if h.verifier != nil {
			exp += revocation.UnixMillis(h.verifier.Leeway().Milliseconds())
		}
		s.expiry = time.AfterFunc(exp.Time().Sub(now), s.expired)
	}
}

// revoked is the tracker's callback: it runs on the goroutine that
// applied the revocation, so the work is done on another.
func (s *openStream) revoked(r revocation.Reason, i int) { go s.end(r.String(), i) }

// expired ends the stream when its access token expires.
func (s *openStream) expired() {
	s.mu.Lock()
	t, i := s.tracked, s.expIdx
	s.mu.Unlock()
	if t != nil && t.Ended() {
		s.end(reasonExpired, i)
	}
}

// end ends a stream that is still open: a WebSocket close frame where
// one can be sent, then the context (and with it the upstream side),
// then the client side.
func (s *openStream) end(reason string, i int) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.reason = reason
	s.ended.Store(true)
	conn := s.conn
	var hash string
	if i >= 0 && i < len(s.hashes) {
		hash = s.hashes[i].Short()
	}
	s.mu.Unlock()
	closeFrame := false
	if conn != nil {
		closeFrame = conn.revoke(reason)
	}
	if s.cancel != nil {
		s.cancel(errStreamEnded)
	} else {
		s.cancelOrdinary()
	}
	if conn != nil {
		// reverse_proxy closes the client side as soon as the upstream
		// side is closed; this is for a handler that does not.
		time.AfterFunc(hijackCloseGrace, func() { _ = conn.Close() })
	}
	metrics.streamsClosed.WithLabelValues(reason).Inc()
	msg := "stream ended: credential revoked"
	if reason == reasonExpired {
		msg = "stream ended: token expired"
	}
	// Caddy's current logger: a stream may outlive the config that
	// opened it (caddy reload), and that config's log writers with it.
	log := caddy.Log().Named("http.handlers.revocation")
	if ce := log.Check(zap.InfoLevel, msg); ce != nil {
		ce.Write(
			zap.String("reason", reason),
			zap.String("token_hash", hash),
			zap.Float64("open_seconds", time.Since(s.started()).Seconds()),
			zap.String("stream", s.describe(conn != nil)),
			zap.Bool("close_frame", closeFrame),
			zap.String("remote_ip", clientIP(s.req)),
			zap.String("method", s.req.Method),
			zap.String("path", loggedPath(s.req.URL.Path)),
			zap.String("request_id", requestID(s.req)),
		)
	}
}

// started is when the stream's request passed the guard.
func (s *openStream) started() time.Time {
	return s.h.store.epoch.Add(time.Duration(s.young.born.Load()))
}

// describe names the stream for the audit line.
func (s *openStream) describe(hijacked bool) string {
	switch {
	case s.kind != "":
		return s.kind
	case hijacked:
		return "upgrade"
	case s.wroteHeader.Load():
		return "long_response"
	}
	return "long_poll"
}

// finish unregisters the stream once its request has returned, and
// gives an ordinary request that returned young back to its store's
// pool: nothing else holds it then (it was never registered, so no
// tracker callback, expiry timer or end can reach it, and it was not
// hijacked, so no connection wrapper refers to it).
func (s *openStream) finish() {
	if s.kind == "" && s.young.leave() && s.cancel == nil && !s.hijacked.Load() {
		st := s.h.store
		// Let go of the request, its writer and its credentials.
		s.streamState = streamState{}
		st.streams.Put(s)
		return
	}
	s.mu.Lock()
	s.done = true
	tracker, tracked, expiry := s.tracker, s.tracked, s.expiry
	s.mu.Unlock()
	if expiry != nil {
		expiry.Stop()
	}
	if tracked != nil {
		tracker.Remove(tracked)
		metrics.streamsOpen.Dec()
	}
	if s.cancel != nil {
		s.cancel(nil)
	}
}

// answerEnded answers a request ended before its answer began, as the
// guard answers a revoked (or, at expiry, expired) credential.
func (s *openStream) answerEnded(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	desc := "The access token has been revoked"
	if reason == reasonExpired {
		desc = "The access token has expired"
	}
	source := ""
	if len(s.creds) > 0 {
		source = s.creds[0].Source
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
	return deny(w, r, http.StatusUnauthorized, reason, source, map[string]string{"error": "invalid_token", "error_description": desc})
}

// WriteHeader records that the answer began. Once the stream is ended,
// the answer is the guard's: a status from beneath (reverse_proxy's 499
// for the context the guard had cancelled) is dropped.
func (s *openStream) WriteHeader(code int) {
	if s.ended.Load() {
		return
	}
	if code >= 200 || code == http.StatusSwitchingProtocols {
		s.wroteHeader.Store(true)
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write passes the body on until the stream ends.
func (s *openStream) Write(p []byte) (int, error) {
	if s.ended.Load() {
		return 0, errStreamEnded
	}
	if !s.wroteHeader.Load() {
		s.wroteHeader.Store(true) // once: a store on every write is a locked instruction
	}
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach Flush, deadlines and the
// rest on the writer beneath.
func (s *openStream) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack takes over the connection as the writer beneath does, and hands
// out a wrapper that lets the guard end it (see streamConn).
func (s *openStream) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Send what net/http buffered (the 101 answer) now, so that every
	// later byte goes through the wrapper.
	if err := brw.Flush(); err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	sc := &streamConn{Conn: c, ws: s.kind == "websocket"}
	s.hijacked.Store(true)
	s.mu.Lock()
	s.conn = sc
	ended, reason := s.ended.Load(), s.reason
	s.mu.Unlock()
	if ended {
		sc.revoke(reason)
	}
	return sc, bufio.NewReadWriter(brw.Reader, bufio.NewWriter(sc)), nil
}

// streamConn is a hijacked client connection as the guard hands it to
// the handler that hijacked it. Its writes are serialized with the
// guard's close frame, and it follows the WebSocket frames written to it
// (RFC 6455 section 5.2: server frames are unmasked) to know when a
// write ends at a frame boundary: only there can a close frame be sent
// without corrupting the stream.
type streamConn struct {
	net.Conn
	mu      sync.Mutex
	ws      bool // a WebSocket whose frames are followed so far
	revoked bool
	hdr     [14]byte // the frame header being read
	hn      int
	left    uint64 // payload bytes of the current frame still to come
}

// wsClose returns a close frame with status 1008 (policy violation)
// and a reason: "revoked", or "expired" at the token's expiry.
func wsClose(reason string) []byte {
	why := "revoked"
	if reason == reasonExpired {
		why = "expired"
	}
	return append([]byte{0x88, byte(2 + len(why)), 1008 >> 8, 1008 & 0xff}, why...)
}

func (c *streamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked {
		return 0, errStreamEnded
	}
	n, err := c.Conn.Write(p)
	if c.ws {
		c.follow(p[:n])
	}
	return n, err
}

// CloseWrite half-closes the connection beneath when it can, as
// reverse_proxy does to pass on the end of the upstream's side.
func (c *streamConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// follow advances the frame parser over bytes written.
func (c *streamConn) follow(p []byte) {
	for len(p) > 0 {
		if c.left > 0 {
			k := uint64(len(p))
			if k > c.left {
				k = c.left
			}
			p = p[k:]
			c.left -= k
			continue
		}
		c.hdr[c.hn] = p[0]
		c.hn++
		p = p[1:]
		if c.hn < 2 {
			continue
		}
		need := 2
		switch c.hdr[1] & 0x7f {
		case 126:
			need += 2
		case 127:
			need += 8
		}
		if c.hdr[1]&0x80 != 0 {
			need += 4 // a masked frame: not from a server, but parse it
		}
		if c.hn < need {
			continue
		}
		switch n := uint64(c.hdr[1] & 0x7f); n {
		case 126:
			c.left = uint64(c.hdr[2])<<8 | uint64(c.hdr[3])
		case 127:
			for _, b := range c.hdr[2:10] {
				c.left = c.left<<8 | uint64(b)
			}
			if c.left>>63 != 0 {
				c.ws = false // not a frame RFC 6455 allows: stop following
				return
			}
		default:
			c.left = n
		}
		c.hn = 0
	}
}

// revoke stops the handler's writes and, at a frame boundary of a
// WebSocket, sends the close frame for reason; it reports whether it did. A write
// stuck on a client that reads nothing is cut short by a deadline, and
// the close frame waits for it at most as long.
func (c *streamConn) revoke(reason string) bool {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFrameTimeout))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked {
		return false
	}
	c.revoked = true
	if !c.ws || c.hn != 0 || c.left != 0 {
		return false
	}
	if _, err := c.Conn.Write(wsClose(reason)); err != nil {
		return false
	}
	// The client reads the close frame, then the end of the stream.
	_ = c.CloseWrite()
	return true
}
