package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// The tests in this file hold streams open through the guard (a real
// WebSocket, an event stream, a long response, a long poll) to a real
// app, and revoke their credentials while they are open: issue 18,
// "revocation reaches open connections".

// streamApp is the app behind the proxy: a WebSocket echo server, an
// event stream and a long response that tick every 20 ms, and a long
// poll. Each notes, by the id query parameter, when its side of a stream
// ended.
type streamApp struct {
	*httptest.Server
	mu     sync.Mutex
	closed map[string]chan struct{}
}

func startStreamApp(t *testing.T) *streamApp {
	t.Helper()
	a := &streamApp{closed: map[string]chan struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		defer a.ended(r)
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, msg); err != nil {
				return
			}
		}
	})
	tick := func(contentType string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			defer a.ended(r)
			w.Header().Set("Content-Type", contentType)
			rc := http.NewResponseController(w)
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(w, "data: tick %d\n\n", i); err != nil {
					return
				}
				if rc.Flush() != nil {
					return
				}
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
	mux.HandleFunc("/sse", tick("text/event-stream"))
	mux.HandleFunc("/long", tick("application/octet-stream"))
	mux.HandleFunc("/poll", func(w http.ResponseWriter, r *http.Request) {
		a.ch(r.URL.Query().Get("id")) // holding it
		defer a.ended(r)
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
			fmt.Fprint(w, "nothing new")
		}
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

func (a *streamApp) ch(id string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.closed[id]
	if !ok {
		c = make(chan struct{})
		a.closed[id] = c
	}
	return c
}

func (a *streamApp) ended(r *http.Request) { close(a.ch(r.URL.Query().Get("id"))) }

// upstreamClosed reports whether the app's side of stream id has ended.
func (a *streamApp) upstreamClosed(id string) bool {
	select {
	case <-a.ch(id):
		return true
	default:
		return false
	}
}

// clientStream is one stream held open by a client through a replica.
type clientStream struct {
	name string
	id   string
	ws   *websocket.Conn
	// ticks counts events or chunks received (event stream, long
	// response); done is closed when the stream ended at the client,
	// with err saying how, and status the answer's status (long poll).
	ticks  atomic.Int64
	done   chan struct{}
	err    error
	status int
	cancel context.CancelFunc
}

// openStream opens a stream of kind (ws, sse, long, poll) at replica c
// with an access token, and waits until it is flowing (a poll: until the
// app holds it).
func openStream(t *testing.T, app *streamApp, c *Caddy, kind, token, name string) *clientStream {
	t.Helper()
	s := &clientStream{name: name, id: randomID(), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	t.Cleanup(s.close)
	header := http.Header{"Authorization": {"Bearer " + token}}
	switch kind {
	case "ws":
		u := strings.Replace(c.URL, "http://", "ws://", 1) + "/ws?id=" + s.id
		conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: header})
		if err != nil {
			t.Fatalf("%s: dial: %v (%v)", name, err, resp)
		}
		s.ws = conn
		if !s.echoes() {
			t.Fatalf("%s: no echo on a fresh WebSocket", name)
		}
		return s
	case "sse", "long", "poll":
		req, _ := http.NewRequestWithContext(ctx, "GET", c.URL+"/"+kind+"?id="+s.id, nil)
		req.Header = header
		if kind == "sse" {
			req.Header.Set("Accept", "text/event-stream")
		}
		started := make(chan struct{})
		go func() {
			defer close(s.done)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				s.err = err
				close(started)
				return
			}
			defer resp.Body.Close()
			s.status = resp.StatusCode
			if kind == "poll" {
				close(started)
				_, s.err = io.ReadAll(resp.Body)
				return
			}
			close(started)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: tick") {
					s.ticks.Add(1)
				}
			}
			s.err = sc.Err()
			if s.err == nil {
				s.err = io.EOF // a clean end of the body
			}
		}()
		if kind == "poll" {
			Eventually(t, name+" reaching the app", func() bool {
				app.mu.Lock()
				_, ok := app.closed[s.id]
				app.mu.Unlock()
				return ok
			})
			return s
		}
		<-started
		Eventually(t, name+" flowing", func() bool { return s.ticks.Load() >= 2 })
		return s
	}
	t.Fatalf("unknown stream kind %q", kind)
	return nil
}

