package caddymodule

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"io"
	"iter"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Finding every credential a request carries, the way the apps behind the
// proxy might find them. The guard must see at least what any mainstream
// framework would read: an upstream that reads a credential the guard
// missed would let a revoked one through. Seeing more (a candidate no
// upstream reads) only ever blocks more, so wherever parsers disagree the
// guard takes every reading: each field of an Authorization header split
// on any whitespace, every occurrence of a cookie read quoted, unquoted,
// unescaped and percent-decoded, every member of a body whose name folds
// onto a credential's name, in whatever text encoding a framework detects.
//
// One step (extract) returns every credential as (source, kind, raw); one
// loop in the guard inspects and checks each. A new source is one more
// function called from extract.

// credKind says how a credential found in a request is treated.
type credKind uint8

const (
	// credAccess is presented as an access token: verified when first
	// seen (for require_token and session notes) and checked.
	credAccess credKind = iota
	// credRefresh is a refresh token or another credential found by a
	// name that carries meaning (the refresh cookie, a configured
	// credential, a refresh_token parameter): decoded (a JWT's claims
	// count for blocking) and checked, never verified, and revoked by
	// app_logout.
	credRefresh
	// credValue is any other value a framework could hand to an app,
	// found whatever its name: checked by hash, and a JWT-shaped one
	// decoded for its claims (within the request's decoding budget).
	// Never verified, never revoked by app_logout (a header value such
	// as a User-Agent is not the client's to revoke), and read only
	// from minValueLen bytes on.
	credValue
)

