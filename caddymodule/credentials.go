package caddymodule

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Finding every credential a request carries, the way the apps behind the
// proxy might find them. The guard must see at least what any upstream
// framework would accept: an upstream that reads a credential the guard
// missed would let a revoked one through. Seeing more (a candidate no
// upstream reads) only ever blocks more.

// bearerRest returns what follows a Bearer or DPoP scheme (RFC 6750, RFC
// 9449) in one Authorization header value, the scheme separated by spaces
// or tabs as frameworks that split on any whitespace accept; "" for any
// other scheme.
func bearerRest(v string) string {
	v = strings.TrimLeft(v, " \t")
	i := indexSpace(v)
	if i < 0 {
		return ""
	}
	if scheme := v[:i]; !strings.EqualFold(scheme, "Bearer") && !strings.EqualFold(scheme, "DPoP") {
		return ""
	}
	return strings.Trim(v[i:], " \t")
}

// nextField splits s at its first run of spaces or tabs. Every field after
// the scheme is a candidate token: upstreams differ on which they take.
func nextField(s string) (field, rest string) {
	i := indexSpace(s)
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// indexSpace is strings.IndexAny(s, " \t") with two vectorised byte
// searches: it scans every token of every request.
func indexSpace(s string) int {
	sp, tab := strings.IndexByte(s, ' '), strings.IndexByte(s, '\t')
	if sp < 0 || (tab >= 0 && tab < sp) {
		return tab
	}
	return sp
}

// hasCookieNamed reports whether any Cookie header may hold the cookie,
// without parsing anything.
func hasCookieNamed(r *http.Request, name string) bool {
	for _, line := range r.Header["Cookie"] {
		if strings.Contains(line, name) {
			return true
		}
	}
	return false
}

// cookieValues returns every value a cookie of that name may be read as:
// each occurrence (a client may send several), with spaces or tabs around
// name and value ignored as parsers ignore them, quoted and unquoted, and
// percent-decoded as some frameworks decode cookie values.
func cookieValues(r *http.Request, name string) []string {
	var out []string
	add := func(v string) {
		if v != "" {
			out = append(out, v)
		}
	}
	for _, line := range r.Header["Cookie"] {
		if !strings.Contains(line, name) {
			continue
		}
		for part := range strings.SplitSeq(line, ";") {
			k, v, ok := strings.Cut(part, "=")
			if !ok || strings.Trim(k, " \t") != name {
				continue
			}
			v = strings.Trim(v, " \t")
			add(v)
			unq := strings.Trim(v, `"`)
			if unq != v {
				add(unq)
			}
			if dec, err := url.PathUnescape(unq); err == nil && dec != unq {
				add(dec)
			}
		}
	}
	return out
}

// queryCredentials returns the access_token query parameter (RFC 6750
// section 2.3) and refresh-token-named ones. Malformed pairs are skipped,
// the others kept, as frameworks do.
func queryCredentials(rawQuery string) (access, refresh []string) {
	if !containsFold(rawQuery, "token") {
		return nil, nil
	}
	vals, _ := url.ParseQuery(rawQuery)
	return formCredentials(vals)
}

func formCredentials(vals url.Values) (access, refresh []string) {
	for k, vs := range vals {
		switch {
		case k == "access_token":
			access = append(access, vs...)
		case isRefreshKey(k):
			refresh = append(refresh, vs...)
		}
	}
	return access, refresh
}

// isRefreshKey reports whether a field name names a refresh token:
// refreshToken or refresh_token, in any letter case.
func isRefreshKey(k string) bool {
	return len(k) <= len("refresh_token") && strings.EqualFold(strings.ReplaceAll(k, "_", ""), "refreshtoken")
}

// containsFold is strings.Contains ignoring ASCII case, without
// allocating: it runs on every request with a query.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// bodyCredentials reads a request body of up to limit bytes for
// credentials, and puts it back as it was: access_token form fields (RFC
// 6750 section 2.2), and refresh tokens (JSON members, form fields and
// multipart fields named refreshToken or refresh_token). It decodes gzip
// and deflate content encodings, UTF-16 and byte-order marks, and falls
// back to a pattern scan for JSON that Go's parser refuses but others
// accept (NaN, for one). inspected is false when the body could not be
// read in full: larger than limit, or in an encoding it cannot decode.
func bodyCredentials(r *http.Request, limit int64) (access, refresh []string, inspected bool) {
	if r.ContentLength > limit {
		return nil, nil, false
	}
	orig := r.Body
	raw, err := io.ReadAll(io.LimitReader(orig, limit+1))
	if err != nil || int64(len(raw)) > limit {
		// Too big, or the client broke off: pass on what was read and
		// the rest as it comes.
		r.Body = readCloser{io.MultiReader(bytes.NewReader(raw), orig), orig}
		return nil, nil, false
	}
	r.Body = readCloser{bytes.NewReader(raw), orig}
	if len(raw) == 0 {
		return nil, nil, true
	}

	data := raw
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip", "deflate":
		var zr io.Reader
		if ce == "deflate" {
			zr, err = zlib.NewReader(bytes.NewReader(raw))
		} else {
			zr, err = gzip.NewReader(bytes.NewReader(raw))
		}
		if err != nil {
			return nil, nil, false
		}
		// Bounded, against decompression bombs.
		data, err = io.ReadAll(io.LimitReader(zr, 4*limit+1))
		if err != nil || int64(len(data)) > 4*limit {
			return nil, nil, false
		}
	default:
		return nil, nil, false
	}

	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		return multipartCredentials(data, params["boundary"], limit)
	}
	// Whatever the declared type, try both readings: an upstream may
	// parse a body as JSON regardless of its Content-Type. A reading that
	// does not apply finds nothing.
	if vals, _ := url.ParseQuery(string(data)); len(vals) > 0 {
		access, refresh = formCredentials(vals)
	}
	refresh = append(refresh, jsonRefreshTokens(data)...)
	return access, refresh, true
}

