// Package extract finds every credential a request carries, the way the
// apps behind the proxy might find them. The guard must see at least what
// any mainstream framework would read: an upstream that reads a credential
// the guard missed would let a revoked one through. Seeing more (a
// candidate no upstream reads) only ever blocks more, so wherever parsers
// disagree the guard takes every reading: each field of an Authorization
// header split on any whitespace, every occurrence of a cookie read quoted,
// unquoted, unescaped and percent-decoded, every member of a body whose
// name folds onto a credential's name, in whatever text encoding a
// framework detects.
//
// One step (Extractor.Extract) returns every credential as (source, kind,
// raw); one loop in the guard inspects and checks each. A new source is
// one more function called from Extract. Each source has its file:
// authorization.go, header.go, cookie.go, form.go (query and form), path.go,
// body.go (encodings and text), json.go, multipart.go; extract.go holds the
// per-request bookkeeping.
package extract

import (
	"net/http"
	"slices"
	"strings"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Kind says how a credential found in a request is treated.
type Kind uint8

const (
	// Access is presented as an access token: verified when first
	// seen (for require_token and session notes) and checked.
	Access Kind = iota
	// Refresh is a refresh token or another credential found by a
	// name that carries meaning (the refresh cookie, a configured
	// credential, a refresh_token parameter): decoded (a JWT's claims
	// count for blocking) and checked, never verified, and revoked by
	// app_logout.
	Refresh
	// Value is any other value a framework could hand to an app,
	// found whatever its name: checked by hash, and a JWT-shaped one
	// decoded for its claims (within the request's decoding budget).
	// Never verified, never revoked by app_logout (a header value such
	// as a User-Agent is not the client's to revoke), and read only
	// from MinValueLen bytes on.
	Value
)

// ValueShaped reports whether a value found by value alone may be a
// credential: MinValueLen bytes at least, and no space or control byte.
// No credential format holds one (a JWT, base64, hex, a UUID, the
// session ids of PHP, servlet containers, Rails or Express), and the
// readings of a value with spaces inside (a User-Agent, a sentence in a
// JSON body) are many: they would cost a hash each for nothing. A value
// with spaces around it is read trimmed too, wherever it is found.
func ValueShaped(v string) bool {
	if len(v) < MinValueLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// MaxValues bounds the distinct values found by value alone that one
// request has checked: each costs a hash (and, for a JWT, up to the
// decoding budget, a decoding). No client sends more than a few dozen;
// a request of a megabyte of tiny cookies could otherwise cost tens of
// milliseconds. Past the bound, further values are not checked and the
// request is not refused (a planted cookie jar must not lock its victim
// out): what is found by name is always checked in full.
const MaxValues = 4096

// MinValueLen is the shortest value checked by value alone: a value
// found under no credential name is checked from 16 bytes on. Session
// identifiers and tokens are longer (PHP's 26 or 32 characters, a
// servlet's 32, 128 bits of randomness are 22 characters in base64), and
// the many short values of every request (a page number, "en", "gzip")
// cost nothing. A value found under a name that means a credential
// (Authorization, access_token, refresh_token, the refresh cookie, a
// configured cookie or header) is checked at any length.
const MinValueLen = 16

// Credential is one candidate credential of a request.
type Credential struct {
	Source string // where it was found: a fixed word, safe as a log field
	Kind   Kind
	Raw    string
}

// Where credentials are found, as logs and the block answer name them.
const (
	SourceAuthorization = "authorization"
	SourceBasic         = "basic" // Basic authorization: its encoded field, user and password
	SourceQuery         = "query"
	SourceCookie        = "cookie"
	SourceHeader        = "header"
	SourceBody          = "body"
	SourcePath          = "path"
)

// Extraction is what Extract found.
type Extraction struct {
	// creds holds every candidate, once: those presented as access
	// tokens first, then those found by name, then those found by value
	// (Extract sorts them so), so that the request's own credentials are
	// decoded before any budget runs out.
	Creds []Credential
	// index finds a candidate in creds once there are many.
	index map[string]int
	// values counts the candidates found by value alone; past MaxValues
	// they are not kept, and valuesCapped says so.
	values       int
	ValuesCapped bool
	// groups are the header values read by value (all their readings
	// added): once every candidate is found clean, the guard remembers
	// them so (see Extract's known), and skips reading them again.
	Groups []string
	// uninspected is true when a body could not be examined in full:
	// larger than the limit, or in a content encoding the guard cannot
	// undo.
	Uninspected bool
	// Stream holds the headers that tell a stream from an ordinary
	// request, read in the same pass over the header map.
	Stream StreamHeaders
}

// StreamHeaders are the first values of a request's Upgrade, Accept and
// Content-Type headers (the server's canonical names), which the guard
// needs after Extract to tell a stream (an upgrade, an event stream,
// gRPC) from an ordinary request. Extract notes them as it walks the
// header map, so that the guard looks none of them up again; a request
// whose only headers are its credentials (an API client's, often) has
// none of them, and its map is not walked at all.
type StreamHeaders struct {
	Upgrade, Accept, ContentType string
}

// first is the first of a header's values, as http.Header.Get reads it.
func first(vals []string) string {
	if len(vals) > 0 {
		return vals[0]
	}
	return ""
}

// add records a candidate, and the readings of it that some framework
// hands to an app instead of the raw value: trimmed of spaces and
// control bytes around it (Tornado turns control bytes into spaces and
// strips them; so do many apps' own reads), and without one pair of
// double quotes around it (Rails' token_and_options unquotes a quoted
// bearer). A value without any of these costs two byte tests.
func (x *Extraction) add(source string, kind Kind, raw string) {
	x.addOne(source, kind, raw)
	if t := trimControl(raw); len(t) != len(raw) {
		raw = t
		x.addOne(source, kind, raw)
	}
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		x.addOne(source, kind, trimControl(raw[1:len(raw)-1]))
	}
}

// trimControl returns s without the spaces and control bytes (0x00-0x20,
// 0x7F) around it.
func trimControl(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] <= ' ' || s[i] == 0x7f) {
		i++
	}
	for j > i && (s[j-1] <= ' ' || s[j-1] == 0x7f) {
		j--
	}
	return s[i:j]
}