// valueShaped reports whether a value found by value alone may be a
// credential: minValueLen bytes at least, and no space or control byte.
// No credential format holds one (a JWT, base64, hex, a UUID, the
// session ids of PHP, servlet containers, Rails or Express), and the
// readings of a value with spaces inside (a User-Agent, a sentence in a
// JSON body) are many: they would cost a hash each for nothing. A value
// with spaces around it is read trimmed too, wherever it is found.
func valueShaped(v string) bool {
	if len(v) < minValueLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// maxValues bounds the distinct values found by value alone that one
// request has checked: each costs a hash (and, for a JWT, up to the
// decoding budget, a decoding). No client sends more than a few dozen;
// a request of a megabyte of tiny cookies could otherwise cost tens of
// milliseconds. Past the bound, further values are not checked and the
// request is not refused (a planted cookie jar must not lock its victim
// out): what is found by name is always checked in full.
const maxValues = 4096

// minValueLen is the shortest value checked by value alone: a value
// found under no credential name is checked from 16 bytes on. Session
// identifiers and tokens are longer (PHP's 26 or 32 characters, a
// servlet's 32, 128 bits of randomness are 22 characters in base64), and
// the many short values of every request (a page number, "en", "gzip")
// cost nothing. A value found under a name that means a credential
// (Authorization, access_token, refresh_token, the refresh cookie, a
// configured cookie or header) is checked at any length.
const minValueLen = 16

// credential is one candidate credential of a request.
type credential struct {
	source string // where it was found: a fixed word, safe as a log field
	kind   credKind
	raw    string
}

// Where credentials are found, as logs and the block answer name them.
const (
	srcAuthorization = "authorization"
	srcBasic         = "basic" // the user and password of Basic authorization
	srcQuery         = "query"
	srcCookie        = "cookie"
	srcHeader        = "header"
	srcBody          = "body"
	srcPath          = "path"
)

// extraction is what extract found.
type extraction struct {
	// creds holds every candidate, once: those presented as access
	// tokens first, then those found by name, then those found by value
	// (extract sorts them so), so that the request's own credentials are
	// decoded before any budget runs out.
	creds []credential
	// index finds a candidate in creds once there are many.
	index map[string]int
	// values counts the candidates found by value alone; past maxValues
	// they are not kept, and valuesCapped says so.
	values       int
	valuesCapped bool
	// groups are the header values read by value (all their readings
	// added): once every candidate is found clean, the guard remembers
	// them so (see extract's known), and skips reading them again.
	groups []string
	// uninspected is true when a body could not be examined in full:
	// larger than the limit, or in a content encoding the guard cannot
	// undo.
	uninspected bool
}

// add records a candidate, and the readings of it that some framework
// hands to an app instead of the raw value: trimmed of spaces and
// control bytes around it (Tornado turns control bytes into spaces and
// strips them; so do many apps' own reads), and without one pair of
// double quotes around it (Rails' token_and_options unquotes a quoted
// bearer). A value without any of these costs two byte tests.
func (x *extraction) add(source string, kind credKind, raw string) {
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
func (x *extraction) addOne(source string, kind credKind, raw string) {
	if raw == "" || len(raw) > maxCandidateLen || kind == credValue && !valueShaped(raw) {
		return
	}
	if i := x.find(raw); i >= 0 {
		if kind < x.creds[i].kind {
			x.creds[i].kind, x.creds[i].source = kind, source
		}
		return
	}
	if kind == credValue {
		if x.values >= maxValues {
			x.valuesCapped = true
			return
		}
		x.values++
	}
	if x.index != nil {
		x.index[raw] = len(x.creds)
	}
	x.creds = append(x.creds, credential{source: source, kind: kind, raw: raw})
}

// find returns the index of raw in x.creds, or -1: a scan while there
// are few (every request has a few), a map once there are many, so that
// a request with thousands of values costs linear time.
func (x *extraction) find(raw string) int {
	if x.index == nil {
		for i := range x.creds {
			if x.creds[i].raw == raw {
				return i
			}
		}
		if len(x.creds) < 16 {
			return -1
		}
		x.index = make(map[string]int, 2*len(x.creds))
		for i := range x.creds {
			x.index[x.creds[i].raw] = i
		}
		return -1
	}
	if i, ok := x.index[raw]; ok {
		return i
	}
	return -1
}

// named returns the candidates found by name (access tokens and named
// credentials), which extract puts before those found by value.
func (x *extraction) named() []credential {
	i := slices.IndexFunc(x.creds, func(c credential) bool { return c.kind == credValue })
	if i < 0 {
		return x.creds
	}
	return x.creds[:i]
}

// maxCandidateLen bounds one candidate: a credential longer than this is
// not one any framework accepts (servers cap header lines far below it).
const maxCandidateLen = 64 << 10

// extractor holds what the guard looks for.
type extractor struct {
	cookies      []string // cookie names, normalised (cookieNameKey)
	headers      []string // header names, normalised (headerNameKey)
	inspectBody  bool
	limit        int64 // largest body examined, in bytes
	maxInflation int64 // largest decoded body, in bytes
}

// extract returns every candidate credential of a request. It reads the
// body (up to the limit) and puts it back as it was.
//
// Names matter only where they carry a meaning: the Authorization
// header, access_token and refresh_token parameters and members, the
// refresh cookie and the configured credential cookies and headers are
// read at any length, as credAccess or credRefresh. Everything else a
// framework could hand to an app (every query and form value, every
// cookie, every header, every path segment and path parameter, every
// JSON string, every multipart part) is read by value as credValue,
// whatever its name, once it is minValueLen long.
//
// known, when not nil, holds the header values whose every reading was
// found clean in dl's current state: those are not read again (a
// browser's User-Agent, Accept and the like, the same on every request).
func (e *extractor) extract(r *http.Request, known *revocation.ValueChecker, dl *revocation.Denylist) extraction {
	var x extraction
	auth := r.Header["Authorization"]
	for _, v := range auth {
		authorizationCredentials(&x, v)
	}
	if len(auth) > 1 {
		authorizationCredentials(&x, strings.Join(auth, ","))
	}
	if r.URL.RawQuery != "" {
		e.formCredentials(&x, srcQuery, r.URL.RawQuery)
	}
	e.pathCredentials(&x, r.URL)
	lines := r.Header["Cookie"]
	for _, line := range lines {
		cookieCredentials(&x, line, e.cookies)
	}
	if len(lines) > 1 {
		// Some servers (WSGI's) hand apps repeated headers joined
		// with a comma, so a value may run into the next line.
		cookieCredentials(&x, strings.Join(lines, ","), e.cookies)
	}
	for name, vals := range r.Header {
		switch name {
		case "Cookie":
			continue // read above, as cookies
		case "Authorization":
			if len(vals) == 1 {
				if _, plain := plainBearer(vals[0]); plain {
					continue // its one reading is taken already
				}
			}
		}
		named := len(e.headers) > 0 && slices.Contains(e.headers, headerNameKey(name))
		for _, v := range vals {
			if named {
				headerCredentials(&x, v)
			}
			if len(v) < minValueLen || known != nil && known.Known(dl, v) {
				continue
			}
			headerValues(&x, srcHeader, v)
			x.groups = append(x.groups, v)
		}
		if named && len(vals) > 1 {
			headerCredentials(&x, strings.Join(vals, ","))
		}
	}
	// A request that declares an empty body has none: reading it anyway
	// (through Caddy's wrappers, every GET) costs a read and a deadline.
	emptyBody := r.ContentLength == 0 && len(r.TransferEncoding) == 0
	if e.inspectBody && r.Body != nil && r.Body != http.NoBody && !emptyBody {
		if !e.bodyCredentials(&x, r) {
			x.uninspected = true
		}
	}
	if len(x.creds) > 1 {
		slices.SortStableFunc(x.creds, func(a, b credential) int { return int(a.kind) - int(b.kind) })
	}
	x.index = nil // positions moved
	return x
}

// headerValues reads any header value by value: each whitespace-
// separated field (the whole value, when it has no whitespace), trimmed
// of list and parameter separators; within a field, each element of a
// comma- or semicolon-separated list and each name=value's value,
// unquoted, and decoded when it is a structured field byte sequence;
// and the user and password of a Basic credential. Only readings without
// whitespace can be credentials (valueShaped), so a field shorter than
// minValueLen, the commonest, costs one scan.
func headerValues(x *extraction, source, v string) {
	if len(v) < minValueLen {
		return // every reading is shorter
	}
	afterBasic := false
	for f := range spaceLikeFields(v) {
		if afterBasic {
			basicValues(x, source, f)
		}
		afterBasic = len(f) == 5 && strings.EqualFold(f, "Basic")
		if len(f) < minValueLen {
			continue
		}
		x.add(source, credValue, f)
		if !strings.ContainsAny(f, ",;=\"") {
			continue
		}
		x.add(source, credValue, strings.Trim(f, ",;"))
		x.add(source, credValue, unquote(strings.Trim(f, ",;")))
		for part := range strings.FieldsFuncSeq(f, func(r rune) bool { return r == ',' || r == ';' }) {
			x.add(source, credValue, part)
			x.add(source, credValue, unquote(part))
			if _, val, ok := strings.Cut(part, "="); ok {
				structuredValue(x, source, val)
			}
		}
	}
}

// structuredValue adds the readings of the value of a name=value pair in
// a header: as it is, unquoted, and decoded when it is a structured
// field byte sequence (RFC 8941, base64 between colons).
func structuredValue(x *extraction, source, val string) {
	x.add(source, credValue, val)
	x.add(source, credValue, unquote(val))
	if len(val) > 2 && val[0] == ':' && val[len(val)-1] == ':' {
		if dec, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1]); err == nil {
			x.add(source, credValue, string(dec))
		}
	}
}

