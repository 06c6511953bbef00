// Package differential loads the differential corpus of testdata/differential:
// raw HTTP requests, each built to probe one way a proxy and the framework
// behind it could read a credential differently, and what the real parsers
// of Go, Python, Node, PHP, Ruby, Java and Perl frameworks extract from
// each (expected.json,
// produced by testdata/differential/generate.sh running those parsers).
//
// A guard that must let no credential reach the app unexamined extracts at
// least every credential any of those parsers extracts: the tests compare
// its findings with Case.Expected.
package differential

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// HS256Secret is the key every JWT of the corpus is signed with (HS256);
// Load refuses a corpus.json that names another.
const HS256Secret = "differential-corpus-secret-0123456789"

// Slot names. A slot is where an app reads a credential from; the values of
// the cookie, header, query, form and json slots are in Extraction.Values
// under these prefixes followed by the name (e.g. "cookie:session").
const (
	SlotBearer    = "bearer"   // the access token of the Authorization header
	PrefixCookie  = "cookie:"  // cookie:<name>; cookie:<name>/json:<key> for Express j: JSON cookies
	PrefixHeader  = "header:"  // header:<name>, every value the framework returns
	PrefixQuery   = "query:"   // query:access_token, query:refresh_token
	PrefixForm    = "form:"    // form:<field>, urlencoded and multipart bodies
	PrefixJSON    = "json:"    // json:<key>, the top-level member of a JSON body
	PrefixParam   = "param:"   // param:<name>, query and form merged (a servlet's getParameterValues)
	PrefixBasic   = "basic:"   // basic:user, basic:password of a Basic Authorization
	PrefixSession = "session:" // session:<name>, the id a session layer looks up (JSESSIONID from a cookie or a ;jsessionid= path parameter, PHPSESSID)
	PrefixPath    = "path:"    // path:<name>, a path parameter (Spring's @MatrixVariable)
)

// SlotField names the request header field a slot's values are read from
// ("Authorization", "Cookie", or the header's own name), or "" for a slot
// read from the target or the body.
func SlotField(slot string) string {
	switch {
	case slot == SlotBearer, strings.HasPrefix(slot, PrefixBasic):
		return "Authorization"
	case strings.HasPrefix(slot, PrefixCookie):
		return "Cookie"
	case strings.HasPrefix(slot, PrefixHeader):
		return strings.TrimPrefix(slot, PrefixHeader)
	}
	return ""
}

// unverified lists the JWT parsers that decode without checking the
// signature; every other JWT parser verified the token with HS256Secret.
var unverified = map[string]bool{"node-jose-decode": true, "py-pyjwt-unverified": true}

// Unverified reports whether parser reads JWT claims without verifying the
// signature (as apps behind an authenticating gateway do).
func Unverified(parser string) bool { return unverified[parser] }

// Case is one request of the corpus and what each parser extracted from it.
type Case struct {
	Name string
	Why  string
	// Wire is the request exactly as sent: request line, headers, blank
	// line, body.
	Wire []byte
	// Headers are the request's header lines as [name, value] pairs, in
	// order (Host and Content-Length included).
	Headers [][2]string
	// JWTTokens are the token strings the case asked the JWT parsers to
	// read, besides every value the parsers of the same language extracted.
	JWTTokens []string
	// Expected maps a parser name (e.g. "go-nethttp", "py-werkzeug",
	// "node-express4", "node-jose-verify") to what it extracted. Every
	// parser that ran is present, with empty maps when it found nothing.
	Expected map[string]Extraction
}

// Extraction is what one parser extracted from a request.
type Extraction struct {
	// Values maps a slot ("bearer", "cookie:session", "json:refreshToken",
	// ...) to the values found there, in the parser's order. Values taken
	// from header bytes are those bytes read as UTF-8 when they are valid
	// UTF-8; non-string JSON values are given as JSON text.
	Values map[string][]string
	// JWT holds the claims (sub, sid, jti, iss when present) of each token
	// the parser accepted; numbers are json.Number.
	JWT []map[string]any
	// Rejected is set when the framework's server refused the request.
	Rejected string
	// Notes holds the informational slots (names starting with "_"):
	// "_error" when the parser crashed, "_nested:<slot>" for a null, object
	// or array the app would get in that slot (as JSON; no credential),
	// "_not_utf8:<slot>" for a value whose bytes are not UTF-8 text (given
	// as their latin-1 reading; no credential syntax allows such bytes),
	// "_file:<slot>" for the name of an uploaded file part there,
	// "_session_from" for where a servlet container took the session id
	// ("cookie" or "url").
	Notes map[string][]string
}

// Request parses Wire as a server would (http.ReadRequest) and returns the
// request with RemoteAddr set to a loopback address.
func (c Case) Request() (*http.Request, error) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(c.Wire)))
	if err != nil {
		return nil, fmt.Errorf("case %s: read request: %w", c.Name, err)
	}
	r.RemoteAddr = "127.0.0.1:40000"
	return r, nil
}

// FieldLines returns the values of the case's header lines named field
// (case-insensitively), in order.
func (c Case) FieldLines(field string) []string {
	var out []string
	for _, h := range c.Headers {
		if strings.EqualFold(h[0], field) {
			out = append(out, h[1])
		}
	}
	return out
}

// OnlyAcrossJoin reports whether v exists only because a server joined the
// case's several field lines into one value with ", " (as RFC 9110 section
// 5.3 lets it, and PHP's server, Puma and Plack's server do): v is within
// the joined value but within no single line. Such a value holds part of
// the separator, a comma or the space after it, which no credential syntax
// (token68, cookie-octet, JWT) allows; the credentials of each line are
// checked on their own.
func (c Case) OnlyAcrossJoin(field, v string) bool {
	lines := c.FieldLines(field)
	if len(lines) < 2 || !strings.Contains(strings.Join(lines, ", "), v) {
		return false
	}
	for _, l := range lines {
		if strings.Contains(l, v) {
			return false
		}
	}
	return true
}

