package extract

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-revocation/caddy-revocation/internal/testbody"
)

// defaultInspectBody is the limit these tests read bodies up to: the
// guard's default.
const defaultInspectBody = DefaultLimit

// testExtractor reads the refresh cookie of app_id "app".
func testExtractor() *Extractor {
	return &Extractor{
		Cookies:     []string{CookieNameKey("__Host-refresh_app")},
		InspectBody: true, Limit: defaultInspectBody, MaxInflation: 4 * defaultInspectBody,
	}
}

// Each way a credential may travel is read, whatever its encoding. The
// differential corpus (differential_test.go) checks the same against the

func TestExtractFindsEveryCredential(t *testing.T) {
	const tok = "tok-123"
	cases := []struct {
		name    string
		target  string
		headers map[string][]string
		body    string
		want    Kind
	}{
		{"bearer", "/", map[string][]string{"Authorization": {"Bearer " + tok}}, "", Access},
		{"bearer, lower case, tab", "/", map[string][]string{"Authorization": {"bearer\t" + tok}}, "", Access},
		{"bearer, NO-BREAK SPACE", "/", map[string][]string{"Authorization": {"Bearer\u00a0" + tok}}, "", Access},
		{"bearer, IDEOGRAPHIC SPACE", "/", map[string][]string{"Authorization": {"Bearer\u3000" + tok}}, "", Access},
		{"bearer, two fields", "/", map[string][]string{"Authorization": {"Bearer other " + tok}}, "", Access},
		{"bearer, colon", "/", map[string][]string{"Authorization": {"Bearer:" + tok}}, "", Access},
		{"no scheme", "/", map[string][]string{"Authorization": {tok}}, "", Access},
		{"second header", "/", map[string][]string{"Authorization": {"Bearer a", "Bearer " + tok}}, "", Access},
		{"dpop", "/", map[string][]string{"Authorization": {"DPoP " + tok}}, "", Access},
		{"basic user", "/", map[string][]string{"Authorization": {"Basic dG9rLTEyMzo="}}, "", Refresh},
		{"query access_token", "/?access_token=" + tok, nil, "", Access},
		{"query, encoded", "/?access%5Ftoken=tok%2D123", nil, "", Access},
		{"query, semicolon", "/?a=1;refresh_token=" + tok, nil, "", Refresh},
		{"query, bad escape elsewhere", "/?x=%zz&refresh_token=" + tok, nil, "", Refresh},
		{"cookie", "/", map[string][]string{"Cookie": {"a=1; __Host-refresh_app=" + tok}}, "", Refresh},
		{"cookie, quoted", "/", map[string][]string{"Cookie": {`__Host-refresh_app="` + tok + `"`}}, "", Refresh},
		{"cookie, backslash escape", "/", map[string][]string{"Cookie": {`__Host-refresh_app="tok\-123"`}}, "", Refresh},
		{"cookie, octal escape", "/", map[string][]string{"Cookie": {`__Host-refresh_app="tok\055123"`}}, "", Refresh},
		{"cookie, comma separated", "/", map[string][]string{"Cookie": {"a=1, __Host-refresh_app=" + tok}}, "", Refresh},
		{"cookie, space separated", "/", map[string][]string{"Cookie": {"a=1 __Host-refresh_app=" + tok}}, "", Refresh},
		{"cookie, space before =", "/", map[string][]string{"Cookie": {"__Host-refresh_app =" + tok}}, "", Refresh},
		{"cookie, percent-encoded", "/", map[string][]string{"Cookie": {"__Host-refresh_app=tok%2D123"}}, "", Refresh},
		{"cookie, encoded name", "/", map[string][]string{"Cookie": {"%5F_Host-refresh_app=" + tok}}, "", Refresh},
		{"cookie, PHP's dot", "/", map[string][]string{"Cookie": {"__Host-refresh.app=" + tok}}, "", Refresh},
		{"cookie, Express JSON", "/", map[string][]string{"Cookie": {`__Host-refresh_app=j:{"refreshToken":"` + tok + `"}`}}, "", Refresh},
		{"cookie, Express JSON encoded", "/", map[string][]string{"Cookie": {"__Host-refresh_app=" + url.QueryEscape(`j:{"t":"`+tok+`"}`)}}, "", Refresh},
		{"cookie, Express signed", "/", map[string][]string{"Cookie": {"__Host-refresh_app=s:" + tok + ".c2ln"}}, "", Refresh},
		{"cookie, second header", "/", map[string][]string{"Cookie": {"a=1", "__Host-refresh_app=" + tok}}, "", Refresh},
		{"json", "/", map[string][]string{"Content-Type": {"application/json"}}, `{"refreshToken":"` + tok + `"}`, Refresh},
		{"json, long s", "/", nil, `{"refreſh_token":"` + tok + `"}`, Refresh},
		{"json, KELVIN SIGN", "/", nil, `{"refresh_to` + "\u212a" + `en":"` + tok + `"}`, Refresh},
		{"json, escaped key", "/", nil, `{"refresh\u0054oken":"` + tok + `"}`, Refresh},
		{"json, nested, duplicated", "/", nil, `{"a":{"refresh_token":"x"},"b":[{"refreshToken":"` + tok + `"}]}`, Refresh},
		{"json, NaN and comments", "/", nil, `{"a":NaN, /* c */ "refreshToken":"` + tok + `"}`, Refresh},
		{"json, single quotes", "/", nil, `{'refreshToken':'` + tok + `'}`, Refresh},
		{"json, number", "/", nil, `{"refreshToken":12345}`, Refresh},
		{"json access_token", "/", nil, `{"access_token":"` + tok + `"}`, Access},
		{"json, UTF-8 BOM", "/", nil, "\xEF\xBB\xBF" + `{"refreshToken":"` + tok + `"}`, Refresh},
		{"json, UTF-16LE BOM", "/", nil, testbody.UTF16(`{"refreshToken":"`+tok+`"}`, false, true), Refresh},
		{"json, UTF-16BE BOM", "/", nil, testbody.UTF16(`{"refreshToken":"`+tok+`"}`, true, true), Refresh},
		{"json, UTF-16LE", "/", nil, testbody.UTF16(`{"refreshToken":"`+tok+`"}`, false, false), Refresh},
		{"json, UTF-16BE", "/", nil, testbody.UTF16(`{"refreshToken":"`+tok+`"}`, true, false), Refresh},
		{"json, UTF-32LE", "/", nil, testbody.UTF32(`{"refreshToken":"`+tok+`"}`, false, false), Refresh},
		{"json, UTF-32BE BOM", "/", nil, testbody.UTF32(`{"refreshToken":"`+tok+`"}`, true, true), Refresh},
		{"json, UTF-16 by charset", "/", map[string][]string{"Content-Type": {"application/json; charset=utf-16le"}}, testbody.UTF16(`x{"refreshToken":"`+tok+`"}`, false, false)[2:], Refresh},
		{"json as multipart", "/", map[string][]string{"Content-Type": {"multipart/form-data"}}, `{"refreshToken":"` + tok + `"}`, Refresh},
		{"json as multipart with boundary", "/", map[string][]string{"Content-Type": {"multipart/form-data; boundary=XX"}}, `{"refreshToken":"` + tok + `"}`, Refresh},
		{"json as text", "/", map[string][]string{"Content-Type": {"text/plain"}}, `{"refreshToken":"` + tok + `"}`, Refresh},
		{"form", "/", map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}}, "grant_type=refresh_token&refresh_token=" + tok, Refresh},
		{"form access_token", "/", nil, "access_token=" + tok, Access},
		{"form, PHP array", "/", nil, "refresh_token[]=" + tok, Refresh},
		{"form, malformed pair", "/", nil, "a=%zz&refresh_token=" + tok, Refresh},
		{"multipart field", "/", map[string][]string{"Content-Type": {"multipart/form-data; boundary=XX"}}, "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\n\r\n" + tok + "\r\n--XX--\r\n", Refresh},
		{"multipart file", "/", map[string][]string{"Content-Type": {"multipart/form-data; boundary=XX"}}, "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"; filename=\"a\"\r\n\r\n" + tok + "\r\n--XX--\r\n", Refresh},
		{"multipart, base64 part", "/", map[string][]string{"Content-Type": {"multipart/form-data; boundary=XX"}}, "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\nContent-Transfer-Encoding: base64\r\n\r\ndG9rLTEyMw==\r\n--XX--\r\n", Refresh},
		{"multipart, wrong boundary", "/", map[string][]string{"Content-Type": {"multipart/form-data; boundary=YY"}}, "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\n\r\n" + tok + "\r\n--XX--\r\n", Refresh},
		{"gzip", "/", map[string][]string{"Content-Encoding": {"gzip"}}, testbody.Compressed("gzip", `{"refreshToken":"`+tok+`"}`), Refresh},
		{"deflate (zlib)", "/", map[string][]string{"Content-Encoding": {"deflate"}}, testbody.Compressed("zlib", `{"refreshToken":"`+tok+`"}`), Refresh},
		{"deflate (raw)", "/", map[string][]string{"Content-Encoding": {"deflate"}}, testbody.Compressed("flate", `{"refreshToken":"`+tok+`"}`), Refresh},
		{"gzip twice", "/", map[string][]string{"Content-Encoding": {"gzip, gzip"}}, testbody.Compressed("gzip", testbody.Compressed("gzip", `{"refreshToken":"`+tok+`"}`)), Refresh},
		{"gzip UTF-16", "/", map[string][]string{"Content-Encoding": {"gzip"}}, testbody.Compressed("gzip", testbody.UTF16(`{"refreshToken":"`+tok+`"}`, true, false)), Refresh},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			r := httptest.NewRequest(http.MethodPost, c.target, body)
			for k, vs := range c.headers {
				r.Header[k] = vs
			}
			x := testExtractor().Extract(r, nil, nil)
			if x.Uninspected {
				t.Fatal("uninspected")
			}
			i := slices.IndexFunc(x.Creds, func(c Credential) bool { return c.Raw == tok || c.Raw == "12345" })
			if i < 0 {
				t.Fatalf("not found among %q", x.Creds)
			}
			if x.Creds[i].Kind != c.want {
				t.Errorf("kind %v, want %v", x.Creds[i].Kind, c.want)
			}
			if c.body != "" {
				rest, _ := io.ReadAll(r.Body)
				if string(rest) != c.body {
					t.Fatal("the body was not passed on as it came")
				}
			}
		})
	}
}