// unquote returns a quoted string's content with its backslash escapes
// resolved, or s as it is when it is not quoted.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return pyUnquote(s[1 : len(s)-1])
	}
	return s
}

// basicValues reads a Basic credential found by value.
func basicValues(x *extraction, source, b64 string) {
	dec, err := base64.StdEncoding.DecodeString(strings.Trim(b64, ","))
	if err != nil {
		if dec, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.Trim(b64, ","), "=")); err != nil {
			return
		}
	}
	user, pass, _ := strings.Cut(string(dec), ":")
	x.add(source, credValue, string(dec))
	x.add(source, credValue, user)
	x.add(source, credValue, pass)
}

// pathCredentials reads the path: every segment percent-decoded (a
// route parameter such as /reset/<token> is a value an app is handed),
// and every path parameter of every segment (";name=value", as servlet
// containers read ";jsessionid=<id>"). A path parameter whose name is a
// configured cookie's, in any case, is read as that credential at any
// length.
func (e *extractor) pathCredentials(x *extraction, u *url.URL) {
	p := u.RawPath
	if p == "" {
		p = u.Path
	}
	if len(p) < minValueLen && strings.IndexByte(p, ';') < 0 {
		return // the commonest path: short, no parameters
	}
	for seg := range strings.SplitSeq(p, "/") {
		if len(seg) == 0 {
			continue
		}
		x.add(srcPath, credValue, seg)
		x.add(srcPath, credValue, lenientUnescape(seg, false))
		if strings.IndexByte(seg, ';') < 0 {
			continue
		}
		for i, param := range strings.Split(seg, ";") {
			x.add(srcPath, credValue, lenientUnescape(param, false))
			if i == 0 {
				continue
			}
			name, val, _ := strings.Cut(param, "=")
			val = lenientUnescape(val, false)
			if e.namesCookie(lenientUnescape(name, false)) {
				x.add(srcPath, credRefresh, val)
			}
			x.add(srcPath, credValue, val)
		}
	}
}

// namesCookie reports whether name is a configured cookie's, in any case
// (Tomcat reads ";jsessionid=" for a JSESSIONID cookie; PHP reads a
// PHPSESSID query parameter when use_only_cookies is off).
func (e *extractor) namesCookie(name string) bool {
	if len(e.cookies) == 0 || name == "" {
		return false
	}
	k := cookieNameKey(name)
	for _, c := range e.cookies {
		if strings.EqualFold(k, c) {
			return true
		}
	}
	return false
}

// authorizationCredentials reads one Authorization header value. Apps
// split it in many ways: on a space (Go, Express), on any Unicode
// whitespace (Python's str.split, which also splits on NO-BREAK SPACE), by
// cutting a fixed-length prefix ("Bearer " is 7 characters), or by taking
// the whole value when no scheme is given. Every field but a scheme name
// is a candidate, with and without a trailing comma (servers join repeated
// headers with commas), and so is what follows "Bearer" and any one
// character. A Basic credential's user and password are candidates too:
// some APIs take a token as the user name.
func authorizationCredentials(x *extraction, v string) {
	if tok, ok := plainBearer(v); ok {
		// Every reading below gives this one token, and nothing else.
		x.add(srcAuthorization, credAccess, tok)
		return
	}
	authorizationReadings(x, v)
}

