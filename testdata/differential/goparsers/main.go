// Command goparsers runs Go's parsers over the differential corpus and
// prints their extractions as JSON:
// {"results": {"<case>": {"<parser>": {"<slot>": [...]}}}, "versions": {...}}.
//
// Each case's raw request is written over a socket to a real net/http
// server on loopback, so the handler sees what a Go app would. Parsers:
//
//	go-nethttp         Request.CookiesNamed, Header.Values, URL.Query,
//	                   ParseMultipartForm/ParseForm then PostForm, and the
//	                   bearer token as strings.CutPrefix(h, "Bearer ") gives it
//	go-bearer-fields   the bearer token as strings.Fields(h) splits it (any
//	                   Unicode space, U+00A0 and U+0085 included), with a
//	                   case-insensitive "Bearer" first field
//	go-json-struct     json.NewDecoder(r.Body).Decode into a struct with
//	                   fields tagged refreshToken and refresh_token (string)
//	go-json-map        the same decoder into map[string]any
//	go-golang-jwt      golang-jwt/jwt/v5 Parse (HS256 key), default options
//	go-golang-jwt-padding  the same WithPaddingAllowed()
//	go-jose-v4         go-jose/v4/jwt ParseSigned + Claims(key)
//	go-jose-v3         go-jose/v3/jwt ParseSigned + Claims(key)
//	go-jose-v2         gopkg.in/square/go-jose.v2/jwt ParseSigned + Claims(key)
//	go-gin             a gin engine on its own net/http server: QueryArray,
//	                   PostFormArray, Cookie (gin unescapes the value),
//	                   GetHeader, ShouldBindJSON into the struct above, the
//	                   bearer token as strings.CutPrefix(h, "Bearer ") and
//	                   Request.BasicAuth
//
// It is its own module so go-jose stays out of the product's module graph.
// Run: go run . ../corpus.json
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	josev3 "github.com/go-jose/go-jose/v3"
	jwtv3 "github.com/go-jose/go-jose/v3/jwt"
	josev4 "github.com/go-jose/go-jose/v4"
	jwtv4 "github.com/go-jose/go-jose/v4/jwt"
	gjwt "github.com/golang-jwt/jwt/v5"
	jwtv2 "gopkg.in/square/go-jose.v2/jwt"
)

var (
	cookieNames = []string{"__Host-refresh_app", "JSESSIONID", "session", "token"}
	headerNames = []string{"X-Auth-Token", "X-Session-Id"}
	queryNames  = []string{"access_token", "refresh_token"}
	formNames   = []string{"access_token", "refresh_token", "refreshToken"}
	claimNames  = []string{"sub", "sid", "jti", "iss"}
)

type corpus struct {
	Secret string `json:"hs256_secret"`
	Cases  []struct {
		Name      string   `json:"name"`
		JWTTokens []string `json:"jwt_tokens"`
		Request   struct {
			Method      string      `json:"method"`
			Target      string      `json:"target"`
			Headers     [][2]string `json:"headers"`
			BodyB64     string      `json:"body_b64"`
			HeaderBytes string      `json:"header_bytes"`
		} `json:"request"`
	} `json:"cases"`
}

// slots maps a slot name to the values found there.
type slots map[string][]string

func (s slots) add(slot string, vs ...string) {
	if len(vs) > 0 {
		s[slot] = append(s[slot], vs...)
	}
}

type refreshStruct struct {
	RefreshToken  *string `json:"refreshToken"`
	RefreshToken2 *string `json:"refresh_token"`
}