// addOne records one candidate, once: the same string found twice is
// checked once, as an access token if any source presents it as one.
func (x *Extraction) addOne(source string, kind Kind, raw string) {
	if raw == "" || len(raw) > maxCandidateLen || kind == Value && !ValueShaped(raw) {
		return
	}
	if i := x.find(raw); i >= 0 {
		if kind < x.Creds[i].Kind {
			x.Creds[i].Kind, x.Creds[i].Source = kind, source
		}
		return
	}
	if kind == Value {
		if x.values >= MaxValues {
			x.ValuesCapped = true
			return
		}
		x.values++
	}
	if x.index != nil {
		x.index[raw] = len(x.Creds)
	}
	x.Creds = append(x.Creds, Credential{Source: source, Kind: kind, Raw: raw})
}

// find returns the index of raw in x.creds, or -1: a scan while there
// are few (every request has a few), a map once there are many, so that
// a request with thousands of values costs linear time.
func (x *Extraction) find(raw string) int {
	if x.index == nil {
		for i := range x.Creds {
			if x.Creds[i].Raw == raw {
				return i
			}
		}
		if len(x.Creds) < 16 {
			return -1
		}
		x.index = make(map[string]int, 2*len(x.Creds))
		for i := range x.Creds {
			x.index[x.Creds[i].Raw] = i
		}
		return -1
	}
	if i, ok := x.index[raw]; ok {
		return i
	}
	return -1
}

// Named returns the candidates found by name (access tokens and named
// credentials), which extract puts before those found by value.
func (x *Extraction) Named() []Credential {
	i := slices.IndexFunc(x.Creds, func(c Credential) bool { return c.Kind == Value })
	if i < 0 {
		return x.Creds
	}
	return x.Creds[:i]
}

// maxCandidateLen bounds one candidate: a credential longer than this is
// not one any framework accepts (servers cap header lines far below it).
const maxCandidateLen = 64 << 10