// authorizationReadings is authorizationCredentials without its fast
// path: every reading of any value.
func authorizationReadings(x *extraction, v string) {
	authorizationFields(x, spaceLikeFields(v))
	if goSplitsOtherwise(v) {
		authorizationFields(x, strings.FieldsSeq(v))
	}
	t := strings.TrimLeftFunc(v, revocation.IsSpaceLike)
	if len(t) > 7 && strings.EqualFold(t[:6], "Bearer") {
		_, size := utf8.DecodeRuneInString(t[6:])
		x.add(srcAuthorization, credAccess, t[6+size:]) // as strings.CutPrefix leaves it
		x.add(srcAuthorization, credAccess, strings.TrimFunc(t[6+size:], revocation.IsSpaceLike))
	}
}

// goSplitsOtherwise reports whether Go's strings.Fields may split v
// otherwise than spaceLikeFields: where v holds an information separator
// (0x1C-0x1F: Python splits on them, Go does not) or any byte outside
// ASCII (a lone 0x85 or 0xA0 byte separates fields for a latin-1 reader,
// not for Go, which sees invalid UTF-8).
func goSplitsOtherwise(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c >= utf8.RuneSelf || (c >= 0x1c && c <= 0x1f) {
			return true
		}
	}
	return false
}

// plainBearer returns the token of the commonest Authorization value:
// "Bearer", one space, and a token of printable ASCII without a comma.
// Such a value has two fields, the scheme and the token, whatever the
// splitting, nothing to trim, and what follows "Bearer " is the token
// too: authorizationCredentials would read the token alone out of it,
// with one pass over it for each reading. Anything else (another
// scheme, other spacing, a comma, a byte outside 0x21-0x7E) takes the
// general path (TestPlainBearerReadsAsTheGeneralPath, FuzzPlainBearer).
func plainBearer(v string) (string, bool) {
	if len(v) < 8 || v[6] != ' ' || !strings.EqualFold(v[:6], "Bearer") {
		return "", false
	}
	tok := v[7:]
	for i := 0; i < len(tok); i++ {
		if !bearerByte[tok[i]] {
			return "", false
		}
	}
	return tok, true
}

// bearerByte holds the bytes plainBearer accepts in a token.
var bearerByte = func() (t [256]bool) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] = c != ','
	}
	return t
}()

// spaceLikeFields splits s on whitespace as Python splits a header value
// that WSGI decoded as latin-1: any Unicode space of valid UTF-8 (see
// revocation.IsSpaceLike), and the lone bytes 0x85 and 0xA0. The test of
// an ASCII byte is made by table: it runs over every
// Authorization header, and deciding rune by rune through unicode.IsSpace
// was most of the guard's cost for a bearer token.
func spaceLikeFields(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		start := -1
		for i := 0; i < len(s); {
			space, size := false, 1
			if c := s[i]; c < utf8.RuneSelf {
				space = asciiSpaceLike[c]
			} else {
				var r rune
				r, size = utf8.DecodeRuneInString(s[i:])
				// A lone 0x85 or 0xA0 byte is NEL or NO-BREAK SPACE to a
				// framework that decodes headers as latin-1 (WSGI).
				space = revocation.IsSpaceLike(r) || (r == utf8.RuneError && size == 1 && (c == 0x85 || c == 0xA0))
			}
			switch {
			case space && start >= 0:
				if !yield(s[start:i]) {
					return
				}
				start = -1
			case !space && start < 0:
				start = i
			}
			i += size
		}
		if start >= 0 {
			yield(s[start:])
		}
	}
}

// asciiSpaceLike is revocation.IsSpaceLike for ASCII (TestASCIISpaceLike).
var asciiSpaceLike = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true,
	0x1c: true, 0x1d: true, 0x1e: true, 0x1f: true}

// authorizationFields takes the fields as a sequence rather than a slice:
// the guard reads every request's Authorization header, and splitting it
// into a slice would allocate on every one.
func authorizationFields(x *extraction, fields iter.Seq[string]) {
	afterBasic, first := false, true
	for f := range fields {
		if afterBasic {
			basicCredentials(x, f)
		}
		afterBasic = strings.EqualFold(f, "Basic")
		// A scheme name is skipped only where a scheme stands: a token
		// that spells "Bearer" after the scheme is still a candidate.
		scheme := first && (strings.EqualFold(f, "Bearer") || strings.EqualFold(f, "DPoP") || strings.EqualFold(f, "Token"))
		first = false
		if afterBasic || scheme {
			continue
		}
		x.add(srcAuthorization, credAccess, f)
		if t := strings.Trim(f, ","); t != f {
			x.add(srcAuthorization, credAccess, t)
		}
	}
}

// headerNameKey normalises a header name as CGI, WSGI and Rack servers
// see it: letters in one case, '-' and '_' alike (both become '_' in
// HTTP_X_AUTH_TOKEN).
func headerNameKey(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// headerCredentials reads a custom credential header: its whole value
// trimmed, and the fields of a value written with a scheme.
func headerCredentials(x *extraction, v string) {
	x.add(srcHeader, credRefresh, v)
	x.add(srcHeader, credRefresh, strings.TrimFunc(v, revocation.IsSpaceLike))
	if strings.IndexFunc(strings.TrimFunc(v, revocation.IsSpaceLike), revocation.IsSpaceLike) >= 0 {
		authorizationCredentials(x, v)
	}
}

func basicCredentials(x *extraction, b64 string) {
	dec, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		if dec, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err != nil {
			return
		}
	}
	user, pass, _ := strings.Cut(string(dec), ":")
	x.add(srcBasic, credRefresh, user)
	x.add(srcBasic, credRefresh, pass)
}

