package caddymodule

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkGuard is the handler's own cost on a proxied request carrying
// a credential it has seen before, one sub-benchmark per place a
// credential comes from, and one request with none: everything
// ServeHTTP does before calling the next handler (here one that does
// nothing). docs/performance.md quotes each beside baseline-sha256, the SHA-256
// of the token alone, measured in the same run; compare both with the
// ~100 µs of server CPU a whole proxied request costs on this machine.
//
//	go test -run '^$' -bench Guard -benchmem ./caddymodule/
func BenchmarkGuard(b *testing.B) {
	h, cases := guardFixture(b)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	// The floor, measured in the same run: hashing the token, as the
	// cache keyed by it must (copied to the stack first, as sumString in
	// revocation does).
	b.Run("baseline-sha256", func(b *testing.B) {
		tok := strings.TrimPrefix(cases[0].reqs[0].Header.Get("Authorization"), "Bearer ")
		var buf [2048]byte
		b.ReportAllocs()
		for b.Loop() {
			_ = sha256.Sum256(append(buf[:0], tok...))
		}
	})
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			// Learn every credential again, as the first request of each
			// client: an unverified one is remembered for 30 s only.
			for i := range c.reqs {
				c.reqs[i].serve(b, h, next)
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r := &c.reqs[i&(guardClients-1)]
				if r.body != nil {
					r.body.Reset(r.body.data)
					r.Body = r.body
				}
				if err := h.ServeHTTP(w, r.Request, next); err != nil {
					b.Fatal(err)
				}
			}
			if w.Code != http.StatusOK {
				b.Fatalf("a request was refused: %d", w.Code)
			}
		})
	}
}

// guardClients is how many clients, each with its own credential, a
// sub-benchmark cycles through (a power of two).
const guardClients = 256

// benchRequest is a request the benchmark sends again and again; its
// body, if any, is rewound in place rather than allocated anew, so that
// every allocation counted is the guard's.
type benchRequest struct {
	*http.Request
	body *replayBody
}

func (r *benchRequest) serve(b *testing.B, h *Handler, next caddyhttp.Handler) {
	if r.body != nil {
		r.body.Reset(r.body.data)
		r.Body = r.body
	}
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r.Request, next); err != nil {
		b.Fatal(err)
	}
	if w.Code != http.StatusOK {
		b.Fatalf("%s %s: status %d", r.Method, r.URL, w.Code)
	}
}

type replayBody struct {
	bytes.Reader
	data []byte
}

func (*replayBody) Close() error { return nil }

// guardCase is one source of credentials: how a client sends its token.
type guardCase struct {
	name string
	reqs []benchRequest
}

// guardSources builds, for each source, the request a client sends with
// its token tok.
var guardSources = []struct {
	name  string
	build func(tok string) benchRequest
}{
	{"bearer", func(tok string) benchRequest {
		r := httptest.NewRequest(http.MethodGet, "/api/item", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return benchRequest{Request: r}
	}},
	{"query", func(tok string) benchRequest {
		return benchRequest{Request: httptest.NewRequest(http.MethodGet, "/api/item?page=2&access_token="+url.QueryEscape(tok), nil)}
	}},
	{"cookie", func(tok string) benchRequest {
		r := httptest.NewRequest(http.MethodGet, "/api/item", nil)
		r.Header.Set("Cookie", "theme=dark; __Host-refresh_bench="+tok+"; lang=en")
		return benchRequest{Request: r}
	}},
	{"json", func(tok string) benchRequest {
		return bodyRequest("application/json", "", []byte(`{"grant_type":"refresh_token","refresh_token":"`+tok+`"}`))
	}},
	{"form", func(tok string) benchRequest {
		return bodyRequest("application/x-www-form-urlencoded", "", []byte("grant_type=refresh_token&refresh_token="+url.QueryEscape(tok)))
	}},
	{"multipart", func(tok string) benchRequest {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("grant_type", "refresh_token")
		_ = mw.WriteField("refresh_token", tok)
		_ = mw.Close()
		return bodyRequest(mw.FormDataContentType(), "", buf.Bytes())
	}},
	{"gzip_json", func(tok string) benchRequest {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write([]byte(`{"grant_type":"refresh_token","refresh_token":"` + tok + `"}`))
		_ = zw.Close()
		return bodyRequest("application/json", "gzip", buf.Bytes())
	}},
	// The common request of a browser app: a bearer token, a few
	// cookies, and the headers every browser sends, each read by value.
	{"browser", func(tok string) benchRequest {
		r := httptest.NewRequest(http.MethodGet, "/api/item", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Cookie", "theme=dark; lang=en; _ga=GA1.1.1234567890.1700000000; csrftoken=Yq2Vd8kRj3nW0pXcL5tHs9Fb")
		r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
		r.Header.Set("Accept", "application/json, text/plain, */*")
		r.Header.Set("Accept-Language", "en-GB,en;q=0.9")
		r.Header.Set("Accept-Encoding", "gzip, deflate, br")
		r.Header.Set("Referer", "https://app.example.com/orders/42")
		return benchRequest{Request: r}
	}},
	{"none", func(string) benchRequest {
		return benchRequest{Request: httptest.NewRequest(http.MethodGet, "/api/item", nil)}
	}},
}

func bodyRequest(contentType, encoding string, body []byte) benchRequest {
	r := httptest.NewRequest(http.MethodPost, "/oauth/token", nil)
	r.Header.Set("Content-Type", contentType)
	if encoding != "" {
		r.Header.Set("Content-Encoding", encoding)
	}
	r.ContentLength = int64(len(body))
	return benchRequest{Request: r, body: &replayBody{data: body}}
}

// guardOnce provisions the benchmark's handler once per process, so that
// -count runs share it and Caddy's development logger speaks once, before
// the results rather than in the middle of them.
var guardOnce struct {
	sync.Once
	h     *Handler
	cases []guardCase
	err   error
}

func guardFixture(b *testing.B) (*Handler, []guardCase) {
	guardOnce.Do(func() {
		secret := "0123456789abcdef0123456789abcdef"
		ctx, _ := caddy.NewContext(caddy.Context{Context: context.Background()})
		h := &Handler{JWT: &JWTConfig{HMACSecret: secret}, LegacyEndpoints: LegacyEndpoints{Endpoints: []string{"none"}}, LogBlocked: "off", AppID: "bench"}
		if guardOnce.err = h.Provision(ctx); guardOnce.err != nil {
			return
		}
		for _, src := range guardSources {
			c := guardCase{name: src.name, reqs: make([]benchRequest, guardClients)}
			for i := range c.reqs {
				tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
					"sub": fmt.Sprintf("user-%d", i), "sid": fmt.Sprintf("s-%d", i), "jti": fmt.Sprintf("%s-%d", src.name, i),
					"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
				}).SignedString([]byte(secret))
				if err != nil {
					guardOnce.err = err
					return
				}
				c.reqs[i] = src.build(tok)
			}
			guardOnce.cases = append(guardOnce.cases, c)
		}
		guardOnce.h = h
	})
	if guardOnce.err != nil {
		b.Fatal(guardOnce.err)
	}
	return guardOnce.h, guardOnce.cases
}