// DefaultLimit is the largest body the guard examines unless told
// otherwise (its inspect_body_limit).
const DefaultLimit = 64 << 10

// Extractor holds what the guard looks for.
type Extractor struct {
	Cookies      []string // cookie names, normalised (CookieNameKey)
	Headers      []string // header names, normalised (HeaderNameKey)
	InspectBody  bool
	Limit        int64 // largest body examined, in bytes
	MaxInflation int64 // largest decoded body, in bytes
}

// Extract returns every candidate credential of a request. It reads the
// body (up to the limit) and puts it back as it was.
//
// Names matter only where they carry a meaning: the Authorization
// header, access_token and refresh_token parameters and members, the
// refresh cookie and the configured credential cookies and headers are
// read at any length, as Access or Refresh. Everything else a
// framework could hand to an app (every query and form value, every
// cookie, every header, every path segment and path parameter, every
// JSON string, every multipart part) is read by value as Value,
// whatever its name, once it is MinValueLen long.
//
// known, when not nil, holds the header values whose every reading was
// found clean in dl's current state: those are not read again (a
// browser's User-Agent, Accept and the like, the same on every request).
func (e *Extractor) Extract(r *http.Request, known *revocation.ValueChecker, dl *revocation.Denylist) Extraction {
	var x Extraction
	auth := r.Header["Authorization"]
	plainAuth := false // the one Authorization value is a plain bearer token
	for _, v := range auth {
		plainAuth = authorizationCredentials(&x, v) && len(auth) == 1
	}
	if len(auth) > 1 {
		authorizationCredentials(&x, strings.Join(auth, ","))
	}
	if r.URL.RawQuery != "" {
		e.formCredentials(&x, SourceQuery, r.URL.RawQuery)
	}
	e.pathCredentials(&x, r.URL)
	lines := r.Header["Cookie"]
	for _, line := range lines {
		cookieCredentials(&x, line, e.Cookies)
	}
	if len(lines) > 1 {
		// Some servers (WSGI's) hand apps repeated headers joined
		// with a comma, so a value may run into the next line.
		cookieCredentials(&x, strings.Join(lines, ","), e.Cookies)
	}
	// The headers read above need no reading by value: the cookies, and
	// a plain bearer token (its one reading is taken already). An API
	// client's request often has no other header (Host is not in the
	// map), and then the map is not walked at all.
	done := 0
	if len(lines) > 0 {
		done++
	}
	if plainAuth {
		done++
	}
	if len(r.Header) > done {
		for name, vals := range r.Header {
			switch name {
			case "Cookie":
				continue // read above, as cookies
			case "Authorization":
				if plainAuth {
					continue
				}
			case "Upgrade":
				x.Stream.Upgrade = first(vals)
			case "Accept":
				x.Stream.Accept = first(vals)
			case "Content-Type":
				x.Stream.ContentType = first(vals)
			}
			named := len(e.Headers) > 0 && slices.Contains(e.Headers, HeaderNameKey(name))
			for _, v := range vals {
				if named {
					headerCredentials(&x, v)
				}
				if len(v) < MinValueLen || known != nil && known.Known(dl, v) {
					continue
				}
				headerValues(&x, SourceHeader, v)
				x.Groups = append(x.Groups, v)
			}
			if named && len(vals) > 1 {
				headerCredentials(&x, strings.Join(vals, ","))
			}
		}
	}
	// A request that declares an empty body has none: reading it anyway
	// (through Caddy's wrappers, every GET) costs a read and a deadline.
	emptyBody := r.ContentLength == 0 && len(r.TransferEncoding) == 0
	if e.InspectBody && r.Body != nil && r.Body != http.NoBody && !emptyBody {
		if !e.bodyCredentials(&x, r) {
			x.Uninspected = true
		}
	}
	if len(x.Creds) > 1 {
		slices.SortStableFunc(x.Creds, func(a, b Credential) int { return int(a.Kind) - int(b.Kind) })
	}
	x.index = nil // positions moved
	return x
}