// credentialName says what kind of credential a parameter or member name
// stands for: access_token (RFC 6750), refresh_token or refreshToken. The
// name is compared folded as Go's encoding/json folds (so "refreſh_token"
// with a long s matches) and with every character that is not a letter
// or digit dropped (PHP reads "refresh.token" and "refresh token" as
// refresh_token; a bracketed "refresh_token[]" is its array form).
func credentialName(name string) (credKind, bool) {
	if len(name) > 64 {
		return 0, false
	}
	var buf [64]byte
	b := buf[:0]
	for _, r := range name {
		if r == '[' {
			break
		}
		if r < utf8.RuneSelf {
			// FoldName's ASCII rule, without a string per character:
			// every query and form pair's name comes through here.
			switch {
			case r >= 'a' && r <= 'z':
				b = append(b, byte(r)-('a'-'A'))
			case r >= 'A' && r <= 'Z' || r >= '0' && r <= '9':
				b = append(b, byte(r))
			}
			continue
		}
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			continue
		}
		b = append(b, revocation.FoldName(string(r))...)
	}
	switch string(b) {
	case "ACCESSTOKEN":
		return credAccess, true
	case "REFRESHTOKEN":
		return credRefresh, true
	}
	return 0, false
}

// formCredentials reads a query string or a url-encoded form: pairs split
// on '&' or ';', names and values percent-decoded leniently (a malformed
// escape is kept as it is, as Werkzeug keeps it, and the pair is not
// dropped; Go reads past a "#" in a request target), values read with '+'
// as a space and as itself. Every value is read by value, and so is
// every name (a bare "?<token>" is a name to most parsers); a name that
// means a credential (credentialName, or a configured cookie's name, as
// PHP reads a session id from the query) makes its value that
// credential, at any length.
func (e *extractor) formCredentials(x *extraction, source, s string) {
	for len(s) > 0 {
		var pair string
		if i := strings.IndexAny(s, "&;#"); i >= 0 {
			pair, s = s[:i], s[i+1:]
		} else {
			pair, s = s, ""
		}
		k, v, _ := strings.Cut(pair, "=")
		name := lenientUnescape(k, true)
		kind, ok := credentialName(name)
		if !ok && e.namesCookie(name) {
			kind, ok = credRefresh, true
		}
		if !ok {
			kind = credValue
			if len(pair) < minValueLen {
				continue // every reading is shorter
			}
			x.add(source, credValue, name)
			x.add(source, credValue, lenientUnescape(k, false))
		}
		x.add(source, kind, lenientUnescape(v, true))
		x.add(source, kind, lenientUnescape(v, false))
	}
}

// lenientUnescape decodes %XX escapes, keeping malformed ones as they
// are, and with plus true reads '+' as a space.
func lenientUnescape(s string, plus bool) string {
	if strings.IndexByte(s, '%') < 0 && (!plus || strings.IndexByte(s, '+') < 0) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case c == '+' && plus:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// cookieNameKey normalises a cookie name as the most lenient framework
// reads it: percent-decoded, spaces around it dropped, and ' ', '.' and
// '[' read as '_' (PHP's rule for request variable names).
func cookieNameKey(name string) string {
	name = strings.TrimFunc(lenientUnescape(name, false), revocation.IsSpaceLike)
	name = strings.Trim(name, `"`)
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '.', '[':
			return '_'
		}
		return r
	}, name)
}

// cookieCredentials reads every value a Cookie header line may give a
// cookie, as any parser may read it: each occurrence; pairs separated by
// ';', ',' or whitespace (Python's http.cookies splits on whitespace, old
// parsers on commas); spaces around the name and the value ignored; the
// value up to the next ';', or up to the next ',' or space; quoted values
// with and without their quotes, with Python's backslash and octal
// escapes resolved; percent-decoded; an Express signed value
// ("s:value.signature") as its value, and an Express JSON cookie
// ("j:{...}") as every string in it. A cookie named like one of names is
// read as that credential; every other is read by value.
func cookieCredentials(x *extraction, line string, names []string) {
	for i := 0; i < len(line); i++ {
		if line[i] != '=' {
			continue
		}
		// The name: back from '=' over spaces, then to a separator.
		end := i
		for end > 0 && (line[end-1] == ' ' || line[end-1] == '\t') {
			end--
		}
		start := end
		for start > 0 && !strings.ContainsRune(";, \t", rune(line[start-1])) {
			start--
		}
		kind := credValue
		if matchesCookie(line[start:end], names) {
			kind = credRefresh
		} else if len(line)-i-1 < minValueLen {
			continue // every reading of the value is shorter
		}
		cookieValue(x, line[i+1:], kind)
	}
}