// BenchmarkRoutes is the cost of the endpoints' routes to a proxied
// request, for a bearer token seen before: a site's routes as Caddy runs
// them (compiled for each request, as a site block's subroute is) with
// the guard alone, and as a site-level block with the four seed
// endpoints expands (the endpoints' route, then the guard). Compare the
// two, measured in the same run.
//
//	go test -run '^$' -bench Routes -benchmem ./caddymodule/
func BenchmarkRoutes(b *testing.B) {
	_, cases := guardFixture(b)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	site := func(endpoints []string) caddyhttp.RouteList {
		h := &Handler{JWT: &JWTConfig{HMACSecret: "0123456789abcdef0123456789abcdef"}, LogBlocked: "off", AppID: "bench",
			LegacyEndpoints: LegacyEndpoints{Endpoints: endpoints}}
		routes, err := h.expandedRoutes()
		if err != nil {
			b.Fatal(err)
		}
		if err := routes.Provision(ctx); err != nil {
			b.Fatal(err)
		}
		return routes
	}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	reqs := cases[0].reqs // bearer
	for i := range reqs {
		reqs[i].Request = asServed(reqs[i].Request)
	}
	for _, c := range []struct {
		name   string
		routes caddyhttp.RouteList
	}{
		{"guard-alone", site([]string{"none"})},
		{"guard-and-endpoints", site([]string{"revoke_refresh", "revoke_sessions", "invalidate_session", "logout"})},
	} {
		b.Run(c.name, func(b *testing.B) {
			w := httptest.NewRecorder()
			for i := range reqs {
				if err := c.routes.Compile(next).ServeHTTP(w, reqs[i].Request); err != nil {
					b.Fatal(err)
				}
			}
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := c.routes.Compile(next).ServeHTTP(w, reqs[i&(guardClients-1)].Request); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamTracking is what following open streams costs an
// ordinary proxied request that returns at once (nearly all of them):
// the guard's proxy step (an openStream taken and put back, the young
// set joined and left, the writer wrapped, one write through it) against
// calling the next handler directly, serially and from every core at
// once. Compare the two, measured in the same run.
//
//	go test -run '^$' -bench StreamTracking -benchmem ./caddymodule/
func BenchmarkStreamTracking(b *testing.B) {
	h, cases := guardFixture(b)
	r := asServed(cases[0].reqs[0].Request) // bearer
	x := h.extractor.Extract(r, nil, h.store.Denylist())
	if len(x.Creds) == 0 {
		b.Fatal("no credential read")
	}
	now := time.Now() // the guard's reading of the clock, passed on
	body := []byte("ok")
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		_, err := w.Write(body)
		return err
	})
	for _, c := range []struct {
		name  string
		serve func(w http.ResponseWriter) error
	}{
		{"next-alone", func(w http.ResponseWriter) error { return next.ServeHTTP(w, r) }},
		{"proxy", func(w http.ResponseWriter) error { return h.proxy(w, r, next, &x, now) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			w := discardWriter{}
			b.ReportAllocs()
			for b.Loop() {
				if err := c.serve(w); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := discardWriter{}
				for pb.Next() {
					if err := c.serve(w); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark counts only the tracking's own work.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return nil }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}