// echoes reports whether a WebSocket still answers a message.
func (s *clientStream) echoes() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	msg := "ping " + randomID()
	if err := s.ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return false
	}
	_, got, err := s.ws.Read(ctx)
	return err == nil && string(got) == msg
}

// flowing reports whether the stream still carries data: an echo on a
// WebSocket, new ticks on an event stream or a long response.
func (s *clientStream) flowing() bool {
	if s.ws != nil {
		return s.echoes()
	}
	before := s.ticks.Load()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if s.ticks.Load() >= before+2 {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func (s *clientStream) close() {
	if s.ws != nil {
		s.ws.CloseNow()
	}
	s.cancel()
}

// expectEnded waits until the guard ended a stream, and checks what the
// client saw and that the app's side was closed too.
func expectEnded(t *testing.T, app *streamApp, s *clientStream) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	if s.ws != nil {
		// The next read gets the close frame: 1008 "revoked".
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		var err error
		for err == nil {
			_, _, err = s.ws.Read(ctx)
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "revoked" {
			t.Fatalf("%s: WebSocket ended with %v, want close 1008 revoked", s.name, err)
		}
	} else {
		select {
		case <-s.done:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("%s: still open 5s after the revocation (%d ticks)", s.name, s.ticks.Load())
		}
		switch {
		case s.status == http.StatusUnauthorized && s.ticks.Load() == 0:
			// A long poll, answered as a new request is.
		case errors.Is(s.err, io.EOF) && s.ticks.Load() > 0:
			t.Fatalf("%s: the stream ended as if complete; an ended stream must not look finished", s.name)
		case s.err == nil:
			t.Fatalf("%s: ended with status %d and no error", s.name, s.status)
		}
	}
	Eventually(t, s.name+": the app's side closed", func() bool { return app.upstreamClosed(s.id) })
}

// expectFlowing checks that a stream the revocation must spare still
// carries data, and that the app's side is open.
func expectFlowing(t *testing.T, app *streamApp, s *clientStream) {
	t.Helper()
	if !s.flowing() {
		t.Fatalf("%s: stopped flowing (err %v), but its credential is not revoked", s.name, s.err)
	}
	if app.upstreamClosed(s.id) {
		t.Fatalf("%s: the app's side was closed", s.name)
	}
}

// streamsEnv is a redis-server, the app, an identity provider and two
// replicas that serve the seed endpoints and back-channel logout.
type streamsEnv struct {
	app *streamApp
	p   *provider
	cs  []*Caddy
}

func streamsConfig(redisURL string, p *provider, app *streamApp, extra string) string {
	return fmt.Sprintf(`{
	admin {{ADMIN}}
}
:{{PORT}} {
	bind 127.0.0.1
	revocation {
		redis %s
		stale_after 10m
		jwt {
			issuer %s
			jwks_url %s
		}
		backchannel_logout {
			client_id %s
		}
%s
	}
	reverse_proxy %s {
		stream_close_delay 1m
	}
}
`, redisURL, p.issuer, p.jwks.URL, p.clientID, extra, app.Listener.Addr())
}

func startStreamsEnv(t *testing.T, extra string) (*streamsEnv, *testredis.Server) {
	t.Helper()
	srv := testredis.Start(t)
	e := &streamsEnv{app: startStreamApp(t), p: startProvider(t, "https://idp.example.com", "web-app")}
	config := streamsConfig(srv.URL(), e.p, e.app, extra)
	for range 2 {
		c := StartCaddy(t, config, "SSL_CERT_FILE="+e.p.certFile)
		c.WaitReady()
		e.cs = append(e.cs, c)
	}
	return e, srv
}

// access mints an access token of the provider, issued at iat.
func (e *streamsEnv) access(t *testing.T, sub, sid string, iat time.Time) (token, jti string) {
	jti = "jti-" + randomID()
	return e.p.sign(t, "JWT", jwt.MapClaims{
		"iss": e.p.issuer, "sub": sub, "sid": sid, "jti": jti, "aud": "api",
		"iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix(),
	}), jti
}

// openAll opens a WebSocket, an event stream and a long response with
// token at every replica.
func (e *streamsEnv) openAll(t *testing.T, token, who string) []*clientStream {
	t.Helper()
	var out []*clientStream
	for i, c := range e.cs {
		for _, kind := range []string{"ws", "sse", "long"} {
			out = append(out, openStream(t, e.app, c, kind, token, fmt.Sprintf("%s %s at replica %d", who, kind, i)))
		}
	}
	return out
}

// TestStreamsEndOnEveryKindOfRevocation revokes, at replica 0, each kind
// of revocation while a WebSocket, an event stream and a long response
// of the revoked credential are open at both replicas (replica 1 hears
// of it through the feed), beside streams of another user and of a
// session the revocation spares.
func TestStreamsEndOnEveryKindOfRevocation(t *testing.T) {
	t.Parallel()
	e, _ := startStreamsEnv(t, "")

	// Each case revokes at replica 0. kept is a token of the victim's
	// subject that the revocation spares: another session ("s2", issued
	// as long ago as the victim), a token issued after the cutoff
	// ("recent"), or none ("").
	cases := []struct {
		name   string
		kept   string
		revoke func(t *testing.T, sub, sid, victim, victimJTI, kept string)
	}{
		{"token", "s2", func(t *testing.T, _, _, victim, _, _ string) { revokeTokenAt(t, e.cs[0], victim) }},
		{"jti", "s2", func(t *testing.T, _, _, _, jti, _ string) { adminRevoke(t, e.cs[0], fmt.Sprintf(`{"jti":%q}`, jti)) }},
		{"session", "s2", func(t *testing.T, sub, sid, _, _, _ string) {
			adminRevoke(t, e.cs[0], fmt.Sprintf(`{"subject":%q,"session":%q}`, sub, sid))
		}},
		{"logout", "s2", func(t *testing.T, _, _, victim, _, _ string) { logoutAt(t, e.cs[0], victim) }},
		{"subject cut", "", func(t *testing.T, sub, _, _, _, _ string) {
			adminRevoke(t, e.cs[0], fmt.Sprintf(`{"subject":%q}`, sub))
		}},
		{"others keeps the caller's session", "s2", func(t *testing.T, _, _, _, _, kept string) {
			r := Do(t, "POST", e.cs[0].URL+"/v1/session/me/revoke?target=others", "", "Authorization", "Bearer "+kept)
			if r.Status != http.StatusNoContent {
				t.Fatalf("revoke others: %d %s", r.Status, r.Body)
			}
		}},
		{"back-channel logout", "s2", func(t *testing.T, _, sid, _, _, _ string) {
			// The provider names its session only, not the subject.
			now := time.Now()
			lt := e.p.sign(t, "logout+jwt", jwt.MapClaims{
				"iss": e.p.issuer, "aud": e.p.clientID, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
				"jti": randomID(), "sid": sid, "events": map[string]any{bclEvent: map[string]any{}},
			})
			r := Do(t, "POST", e.cs[0].URL+"/oidc/backchannel-logout", "logout_token="+url.QueryEscape(lt),
				"Content-Type", "application/x-www-form-urlencoded")
			if r.Status != http.StatusOK {
				t.Fatalf("back-channel logout: %d %s", r.Status, r.Body)
			}
		}},
		// Last: it revokes every token issued before it, of every case.
		{"global cutoff", "recent", func(t *testing.T, _, _, _, _, _ string) {
			adminRevoke(t, e.cs[0], fmt.Sprintf(`{"all":true,"before":%d}`, time.Now().Add(-30*time.Second).Unix()))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Subjects of their own, so that no case reaches another's
			// streams (but the global cutoff, which comes last).
			sub, bystander := "alice-"+randomID(), "bob-"+randomID()
			sid := "s1-" + randomID()
			old := time.Now().Add(-time.Minute)
			victim, jti := e.access(t, sub, sid, old)
			otherAt := old
			var kept string
			switch c.kept {
			case "s2":
				kept, _ = e.access(t, sub, "s2-"+randomID(), old)
			case "recent":
				kept, _ = e.access(t, sub, sid, time.Now())
				otherAt = time.Now()
			}
			other, _ := e.access(t, bystander, "s9-"+randomID(), otherAt)

			victims := e.openAll(t, victim, "victim")
			poll := openStream(t, e.app, e.cs[1], "poll", victim, "victim long poll at replica 1")
			spared := e.openAll(t, other, "other user")
			if kept != "" {
				spared = append(spared, e.openAll(t, kept, "kept "+c.kept)...)
			}
			if st, body := e.cs[1].AdminDo("GET", "/revocation/status", ""); st != 200 || !strings.Contains(body, `"streams_open":`) || strings.Contains(body, `"streams_open":0`) {
				t.Fatalf("status at replica 1 while streams are open: %d %s", st, body)
			}

			c.revoke(t, sub, sid, victim, jti, kept)
			for _, s := range append(victims, poll) {
				expectEnded(t, e.app, s)
			}
			if poll.status != http.StatusUnauthorized {
				t.Fatalf("long poll: status %d, want 401", poll.status)
			}
			for _, s := range spared {
				expectFlowing(t, e.app, s)
			}
			for _, s := range append(append(victims, poll), spared...) {
				s.close()
			}
		})
	}
	for i, c := range e.cs {
		if n := logCount(c, "stream ended: credential revoked"); n == 0 {
			t.Fatalf("replica %d wrote no audit line for an ended stream", i)
		}
		// Each stream above was open for a few seconds at most.
		for _, line := range strings.Split(c.Logs(), "\n") {
			if !strings.Contains(line, "stream ended: credential revoked") {
				continue
			}
			var audit struct {
				Reason      string  `json:"reason"`
				TokenHash   string  `json:"token_hash"`
				OpenSeconds float64 `json:"open_seconds"`
			}
			if err := json.Unmarshal([]byte(line[strings.Index(line, "{"):]), &audit); err != nil {
				t.Fatalf("replica %d: audit line %q: %v", i, line, err)
			}
			if audit.Reason == "" || audit.TokenHash == "" || audit.OpenSeconds <= 0 || audit.OpenSeconds > 60 {
				t.Fatalf("replica %d: audit line %q: want a reason, a token hash and how long the stream was open", i, line)
			}
		}
	}
	st, metricsText := e.cs[1].AdminDo("GET", "/metrics", "")
	if st != 200 || !strings.Contains(metricsText, `caddy_revocation_streams_closed_total{reason="global"}`) ||
		!strings.Contains(metricsText, "caddy_revocation_streams_open ") {
		t.Fatalf("metrics at replica 1: %d, no streams metrics:\n%.2000s", st, metricsText)
	}
}

// streamsOpen reads the count of open streams at a replica's
// /revocation/status.
func streamsOpen(t *testing.T, c *Caddy) int {
	t.Helper()
	st, body := c.AdminDo("GET", "/revocation/status", "")
	var s struct {
		StreamsOpen *int `json:"streams_open"`
	}
	if st != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil || s.StreamsOpen == nil {
		t.Fatalf("status: %d %s", st, body)
	}
	return *s.StreamsOpen
}

// A reload that keeps the store keeps the streams tracked, and closes
// none of them itself (reverse_proxy's stream_close_delay, a minute
// here, governs the upgraded ones).
func TestStreamsTrackedAcrossReload(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := startStreamApp(t)
	p := startProvider(t, "https://idp.example.com", "web-app")
	c := StartCaddy(t, streamsConfig(srv.URL(), p, app, ""), "SSL_CERT_FILE="+p.certFile)
	c.WaitReady()
	e := &streamsEnv{app: app, p: p, cs: []*Caddy{c}}
	old := time.Now().Add(-time.Minute)
	victim, _ := e.access(t, "alice-"+randomID(), "s1-"+randomID(), old)
	other, _ := e.access(t, "bob-"+randomID(), "s9-"+randomID(), old)
	victims, spared := e.openAll(t, victim, "victim"), e.openAll(t, other, "other user")
	// The long responses count once they outlive the registration
	// threshold (half a second).
	Eventually(t, "streams_open 6 before the reload", func() bool { return streamsOpen(t, c) == 6 })

	c.Reload(streamsConfig(srv.URL(), p, app, "log_blocked warn"))
	for _, s := range append(victims, spared...) {
		expectFlowing(t, app, s)
	}
	if n := streamsOpen(t, c); n != 6 {
		t.Fatalf("streams_open %d after the reload, want 6", n)
	}
	revokeTokenAt(t, c, victim)
	for _, s := range victims {
		expectEnded(t, app, s)
	}
	for _, s := range spared {
		expectFlowing(t, app, s)
	}
	Eventually(t, "streams_open counting the spared streams only", func() bool { return streamsOpen(t, c) == 3 })
}

// close_streams_at_expiry ends a stream when its token expires; without
// it, the stream stays open (the guard checked the token when it came).
func TestStreamsCloseAtExpiry(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := startStreamApp(t)
	p := startProvider(t, "https://idp.example.com", "web-app")
	with := StartCaddy(t, streamsConfig(srv.URL(), p, app, "close_streams_at_expiry"), "SSL_CERT_FILE="+p.certFile)
	without := StartCaddy(t, streamsConfig(srv.URL(), p, app, ""), "SSL_CERT_FILE="+p.certFile)
	with.WaitReady()
	without.WaitReady()
	e := &streamsEnv{app: app, p: p}
	now := time.Now()
	short := p.sign(t, "JWT", jwt.MapClaims{
		"iss": p.issuer, "sub": "carol", "sid": "s1", "jti": randomID(), "iat": now.Unix() - 60, "exp": now.Unix() + 3,
	})
	long, _ := e.access(t, "dave", "s2", now.Add(-time.Minute))

	var ending, staying []*clientStream
	for _, kind := range []string{"ws", "sse", "long"} {
		ending = append(ending, openStream(t, app, with, kind, short, "short-lived token "+kind+" with the option"))
		staying = append(staying, openStream(t, app, with, kind, long, "long-lived token "+kind+" with the option"))
		staying = append(staying, openStream(t, app, without, kind, short, "short-lived token "+kind+" without the option"))
	}
	for _, s := range ending {
		if s.ws != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var err error
			for err == nil {
				_, _, err = s.ws.Read(ctx)
			}
			cancel()
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "expired" {
				t.Fatalf("%s: ended with %v, want close 1008 expired", s.name, err)
			}
			if time.Now().Before(time.Unix(now.Unix()+3, 0)) {
				t.Fatalf("%s: ended before its token expired", s.name)
			}
			continue
		}
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still open well after its token expired", s.name)
		}
	}
	for _, s := range staying {
		expectFlowing(t, app, s)
	}
	if n := logCount(with, "stream ended: token expired"); n != 3 {
		t.Fatalf("%d audit lines for the expired streams, want 3", n)
	}
}