func matchesCookie(name string, names []string) bool {
	if name == "" {
		return false
	}
	k := cookieNameKey(name)
	for _, n := range names {
		if k == n {
			return true
		}
	}
	return false
}

// cookieValue adds the readings of a cookie value that starts at v.
func cookieValue(x *extraction, v string, kind credKind) {
	semi := v
	if i := strings.IndexByte(v, ';'); i >= 0 {
		semi = v[:i]
	}
	if plainCookie(semi) {
		// Every reading below is the value itself.
		x.add(srcCookie, kind, semi)
		return
	}
	var buf [16]string // at most 13 readings: no allocation
	readings := buf[:0]
	// Go leaves spaces after '=' in place, and trims those before ';'.
	readings = append(readings, semi, strings.TrimRight(semi, " \t"))
	v = strings.TrimLeft(v, " \t")
	if strings.HasPrefix(v, `"`) {
		if inner, ok := quotedCookie(v); ok {
			readings = append(readings, inner, pyUnquote(inner), `"`+inner+`"`)
		}
	}
	for _, trim := range []func(string) string{
		func(s string) string { return strings.Trim(s, " \t") },
		func(s string) string { return strings.TrimFunc(s, revocation.IsSpaceLike) }, // Python's str.strip
	} {
		t := trim(semi)
		readings = append(readings, t, strings.Trim(t, `"`))
	}
	t := strings.TrimLeft(semi, " \t")
	// Python's http.cookies ends an unquoted value at whitespace; older
	// parsers at a comma.
	for _, stops := range []string{" \t", ", \t"} {
		if i := strings.IndexAny(t, stops); i >= 0 {
			readings = append(readings, t[:i], strings.Trim(t[:i], `"`))
		}
	}
	for i, r := range readings {
		// Most readings of a plain value are the value itself: decode
		// each distinct one once.
		if !slices.Contains(readings[:i], r) {
			addCookieReading(x, r, kind)
		}
	}
}

// plainCookie reports whether every reading of a cookie value is the
// value itself: no space, quote, comma, backslash, escape or '+', no
// byte outside ASCII, and no Express prefix.
func plainCookie(v string) bool {
	if len(v) >= 2 && v[1] == ':' && (v[0] == 's' || v[0] == 'j') {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !plainCookieByte[v[i]] {
			return false
		}
	}
	return true
}

// plainCookieByte holds the bytes plainCookie accepts.
var plainCookieByte = func() (t [256]bool) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] = !strings.ContainsRune(`"\,%+`, rune(c))
	}
	return t
}()

func addCookieReading(x *extraction, v string, kind credKind) {
	for _, d := range []string{v, lenientUnescape(v, false), lenientUnescape(v, true)} {
		x.add(srcCookie, kind, d)
		if rest, ok := strings.CutPrefix(d, "s:"); ok {
			if i := strings.LastIndexByte(rest, '.'); i > 0 {
				x.add(srcCookie, kind, rest[:i])
			}
		}
		if rest, ok := strings.CutPrefix(d, "j:"); ok {
			for _, s := range jsonStrings([]byte(rest)) {
				x.add(srcCookie, kind, s)
			}
		}
	}
}

// quotedCookie returns what is inside a quoted cookie value starting at
// v[0] == '"', backslash escapes kept, up to the closing quote.
func quotedCookie(v string) (string, bool) {
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return v[1:i], true
		}
	}
	return "", false
}