// Strings returns every distinct value any parser extracted in any slot,
// sorted: the credentials a complete guard must find in this request.
func (c Case) Strings() []string {
	return c.Values(func(string) bool { return true })
}

// Values returns every distinct value any parser extracted in a slot that
// match accepts (e.g. strings.HasPrefix(slot, PrefixJSON)), sorted.
func (c Case) Values(match func(slot string) bool) []string {
	seen := map[string]bool{}
	for _, e := range c.Expected {
		for slot, vs := range e.Values {
			if !match(slot) {
				continue
			}
			for _, v := range vs {
				seen[v] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Claims returns every distinct claim set a JWT parser accepted, those of
// parsers that decode without verifying included only when unverified is
// true, in a stable order.
func (c Case) Claims(unverified bool) []map[string]any {
	seen := map[string]map[string]any{}
	for parser, e := range c.Expected {
		if Unverified(parser) && !unverified {
			continue
		}
		for _, cl := range e.JWT {
			k, err := json.Marshal(cl)
			if err != nil {
				continue
			}
			seen[string(k)] = cl
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, seen[k])
	}
	return out
}

type corpusFile struct {
	Secret string `json:"hs256_secret"`
	Cases  []struct {
		Name      string   `json:"name"`
		Why       string   `json:"why"`
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

// Load reads corpus.json and expected.json from dir (normally
// testdata/differential at the repository root).
func Load(dir string) ([]Case, error) {
	var cf corpusFile
	if err := readJSON(filepath.Join(dir, "corpus.json"), &cf); err != nil {
		return nil, err
	}
	if cf.Secret != HS256Secret {
		return nil, fmt.Errorf("corpus.json: hs256_secret is %q, want %q", cf.Secret, HS256Secret)
	}
	var expected map[string]map[string]map[string]json.RawMessage
	if err := readJSON(filepath.Join(dir, "expected.json"), &expected); err != nil {
		return nil, err
	}
	cases := make([]Case, 0, len(cf.Cases))
	for _, fc := range cf.Cases {
		wire, err := wireBytes(fc.Request.Method, fc.Request.Target, fc.Request.Headers, fc.Request.HeaderBytes, fc.Request.BodyB64)
		if err != nil {
			return nil, fmt.Errorf("corpus.json: case %s: %w", fc.Name, err)
		}
		parsers, ok := expected[fc.Name]
		if !ok {
			return nil, fmt.Errorf("expected.json: no entry for case %s (run testdata/differential/generate.sh)", fc.Name)
		}
		c := Case{Name: fc.Name, Why: fc.Why, Wire: wire, Headers: fc.Request.Headers, JWTTokens: fc.JWTTokens, Expected: map[string]Extraction{}}
		for parser, slots := range parsers {
			e, err := extraction(slots)
			if err != nil {
				return nil, fmt.Errorf("expected.json: case %s, parser %s: %w", fc.Name, parser, err)
			}
			c.Expected[parser] = e
		}
		cases = append(cases, c)
	}
	if len(expected) != len(cases) {
		return nil, fmt.Errorf("expected.json has %d cases, corpus.json %d (run testdata/differential/generate.sh)", len(expected), len(cases))
	}
	return cases, nil
}

func extraction(slots map[string]json.RawMessage) (Extraction, error) {
	e := Extraction{Values: map[string][]string{}}
	for slot, raw := range slots {
		switch {
		case slot == "jwt":
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			if err := d.Decode(&e.JWT); err != nil {
				return e, fmt.Errorf("slot jwt: %w", err)
			}
		case strings.HasPrefix(slot, "_"):
			var vs []string
			if err := json.Unmarshal(raw, &vs); err != nil {
				return e, fmt.Errorf("slot %s: %w", slot, err)
			}
			if slot == "_rejected" {
				e.Rejected = strings.Join(vs, "; ")
				continue
			}
			if e.Notes == nil {
				e.Notes = map[string][]string{}
			}
			e.Notes[slot] = vs
		default:
			var vs []string
			if err := json.Unmarshal(raw, &vs); err != nil {
				return e, fmt.Errorf("slot %s: %w", slot, err)
			}
			e.Values[slot] = vs
		}
	}
	return e, nil
}

// wireBytes builds the raw request. Header values are UTF-8 unless
// headerBytes is "latin1": then each code point (U+0000-U+00FF) is a byte.
func wireBytes(method, target string, headers [][2]string, headerBytes, bodyB64 string) ([]byte, error) {
	var head strings.Builder
	head.WriteString(method + " " + target + " HTTP/1.1\r\n")
	for _, h := range headers {
		head.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	head.WriteString("\r\n")
	var b bytes.Buffer
	switch headerBytes {
	case "", "utf-8":
		b.WriteString(head.String())
	case "latin1":
		for _, r := range head.String() {
			if r > 0xff {
				return nil, fmt.Errorf("header_bytes latin1: %U is not a byte", r)
			}
			b.WriteByte(byte(r))
		}
	default:
		return nil, fmt.Errorf("unknown header_bytes %q", headerBytes)
	}
	body, err := base64.StdEncoding.DecodeString(bodyB64)
	if err != nil {
		return nil, fmt.Errorf("body_b64: %w", err)
	}
	b.Write(body)
	return b.Bytes(), nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s missing (run testdata/differential/generate.sh): %w", path, err)
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}