func multipartCredentials(data []byte, boundary string, limit int64) (access, refresh []string, inspected bool) {
	if boundary == "" {
		return nil, nil, false
	}
	mr := multipart.NewReader(bytes.NewReader(data), boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return access, refresh, true
		}
		if err != nil {
			return access, refresh, false
		}
		name := p.FormName()
		if p.FileName() != "" || (name != "access_token" && !isRefreshKey(name)) {
			continue
		}
		v, err := io.ReadAll(io.LimitReader(p, limit))
		if err != nil {
			return access, refresh, false
		}
		if name == "access_token" {
			access = append(access, string(v))
		} else {
			refresh = append(refresh, string(v))
		}
	}
}

// jsonRefreshTokens returns the string values of every member named
// refreshToken or refresh_token (any case, escapes resolved, any depth,
// every occurrence: duplicates are all seen, where decoding into a map
// would keep one and parsers disagree on which). Where Go's parser stops
// (NaN, comments...), a pattern scan of the rest takes over.
func jsonRefreshTokens(data []byte) []string {
	text := jsonText(data)
	trimmed := bytes.TrimSpace(text)
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') {
		return nil
	}
	type frame struct{ obj, expectKey, match bool }
	var (
		out   []string
		stack []frame
	)
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].expectKey, stack[n-1].match = true, false
		}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			return append(out, scanRefreshTokens(trimmed)...)
		}
		top := len(stack) - 1
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				stack = append(stack, frame{obj: v == '{', expectKey: true})
			} else if top >= 0 {
				stack = stack[:top]
				valueDone()
			}
		case string:
			if top >= 0 && stack[top].obj && stack[top].expectKey {
				stack[top].expectKey, stack[top].match = false, isRefreshKey(v)
				continue
			}
			if top >= 0 && stack[top].match && v != "" {
				out = append(out, v)
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

// jsonText returns a JSON document as UTF-8: a UTF-8 byte-order mark is
// dropped, and UTF-16 (with a byte-order mark, or recognised by its zero
// bytes, as RFC 4627 and Python's json do) is decoded.
func jsonText(b []byte) []byte {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		return b[3:]
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		return utf16ToUTF8(b[2:], true)
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		return utf16ToUTF8(b[2:], false)
	case len(b) >= 2 && b[0] == 0 && b[1] != 0:
		return utf16ToUTF8(b, true)
	case len(b) >= 2 && b[0] != 0 && b[1] == 0:
		return utf16ToUTF8(b, false)
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

var (
	// refreshMember matches a member named like a refresh token and its
	// string value, in JSON-like text that a strict parser refused.
	refreshMember = regexp.MustCompile(`(?i)["']?refresh_?token["']?\s*:\s*"((?:[^"\\]|\\.)*)"`)
	// asciiEscape matches \u00XX escapes, resolved before the scan so an
	// escaped member name cannot hide from it.
	asciiEscape = regexp.MustCompile(`\\u00([0-7][0-9a-fA-F])`)
)

// scanRefreshTokens is the fallback of jsonRefreshTokens.
func scanRefreshTokens(text []byte) []string {
	text = asciiEscape.ReplaceAllFunc(text, func(m []byte) []byte {
		n, err := strconv.ParseUint(string(m[4:]), 16, 8)
		if err != nil || n == '"' || n == '\\' {
			return m // keep escaped quotes and backslashes escaped
		}
		return []byte{byte(n)}
	})
	var out []string
	for _, m := range refreshMember.FindAllSubmatch(text, -1) {
		var v string
		if json.Unmarshal(append(append([]byte{'"'}, m[1]...), '"'), &v) == nil && v != "" {
			out = append(out, v)
		}
	}
	return out
}

type readCloser struct {
	io.Reader
	io.Closer
}