// pyUnquote resolves the escapes Python's http.cookies and Werkzeug
// resolve inside a quoted value: \ooo (three octal digits) as that byte,
// and a backslash before any other character as that character.
func pyUnquote(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// bodyCredentials reads a request body of up to the limit for
// credentials and puts it back as it was. It undoes gzip and deflate
// content encodings (any chain of them), reads the text as UTF-8, UTF-16
// or UTF-32 (by byte-order mark, by the zero bytes of its first
// characters as Python's json and Flask detect them, or by a charset
// parameter), and then takes every reading whatever the declared type:
// url-encoded pairs, JSON-like members (see jsonMembers), and multipart
// fields. It returns false when the body could not be examined in full:
// larger than the limit, or in an encoding it cannot undo.
func (e *extractor) bodyCredentials(x *extraction, r *http.Request) bool {
	if r.ContentLength > e.limit {
		return false
	}
	orig := r.Body
	raw, err := io.ReadAll(io.LimitReader(orig, e.limit+1))
	if err != nil || int64(len(raw)) > e.limit {
		// Too big, or the client broke off: pass on what was read and
		// the rest as it comes.
		r.Body = readCloser{io.MultiReader(bytes.NewReader(raw), orig), orig}
		return false
	}
	r.Body = readCloser{bytes.NewReader(raw), orig}
	if len(raw) == 0 {
		return true
	}
	data, ok := e.decodeContent(raw, r.Header.Values("Content-Encoding"))
	if !ok {
		return false
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	text := bodyText(data, params["charset"])
	e.textCredentials(x, text)
	if strings.HasPrefix(mt, "multipart/") || bytes.HasPrefix(bytes.TrimLeft(data, "\r\n"), []byte("--")) {
		e.multipartCredentials(x, data, params["boundary"])
	}
	return true
}

// textCredentials takes every reading of a decoded body: the whole of it
// (an app may read a raw body as a token), url-encoded pairs, and every
// string of JSON-like text.
func (e *extractor) textCredentials(x *extraction, text []byte) {
	trimmed := string(bytes.TrimSpace(text))
	x.add(srcBody, credValue, trimmed)
	e.formCredentials(x, srcBody, trimmed)
	jsonMembers(text, func(kind credKind, v string) {
		x.add(srcBody, kind, v)
		if !utf8.ValidString(v) {
			// Decoders replace each bad byte (Go) or each maximal bad
			// sequence (JavaScript) with U+FFFD.
			x.add(srcBody, kind, replaceEachInvalidByte(v))
			x.add(srcBody, kind, strings.ToValidUTF8(v, "\uFFFD"))
		}
	})
}

func replaceEachInvalidByte(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // ranging yields utf8.RuneError for each bad byte
	}
	return b.String()
}

// decodeContent undoes the content codings of a body, last applied first.
// Both zlib-wrapped and raw deflate are tried for "deflate", as servers
// differ. The decoded body is bounded (against decompression bombs).
func (e *extractor) decodeContent(data []byte, header []string) ([]byte, bool) {
	var codings []string
	for _, h := range header {
		for c := range strings.SplitSeq(h, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	if len(codings) > 3 {
		return nil, false
	}
	for i := len(codings) - 1; i >= 0; i-- {
		var out []byte
		var ok bool
		switch codings[i] {
		case "gzip", "x-gzip":
			out, ok = e.inflate(data, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) })
		case "deflate":
			out, ok = e.inflate(data, func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) })
			if !ok {
				out, ok = e.inflate(data, func(r io.Reader) (io.Reader, error) { return flate.NewReader(r), nil })
			}
		}
		if !ok {
			return nil, false
		}
		data = out
	}
	return data, true
}

func (e *extractor) inflate(data []byte, open func(io.Reader) (io.Reader, error)) ([]byte, bool) {
	zr, err := open(bytes.NewReader(data))
	if err != nil {
		return nil, false
	}
	out, err := io.ReadAll(io.LimitReader(zr, e.maxInflation+1))
	if err != nil || int64(len(out)) > e.maxInflation {
		return nil, false
	}
	return out, true
}

// bodyText returns a body as UTF-8 text. It detects UTF-32 and UTF-16 as
// Python's json.detect_encoding does (byte-order mark, else the zero
// bytes among the first four), and honours a charset parameter naming
// either; anything else is taken as it is.
func bodyText(b []byte, charset string) []byte {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		return b[3:]
	case bytes.HasPrefix(b, []byte{0x00, 0x00, 0xFE, 0xFF}):
		return utf32ToUTF8(b[4:], true)
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE, 0x00, 0x00}):
		return utf32ToUTF8(b[4:], false)
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		return utf16ToUTF8(b[2:], true)
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		return utf16ToUTF8(b[2:], false)
	}
	switch cs := strings.ToLower(charset); {
	case cs == "utf-32be" || cs == "utf-32" && len(b) > 0 && b[0] == 0:
		return utf32ToUTF8(b, true)
	case cs == "utf-32le" || cs == "utf-32":
		return utf32ToUTF8(b, false)
	case cs == "utf-16be" || cs == "utf-16" && len(b) > 0 && b[0] == 0:
		return utf16ToUTF8(b, true)
	case cs == "utf-16le" || cs == "utf-16":
		return utf16ToUTF8(b, false)
	}
	if len(b) >= 4 {
		switch {
		case b[0] == 0 && b[1] == 0:
			return utf32ToUTF8(b, true)
		case b[0] == 0:
			return utf16ToUTF8(b, true)
		case b[1] == 0 && b[2] == 0 && b[3] == 0:
			return utf32ToUTF8(b, false)
		case b[1] == 0:
			return utf16ToUTF8(b, false)
		}
	} else if len(b) >= 2 {
		switch {
		case b[0] == 0:
			return utf16ToUTF8(b, true)
		case b[1] == 0:
			return utf16ToUTF8(b, false)
		}
	}
	return b
}