func extract(r *http.Request) map[string]slots {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	nh := slots{}
	for _, a := range r.Header.Values("Authorization") {
		if tok, ok := strings.CutPrefix(a, "Bearer "); ok {
			nh.add("bearer", tok)
		}
	}
	fields := slots{}
	for _, a := range r.Header.Values("Authorization") {
		if f := strings.Fields(a); len(f) == 2 && strings.EqualFold(f[0], "Bearer") {
			fields.add("bearer", f[1])
		}
	}
	if u, p, ok := r.BasicAuth(); ok {
		nh.add("basic:user", u)
		nh.add("basic:password", p)
	}
	for _, n := range cookieNames {
		for _, c := range r.CookiesNamed(n) {
			nh.add("cookie:"+n, c.Value)
		}
	}
	for _, n := range headerNames {
		nh.add("header:"+n, r.Header.Values(n)...)
	}
	q := r.URL.Query()
	for _, n := range queryNames {
		nh.add("query:"+n, q[n]...)
	}
	if err := r.ParseMultipartForm(32 << 20); err != nil && r.PostForm == nil {
		_ = r.ParseForm()
	}
	for _, n := range formNames {
		nh.add("form:"+n, r.PostForm[n]...)
	}
	st := slots{}
	var s refreshStruct
	if json.NewDecoder(bytes.NewReader(body)).Decode(&s) == nil {
		if s.RefreshToken != nil {
			st.add("json:refreshToken", *s.RefreshToken)
		}
		if s.RefreshToken2 != nil {
			st.add("json:refresh_token", *s.RefreshToken2)
		}
	}
	mp := slots{}
	var m map[string]any
	if json.NewDecoder(bytes.NewReader(body)).Decode(&m) == nil {
		for _, k := range []string{"refreshToken", "refresh_token"} {
			if v, ok := m[k]; ok {
				mp.put("json:"+k, v)
			}
		}
	}
	return map[string]slots{"go-nethttp": nh, "go-bearer-fields": fields, "go-json-struct": st, "go-json-map": mp}
}

// ginEngine answers every request with what gin's context hands a handler.
func ginEngine() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.NoRoute(func(c *gin.Context) {
		s := slots{}
		for _, a := range c.Request.Header.Values("Authorization") {
			if tok, ok := strings.CutPrefix(a, "Bearer "); ok {
				s.add("bearer", tok)
			}
		}
		if u, p, ok := c.Request.BasicAuth(); ok {
			s.add("basic:user", u)
			s.add("basic:password", p)
		}
		for _, n := range cookieNames {
			if v, err := c.Cookie(n); err == nil {
				s.add("cookie:"+n, v)
			}
		}
		for _, n := range headerNames {
			if v := c.GetHeader(n); v != "" {
				s.add("header:"+n, v)
			}
		}
		for _, n := range queryNames {
			s.add("query:"+n, c.QueryArray(n)...)
		}
		body, _ := c.GetRawData()
		c.Request.Body = io.NopCloser(bytes.NewReader(body))
		for _, n := range formNames {
			s.add("form:"+n, c.PostFormArray(n)...)
		}
		c.Request.Body = io.NopCloser(bytes.NewReader(body))
		var st refreshStruct
		if c.ShouldBindJSON(&st) == nil {
			if st.RefreshToken != nil {
				s.add("json:refreshToken", *st.RefreshToken)
			}
			if st.RefreshToken2 != nil {
				s.add("json:refresh_token", *st.RefreshToken2)
			}
		}
		c.JSON(http.StatusOK, map[string]slots{"go-gin": s})
	})
	return e
}

// put records a JSON value as a slot carries it: a string as-is, a number
// or a boolean as JSON text (an app may stringify it); null, objects and
// arrays are no credential, and go to the informational "_nested:<slot>".
func (s slots) put(slot string, v any) {
	switch v := v.(type) {
	case string:
		s.add(slot, v)
	case float64, bool:
		b, _ := json.Marshal(v)
		s.add(slot, string(b))
	default:
		b, _ := json.Marshal(v)
		s.add("_nested:"+slot, string(b))
	}
}

func wire(c *corpus, i int) []byte {
	req := c.Cases[i].Request
	var b bytes.Buffer
	head := req.Method + " " + req.Target + " HTTP/1.1\r\n"
	for _, h := range req.Headers {
		head += h[0] + ": " + h[1] + "\r\n"
	}
	if req.HeaderBytes == "latin1" {
		for _, r := range head {
			b.WriteByte(byte(r))
		}
	} else {
		b.WriteString(head)
	}
	b.WriteString("\r\n")
	body, err := base64.StdEncoding.DecodeString(req.BodyB64)
	if err != nil {
		fail("case %s: body_b64: %v", c.Cases[i].Name, err)
	}
	b.Write(body)
	return b.Bytes()
}

