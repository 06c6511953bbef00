package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/quic-go/quic-go/http3"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// Issue 17, item 5: over HTTP/2 and HTTP/3 (TLS, Caddy's internal
// issuer) and h2c, the guard sees what the app sees: cookie crumbs sent
// as several cookie fields, a credential in :path, header names in lower
// case (as HTTP/2 and HTTP/3 require).

// protocolsConfig serves one guarded site over TLS on {{PORT}} (h1, h2,
// h3 on the same port, UDP for h3) and one over plain HTTP with h2c on
// h2cPort, both with the same Redis store.
func protocolsConfig(redisURL string, app *Upstream, h2cPort int) string {
	guard := fmt.Sprintf(`revocation {
		redis %s
		jwt {
			hmac_secret %s
		}
		endpoints none
		credential cookie JSESSIONID
		credential header X-Auth-Token
	}
	reverse_proxy %s`, redisURL, testtoken.Secret, app.Addr())
	return fmt.Sprintf(`{
	admin {{ADMIN}}
	local_certs
	skip_install_trust
	auto_https disable_redirects
	servers {
		protocols h1 h2 h2c h3
	}
}
https://127.0.0.1:{{PORT}} {
	bind 127.0.0.1
	tls internal
	%s
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	%s
}
`, guard, h2cPort, guard)
}

// protoClient is one way of reaching the guarded site.
type protoClient struct {
	name  string
	base  string
	major int // the HTTP version the answer must come in
	rt    http.RoundTripper
}

func protocolClients(t *testing.T, c *Caddy, h2cPort int) []protoClient {
	t.Helper()
	// The test trusts the internal issuer's certificate by skipping
	// verification: what is under test is the guard, not the PKI.
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test client against Caddy's internal issuer
	h2 := &http.Transport{TLSClientConfig: insecure, ForceAttemptHTTP2: true}
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http3.NextProtoH3}}} //nolint:gosec // as above
	t.Cleanup(func() {
		h2.CloseIdleConnections()
		h2c.CloseIdleConnections()
		_ = h3.Close()
	})
	tlsBase := "https://127.0.0.1:" + strconv.Itoa(c.Port())
	return []protoClient{
		{"h2", tlsBase, 2, h2},
		{"h3", tlsBase, 3, h3},
		{"h2c", "http://127.0.0.1:" + strconv.Itoa(h2cPort), 2, h2c},
	}
}

// do sends a request through one client, tagged with a probe id; headers
// alternate name, value, each added as its own field.
func (pc protoClient) do(t *testing.T, target string, headers ...string) Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pc.base+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header[headers[i]] = append(req.Header[headers[i]], headers[i+1])
	}
	probe := randomID()
	req.Header.Set(probeHeader, probe)
	resp, err := pc.rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", pc.name, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != pc.major {
		t.Fatalf("%s: answered over %s", pc.name, resp.Proto)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Probe: probe}
}

func TestProtocolsGuardSeesWhatTheAppSees(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := StartUpstream(t)
	h2cPort := testredis.FreePort(t)
	c := StartCaddy(t, protocolsConfig(srv.URL(), app, h2cPort))
	c.WaitReady()
	// The h3 listener (UDP) comes up with the TLS one, but give a slow
	// machine a moment before the first QUIC handshake.
	waitUDP(t, c.Port())

	sid := fmt.Sprintf("%032X", time.Now().UnixNano())
	adminRevoke(t, c, fmt.Sprintf(`{"token":%q}`, sid))
	jti := "proto-" + randomID()
	revoked := testtoken.HS256(t, jwt.MapClaims{"sub": "pat", "sid": "p1", "jti": jti})
	adminRevoke(t, c, fmt.Sprintf(`{"jti":%q}`, jti))
	valid := testtoken.HS256(t, jwt.MapClaims{"sub": "pat", "sid": "p2"})

	for _, pc := range protocolClients(t, c, h2cPort) {
		t.Run(pc.name, func(t *testing.T) {
			ExpectStatus(t, "a valid token, cookies in crumbs", pc.do(t, "/orders",
				"Authorization", "Bearer "+valid, "Cookie", "lang=en", "Cookie", "JSESSIONID="+strings.Repeat("B", 32)), http.StatusOK)
			blocked := map[string]Response{
				"a revoked session id in the second cookie crumb": pc.do(t, "/orders", "Cookie", "lang=en", "Cookie", "JSESSIONID="+sid),
				"a revoked session id in a crumb of another name": pc.do(t, "/orders", "Cookie", "a=1", "Cookie", "theme=x", "Cookie", "sess="+sid),
				"a revoked token in :path":                        pc.do(t, "/orders?access_token="+revoked),
				"a revoked token in :path, an encoded name":       pc.do(t, "/orders?access_%74oken="+revoked),
				"a revoked session id as a path parameter":        pc.do(t, "/orders;jsessionid="+sid),
				"authorization in lower case":                     pc.do(t, "/orders", "authorization", "bearer "+revoked),
				"a configured header in lower case":               pc.do(t, "/orders", "x-auth-token", sid),
				"any header in lower case":                        pc.do(t, "/orders", "x-something", revoked),
			}
			for what, r := range blocked {
				ExpectBlocked(t, pc.name+": "+what, r)
			}
		})
	}
	if app.Saw(sid) || app.Saw(revoked) {
		t.Fatal("a revoked credential reached the app")
	}
}

// waitUDP waits until something answers QUIC on the port: an HTTP/3
// request that gets any answer.
func waitUDP(t *testing.T, port int) {
	t.Helper()
	rt := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http3.NextProtoH3}}} //nolint:gosec // test client
	defer rt.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port))+"/", nil)
		resp, err := rt.RoundTrip(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTP/3 on port %d: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