func TestExtractLimits(t *testing.T) {
	t.Run("a body over the limit passes on whole, uninspected", func(t *testing.T) {
		body := `{"refreshToken":"rt","pad":"` + strings.Repeat("x", defaultInspectBody) + `"}`
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.ContentLength = -1 // chunked: the size is learned by reading
		x := testExtractor().Extract(r, nil, nil)
		if !x.Uninspected {
			t.Fatal("counted as inspected")
		}
		if rest, _ := io.ReadAll(r.Body); string(rest) != body {
			t.Fatal("not passed on whole")
		}
	})
	t.Run("a gzip body inflating past 4x the limit is uninspected", func(t *testing.T) {
		body := testbody.Compressed("gzip", `{"refreshToken":"rt","pad":"`+strings.Repeat("x", 4*defaultInspectBody)+`"}`)
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Encoding", "gzip")
		if x := testExtractor().Extract(r, nil, nil); !x.Uninspected {
			t.Fatal("counted as inspected")
		}
	})
	t.Run("an encoding it cannot undo is uninspected", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("whatever"))
		r.Header.Set("Content-Encoding", "br")
		if x := testExtractor().Extract(r, nil, nil); !x.Uninspected {
			t.Fatal("counted as inspected")
		}
	})
	t.Run("every candidate is kept, however many", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("[")
		for i := range 100 {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"refreshToken":"t` + strings.Repeat("x", i) + `"}`)
		}
		b.WriteString("]")
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(b.String()))
		x := testExtractor().Extract(r, nil, nil)
		for i := range 100 {
			if !slices.ContainsFunc(x.Creds, func(c Credential) bool { return c.Raw == "t"+strings.Repeat("x", i) && c.Kind == Refresh }) {
				t.Fatalf("refresh token %d missing among %d candidates", i, len(x.Creds))
			}
		}
	})
	t.Run("no credentials, no candidates by name, short values none", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/?page=2", strings.NewReader(`{"note":"refreshToken","x":"y"}`))
		r.Header.Set("Cookie", "theme=dark; __Host-refresh_app_other=x")
		r.Header.Set("Authorization", "Bearer")
		r.Header.Set("Accept-Language", "en-GB,en;q=0.8")
		x := testExtractor().Extract(r, nil, nil)
		if len(x.Named()) != 0 {
			t.Fatalf("found by name %q", x.Named())
		}
		// The body whole is the one value as long as a credential.
		if len(x.Creds) != 1 || x.Creds[0].Raw != `{"note":"refreshToken","x":"y"}` {
			t.Fatalf("found by value %q", x.Creds)
		}
	})
}

// countingBody records whether it was read.
type countingBody struct {
	io.Reader
	reads int
}

func (b *countingBody) Read(p []byte) (int, error) { b.reads++; return b.Reader.Read(p) }
func (b *countingBody) Close() error               { return nil }

// A request that declares an empty body is not read; one whose length is
// unknown (chunked) is.
func TestExtractSkipsDeclaredEmptyBodies(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	body := &countingBody{Reader: strings.NewReader("")}
	r.Body, r.ContentLength = body, 0
	testExtractor().Extract(r, nil, nil)
	if body.reads != 0 {
		t.Fatalf("an empty body was read %d times", body.reads)
	}
	r = httptest.NewRequest(http.MethodPost, "/", nil)
	body = &countingBody{Reader: strings.NewReader(`{"refreshToken":"chunked"}`)}
	r.Body, r.ContentLength, r.TransferEncoding = body, -1, []string{"chunked"}
	x := testExtractor().Extract(r, nil, nil)
	if body.reads == 0 || !slices.ContainsFunc(x.Creds, func(c Credential) bool { return c.Raw == "chunked" }) {
		t.Fatalf("a chunked body was not examined: %d reads, %q", body.reads, x.Creds)
	}
}

// FuzzValuesByValue: for any header value, path and multipart text, the
// extraction never panics, and every whitespace-separated field of a
// header value that could be a credential is among the candidates.
func FuzzValuesByValue(f *testing.F) {
	f.Add(`v1; id="0123456789abcdef0123"`, "/a;jsessionid=0123456789abcdef/b", "--XX\r\nContent-Disposition: form-data; NAME=\"a\"\r\nno colon\r\n\r\n0123456789abcdef0123\r\n--XX--\r\n")
	f.Add("Basic dTowMTIzNDU2Nzg5YWJjZGVmMDEyMw==", "//./../%2e;x", "--\n\n--\n")
	f.Add("x", "/", "--XX\r\nC: \xff\xff\xff\xffname=\r\n\r\n0123456789abcdef0123\r\n--XX--\r\n")
	f.Fuzz(func(t *testing.T, hv, p, body string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.URL.Path, r.URL.RawPath = p, ""
		r.Header["X-Any"] = []string{hv}
		r.Header.Set("Content-Type", "multipart/form-data; boundary=XX")
		x := testExtractor().Extract(r, nil, nil)
		if len(hv) > maxCandidateLen {
			return
		}
		for fld := range SpaceLikeFields(hv) {
			if ValueShaped(fld) && !slices.ContainsFunc(x.Creds, func(c Credential) bool { return c.Raw == fld }) {
				t.Fatalf("%q: field %q not among %q", hv, fld, x.Creds)
			}
		}
	})
}

// A request with more values than are checked (MaxValues) has MaxValues
// of them read, and says so; the guard lets it through
// (TestGuardManyValuesAreBoundedNotRefused in caddymodule).
func TestExtractCapsValues(t *testing.T) {
	var b strings.Builder
	for i := range MaxValues + 100 {
		fmt.Fprintf(&b, "c%d=%020d; ", i, i)
	}
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Authorization", "Bearer victim-token")
	r.Header.Set("Cookie", b.String())
	x := testExtractor().Extract(r, nil, nil)
	if !x.ValuesCapped || x.values != MaxValues {
		t.Fatalf("capped %v at %d values", x.ValuesCapped, x.values)
	}
}

// The guard tells a stream from an ordinary request by the Upgrade,
// Accept and Content-Type headers that Extract notes: each is noted
// whatever else the request carries (short values, values known clean,
// a plain bearer token or another scheme, cookies), as Header.Get reads
// it, and a request without them notes none.
func TestExtractNotesStreamHeaders(t *testing.T) {
	const tok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	for _, c := range []struct {
		name    string
		headers map[string][]string
		want    StreamHeaders
	}{
		{"bearer alone", map[string][]string{"Authorization": {"Bearer " + tok}}, StreamHeaders{}},
		{"bearer and cookies", map[string][]string{"Authorization": {"Bearer " + tok}, "Cookie": {"a=b"}}, StreamHeaders{}},
		{"websocket", map[string][]string{"Authorization": {"Bearer " + tok}, "Upgrade": {"websocket", "h2c"}, "Connection": {"Upgrade"}},
			StreamHeaders{Upgrade: "websocket"}},
		{"event stream", map[string][]string{"Accept": {"text/event-stream"}, "Cookie": {"session=" + tok}},
			StreamHeaders{Accept: "text/event-stream"}},
		{"grpc, another scheme", map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}, "Content-Type": {"application/grpc+proto"}},
			StreamHeaders{ContentType: "application/grpc+proto"}},
		{"browser", map[string][]string{"Authorization": {"Bearer " + tok}, "Accept": {"*/*"}, "Content-Type": {"text/plain"}, "User-Agent": {"Mozilla/5.0"}},
			StreamHeaders{Accept: "*/*", ContentType: "text/plain"}},
		{"empty value", map[string][]string{"Upgrade": {}, "Accept": {""}}, StreamHeaders{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			r.Header = http.Header(c.headers)
			x := testExtractor().Extract(r, nil, nil)
			if x.Stream != c.want {
				t.Errorf("noted %+v, want %+v", x.Stream, c.want)
			}
			// As Header.Get reads them.
			if got := (StreamHeaders{r.Header.Get("Upgrade"), r.Header.Get("Accept"), r.Header.Get("Content-Type")}); got != x.Stream {
				t.Errorf("noted %+v, Header.Get reads %+v", x.Stream, got)
			}
		})
	}
}