func send(addr string, data []byte) (map[string]slots, string) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(data); err != nil {
		fail("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, "no response: " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "server answered " + resp.Status
	}
	var out map[string]slots
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		fail("decode answer: %v", err)
	}
	return out, ""
}

func mergeSlots(a, b map[string]slots) map[string]slots {
	if a == nil {
		a = map[string]slots{}
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}

func claimsOf(m map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range claimNames {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

func jwtParsers(key []byte) map[string]func(string) (map[string]any, error) {
	golangJWT := func(opts ...gjwt.ParserOption) func(string) (map[string]any, error) {
		return func(t string) (map[string]any, error) {
			opts := append([]gjwt.ParserOption{gjwt.WithValidMethods([]string{"HS256"})}, opts...)
			tok, err := gjwt.Parse(t, func(*gjwt.Token) (any, error) { return key, nil }, opts...)
			if err != nil {
				return nil, err
			}
			return tok.Claims.(gjwt.MapClaims), nil
		}
	}
	return map[string]func(string) (map[string]any, error){
		"go-golang-jwt":         golangJWT(),
		"go-golang-jwt-padding": golangJWT(gjwt.WithPaddingAllowed()),
		"go-jose-v4": func(t string) (map[string]any, error) {
			tok, err := jwtv4.ParseSigned(t, []josev4.SignatureAlgorithm{josev4.HS256})
			if err != nil {
				return nil, err
			}
			var m map[string]any
			return m, tok.Claims(key, &m)
		},
		"go-jose-v3": func(t string) (map[string]any, error) {
			tok, err := jwtv3.ParseSigned(t)
			if err != nil {
				return nil, err
			}
			if len(tok.Headers) != 1 || tok.Headers[0].Algorithm != string(josev3.HS256) {
				return nil, fmt.Errorf("algorithm")
			}
			var m map[string]any
			return m, tok.Claims(key, &m)
		},
		"go-jose-v2": func(t string) (map[string]any, error) {
			tok, err := jwtv2.ParseSigned(t)
			if err != nil {
				return nil, err
			}
			var m map[string]any
			return m, tok.Claims(key, &m)
		},
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "goparsers: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: goparsers corpus.json")
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	var c corpus
	if err := json.Unmarshal(raw, &c); err != nil {
		fail("%s: %v", os.Args[1], err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(extract(r))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	ginLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	ginSrv := &http.Server{Handler: ginEngine(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = ginSrv.Serve(ginLn) }()
	defer ginSrv.Close()

	parsers := jwtParsers([]byte(c.Secret))
	results := map[string]map[string]any{}
	for i, cs := range c.Cases {
		got, status := send(ln.Addr().String(), wire(&c, i))
		per := map[string]any{}
		if got == nil {
			per["go-nethttp"] = slots{"_rejected": {status}}
		}
		if g, status := send(ginLn.Addr().String(), wire(&c, i)); g == nil {
			per["go-gin"] = slots{"_rejected": {status}}
		} else {
			got = mergeSlots(got, g)
		}
		cands := append([]string(nil), cs.JWTTokens...)
		for name, s := range got {
			per[name] = s
			for _, vs := range s {
				cands = append(cands, vs...)
			}
		}
		for name, parse := range parsers {
			seen := map[string]map[string]any{}
			for _, t := range cands {
				m, err := parse(t)
				if err != nil {
					continue
				}
				cl := claimsOf(m)
				k, _ := json.Marshal(cl)
				seen[string(k)] = cl
			}
			if len(seen) == 0 {
				per[name] = map[string]any{}
				continue
			}
			keys := make([]string, 0, len(seen))
			for k := range seen {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			list := make([]map[string]any, 0, len(keys))
			for _, k := range keys {
				list = append(list, seen[k])
			}
			per[name] = map[string]any{"jwt": list}
		}
		results[cs.Name] = per
	}
	versions := map[string]string{"go": strings.TrimPrefix(goVersion(), "go")}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			versions[d.Path] = d.Version
		}
	}
	out, err := json.Marshal(map[string]any{"results": results, "versions": versions})
	if err != nil {
		fail("encode: %v", err)
	}
	_, _ = os.Stdout.Write(out)
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}
