package extract

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-revocation/caddy-revocation/internal/testbody"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// jsonBindings returns every string value encoding/json would bind to a
// struct field tagged refreshToken or refresh_token, at any depth.
func jsonBindings(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && (strings.EqualFold(revocation.FoldName(k), revocation.FoldName("refreshToken")) || revocation.FoldName(k) == revocation.FoldName("refresh_token")) {
				*out = append(*out, s)
			}
			jsonBindings(e, out)
		}
	case []any:
		for _, e := range v {
			jsonBindings(e, out)
		}
	}
}

// FuzzJSONRefreshTokens: for every body encoding/json accepts, every
// string a struct-based reader would bind to refreshToken or
// refresh_token (by Go's case folding) is among the guard's findings.
func FuzzJSONRefreshTokens(f *testing.F) {
	for _, s := range []string{`{"refreshToken":"a"}`, `[{"a":{"refresh_token":"b"}}]`, `{"a":[1,{"b":"c"}],"refreshToken":"d"}`, `{"REFRESHTOKEN":"e"}`, `{"refreſh_token":"f"}`, `{"refreshToken":"\ud83d\ude00"}`, `{"refreshToken":"a\u0000b"}`, "{\"refreshToken\":\"\xff\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var doc any
		if json.Unmarshal([]byte(s), &doc) != nil {
			return
		}
		var want []string
		jsonBindings(doc, &want)
		var x Extraction
		testExtractor().textCredentials(&x, []byte(s))
		for _, w := range want {
			if w != "" && len(w) <= maxCandidateLen && !slices.ContainsFunc(x.Creds, func(c Credential) bool { return c.Raw == w }) {
				t.Fatalf("%q: encoding/json binds %q; the guard found %q", s, w, x.Creds)
			}
		}
	})
}

// FuzzBodyCredentials drives the whole body search with any content type,
// encoding and body: it never panics, always puts the body back, and
// finds what encoding/json would bind in a JSON body of any declared type.
func FuzzBodyCredentials(f *testing.F) {
	f.Add("application/json", "", `{"refreshToken":"a"}`)
	f.Add("multipart/form-data; boundary=X", "", "--X\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\n\r\nb\r\n--X--\r\n")
	f.Add("application/x-www-form-urlencoded", "", "refresh_token=c&x=%zz")
	f.Add("text/plain; charset=utf-16", "gzip", testbody.Compressed("gzip", testbody.UTF16(`{"refreshToken":"d"}`, false, true)))
	f.Add("", "deflate", testbody.Compressed("zlib", `{"refreshToken":"e"}`))
	f.Fuzz(func(t *testing.T, ctype, encoding, body string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		r.Header.Set("Content-Encoding", encoding)
		e := testExtractor()
		x := e.Extract(r, nil, nil)
		if rest, _ := io.ReadAll(r.Body); string(rest) != body {
			t.Fatal("body not put back as it came")
		}
		if x.Uninspected || strings.TrimSpace(encoding) != "" {
			return
		}
		var doc any
		if json.Unmarshal([]byte(body), &doc) != nil {
			return
		}
		var want []string
		jsonBindings(doc, &want)
		for _, w := range want {
			if w != "" && !slices.ContainsFunc(x.Creds, func(c Credential) bool { return c.Raw == w }) {
				t.Fatalf("%q (%s): encoding/json binds %q; the guard found %q", body, ctype, w, x.Creds)
			}
		}
	})
}

// A part's headers are folded only in ASCII: invalid UTF-8 and letters
// whose lower case is longer (İ, U+0130) kept partName's indexes from
// matching its input, and a crafted part panicked the guard (found by
// FuzzValuesByValue).
func TestPartNameKeepsIndexesOnNonASCII(t *testing.T) {
	for hdr, want := range map[string]string{
		"\xff\xff\xff; name=abc":                      "abc",
		"İİİİ; name=abc":                              "abc",
		"Content-Disposition: form-data; NAME=\"İd\"": "İd",
		"x\xc0; name=":                                "",
		"\xff:name=\xff;":                             "\xff",
		"\xc0\xc0\xc0\xc0name=":                       "",
	} {
		if got := partName(hdr); got != want {
			t.Errorf("partName(%q) = %q, want %q", hdr, got, want)
		}
	}
	body := "--XX\r\nContent-Disposition: \xff\xff\xff\xffname=\r\n\r\n0123456789abcdef0123\r\n--XX--\r\n"
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=XX")
	x := testExtractor().Extract(r, nil, nil)
	if !slices.ContainsFunc(x.Creds, func(c Credential) bool { return c.Raw == "0123456789abcdef0123" }) {
		t.Fatalf("the part's value was not examined: %q", x.Creds)
	}
}