// An event stream and a long response over HTTP/2 (h2c here) end as the
// others do: the stream is reset, the connection and its other streams
// stay.
func TestStreamsHTTP2StreamEnds(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := startStreamApp(t)
	p := startProvider(t, "https://idp.example.com", "web-app")
	config := strings.Replace(streamsConfig(srv.URL(), p, app, ""), "admin {{ADMIN}}", "admin {{ADMIN}}\n\tservers {\n\t\tprotocols h1 h2c\n\t}", 1)
	c := StartCaddy(t, config, "SSL_CERT_FILE="+p.certFile)
	c.WaitReady()
	e := &streamsEnv{app: app, p: p}
	old := time.Now().Add(-time.Minute)
	victim, _ := e.access(t, "erin-"+randomID(), "s1", old)
	other, _ := e.access(t, "frank-"+randomID(), "s2", old)

	// One HTTP/2 connection carries both streams.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	open := func(path, token, name string) *clientStream {
		s := &clientStream{name: name, id: randomID(), done: make(chan struct{})}
		req, _ := http.NewRequest("GET", c.URL+path+"?id="+s.id, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if path == "/sse" {
			req.Header.Set("Accept", "text/event-stream")
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s: %s, want HTTP/2", name, resp.Proto)
		}
		go func() {
			defer close(s.done)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				s.ticks.Add(1)
			}
			s.err = sc.Err()
		}()
		Eventually(t, name+" flowing", func() bool { return s.ticks.Load() >= 2 })
		return s
	}
	// An event stream is tracked at once; a long response once it is
	// half a second old, and ended through the HTTP/2 server.
	victims := []*clientStream{
		open("/sse", victim, "victim HTTP/2 event stream"),
		open("/long", victim, "victim HTTP/2 long response"),
	}
	others := []*clientStream{
		open("/sse", other, "other user's HTTP/2 event stream"),
		open("/long", other, "other user's HTTP/2 long response"),
	}
	Eventually(t, "every stream tracked", func() bool { return streamsOpen(t, c) == 4 })
	revokeTokenAt(t, c, victim)
	for _, vs := range victims {
		select {
		case <-vs.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: still open 5s after the revocation", vs.name)
		}
		if vs.err == nil {
			t.Fatalf("%s: ended as if complete", vs.name)
		}
		Eventually(t, vs.name+": the app's side closed", func() bool { return app.upstreamClosed(vs.id) })
	}
	for _, os := range others {
		expectFlowing(t, app, os)
	}
}