func utf16ToUTF8(b []byte, bigEndian bool) []byte {
	units := make([]uint16, len(b)/2)
	for i := range units {
		if bigEndian {
			units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			units[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	return []byte(string(utf16.Decode(units)))
}

func utf32ToUTF8(b []byte, bigEndian bool) []byte {
	out := make([]byte, 0, len(b)/4)
	for i := 0; i+4 <= len(b); i += 4 {
		var r rune
		if bigEndian {
			r = rune(b[i])<<24 | rune(b[i+1])<<16 | rune(b[i+2])<<8 | rune(b[i+3])
		} else {
			r = rune(b[i+3])<<24 | rune(b[i+2])<<16 | rune(b[i+1])<<8 | rune(b[i])
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

// multipartCredentials reads the parts of a multipart body: with Go's
// reader, each part whose name stands for a credential as that
// credential, and every part's value by value and as text (a part may
// hold JSON or a form). Go's reader refuses parts that PHP and Rack
// accept (a part-header line without a colon, a name parameter in
// another case, a boundary it does not expect) and ends at the first it
// refuses, so a lenient scan of the text follows, whatever Go's reader
// made of it: see multipartScan.
func (e *extractor) multipartCredentials(x *extraction, data []byte, boundary string) {
	if boundary != "" {
		mr := multipart.NewReader(bytes.NewReader(data), boundary)
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			v, err := io.ReadAll(io.LimitReader(p, e.limit))
			if err != nil {
				break
			}
			if strings.EqualFold(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")), "base64") {
				// Django decodes such a part; Go's reader does not.
				if dec, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(v)), "")); err == nil {
					v = dec
				}
			}
			if kind, ok := credentialName(p.FormName()); ok {
				x.add(srcBody, kind, string(v))
				x.add(srcBody, kind, strings.TrimSpace(string(v)))
			}
			if len(v) > 0 {
				e.textCredentials(x, v)
			}
		}
	}
	e.multipartScan(x, string(data), boundary)
}

// multipartScan reads multipart text as the most lenient parsers do. A
// part starts after any line that begins with "--" (the declared
// boundary or not: PHP and Rack differ on what they take as one); its
// header lines run to the first blank line, each read whatever its form
// (a line without a colon is skipped, as PHP skips it), and its value
// from there to the line break before the next boundary line. Every
// value is read by value and as text, and a part whose name parameter
// (found in any case, quoted or not) stands for a credential is read as
// that credential.
func (e *extractor) multipartScan(x *extraction, text, boundary string) {
	delim := "\n--"
	if boundary != "" && strings.Contains(text, "--"+boundary) {
		delim = "\n--" + boundary
	}
	text = "\n" + text
	for {
		i := strings.Index(text, delim)
		if i < 0 {
			return
		}
		text = text[i+len(delim):]
		// The rest of the boundary line.
		nl := strings.IndexByte(text, '\n')
		if nl < 0 {
			return
		}
		part := text[nl+1:]
		end := strings.Index(part, delim)
		if end >= 0 {
			part = part[:end]
		}
		unterminated := end < 0
		var hdr, val string
		crlf, lf := strings.Index(part, "\r\n\r\n"), strings.Index(part, "\n\n")
		switch {
		case crlf >= 0 && (lf < 0 || crlf < lf):
			hdr, val = part[:crlf], part[crlf+4:]
		case lf >= 0:
			hdr, val = part[:lf], part[lf+2:]
		default:
			continue
		}
		val = strings.TrimSuffix(val, "\r")
		kind, named := credentialName(partName(hdr))
		if named {
			x.add(srcBody, kind, val)
			x.add(srcBody, kind, strings.TrimSpace(val))
		}
		x.add(srcBody, credValue, val)
		if unterminated {
			heldBack(x, val, kind, named, len(boundary))
		}
		if len(val) >= minValueLen && len(val) <= 4096 {
			// Values of a part's own fields (a JSON or url-encoded
			// part); a large part (a file) is read whole above.
			e.textCredentials(x, []byte(val))
		}
		for line := range strings.SplitSeq(hdr, "\n") {
			if _, v, ok := strings.Cut(line, ":"); ok {
				headerValues(x, srcBody, strings.TrimSpace(v))
			}
		}
	}
}

// heldBack reads the value of a last part that no boundary line ends as
// a streaming parser may hand it to an app: without the tail it held
// back in case that tail begins a boundary (Mojolicious keeps the last
// len(boundary)+8 bytes, and hands an app a token followed by that many
// bytes as the bare token). Every such prefix is read, down to
// len(boundary)+16 bytes shorter: a few dozen hashes, and only for a
// body no well-formed client sends.
func heldBack(x *extraction, val string, kind credKind, named bool, boundary int) {
	if !named {
		kind = credValue
	}
	for k := 1; k <= boundary+16 && k < len(val); k++ {
		x.add(srcBody, kind, val[:len(val)-k])
	}
}

// partName returns the name parameter of a part's headers, found in any
// case, quoted or not.
func partName(hdr string) string {
	lower := strings.ToLower(hdr)
	for i := 0; ; {
		j := strings.Index(lower[i:], "name=")
		if j < 0 {
			return ""
		}
		i += j + len("name=")
		if j := i - len("name=") - 1; j >= 0 && !strings.ContainsRune(" \t;:", rune(lower[j])) {
			continue // filename=, or another parameter ending in name
		}
		rest := hdr[i:]
		if strings.HasPrefix(rest, `"`) {
			name, _, _ := strings.Cut(rest[1:], `"`)
			return name
		}
		return rest[:strings.IndexFunc(rest+";", func(r rune) bool { return r == ';' || r == '\r' || r == '\n' || r == ' ' })]
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}
