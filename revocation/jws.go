package revocation

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reading a compact JWS the way the most lenient mainstream library
// would. The guard must find the claims of every token that any upstream
// accepts: Node's jose and Buffer, Python's base64 (as PyJWT uses it) and
// go-jose v3 accept segments with '=' padding, in the standard alphabet
// ('+' and '/'), with unused trailing bits set, or with characters outside
// the alphabet (whitespace) that they skip. A token read more leniently
// than any library reads it can only be blocked more, never less: claims
// found here are used to block, never to let anything through.

// maxTokenLen bounds what is decoded of one token: far above any real JWT,
// small enough that a request cannot make the guard decode megabytes.
const maxTokenLen = 16 << 10

// segments splits a token into its three dot-separated parts, after
// trimming whitespace around it. ok is false for anything else.
func segments(raw string) (hdr, payload, sig string, ok bool) {
	raw = strings.TrimFunc(raw, IsSpaceLike)
	if len(raw) > maxTokenLen {
		return "", "", "", false
	}
	hdr, rest, ok1 := strings.Cut(raw, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(sig, '.') >= 0 {
		return "", "", "", false
	}
	return hdr, payload, sig, true
}

// lenientBase64 decodes one segment as the most lenient library would:
// either alphabet, characters outside it skipped, decoding stopped at the
// first '=', a dangling sixth of a byte dropped, unused bits ignored.
// alt is a second reading when '=' appears before the end (a decoder that
// skips every '=' reads on past it); it is nil when there is none.
func lenientBase64(seg string) (b, alt []byte, ok bool) {
	clean := func(s string) []byte {
		out := make([]byte, 0, len(s))
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
				out = append(out, c)
			case c == '+':
				out = append(out, '-')
			case c == '/':
				out = append(out, '_')
			}
		}
		if len(out)%4 == 1 {
			out = out[:len(out)-1]
		}
		return out
	}
	decode := func(c []byte) ([]byte, bool) {
		out := make([]byte, base64.RawURLEncoding.DecodedLen(len(c)))
		n, err := base64.RawURLEncoding.Decode(out, c)
		return out[:n], err == nil
	}
	head, tail, padded := strings.Cut(seg, "=")
	if b, ok = decode(clean(head)); !ok {
		return nil, nil, false
	}
	if padded && strings.Trim(tail, "= \t\r\n") != "" {
		if a, aok := decode(clean(strings.ReplaceAll(seg, "=", ""))); aok && !bytes.Equal(a, b) {
			alt = a
		}
	}
	return b, alt, true
}

// jws is a compact JWS, or anything else with three dot-separated parts,
// read once and leniently: what the token's hashes and its claims are
// derived from.
type jws struct {
	// payload is the decoded payload; payloadAlt its other reading when
	// a '=' stands before the segment's end (nil when there is none).
	payload, payloadAlt []byte
	// canon is the canonical form of the signed part (header and payload
	// decoded leniently and encoded again without padding, the form
	// go-jose signs and verifies), "" when the header is not a JSON object
	// naming an alg; canonAlt is that of the other reading, if any.
	canon, canonAlt string
}

// readJWS reads raw as a compact JWS. ok is false when it has not three
// parts or its payload is not base64.
func readJWS(raw string) (j jws, ok bool) {
	h, p, _, ok := segments(raw)
	if !ok {
		return jws{}, false
	}
	if j.payload, j.payloadAlt, ok = lenientBase64(p); !ok {
		return jws{}, false
	}
	hdr, hdrAlt, ok := lenientBase64(h)
	if !ok || !namesAlg(hdr) {
		return j, true
	}
	enc := base64.RawURLEncoding.EncodeToString
	j.canon = enc(hdr) + "." + enc(j.payload)
	if hdrAlt != nil || j.payloadAlt != nil {
		if hdrAlt == nil {
			hdrAlt = hdr
		}
		payloadAlt := j.payloadAlt
		if payloadAlt == nil {
			payloadAlt = j.payload
		}
		if namesAlg(hdrAlt) {
			j.canonAlt = enc(hdrAlt) + "." + enc(payloadAlt)
		}
	}
	return j, true
}

// hash is HashToken of raw, read as j.
func (j *jws) hash(raw string) TokenHash {
	if j.canon != "" {
		return domainHash(jwsDomain, j.canon)
	}
	return RawHash(raw)
}

// namesAlg reports whether a decoded JWS header is a JSON object with an
// alg member.
func namesAlg(hdr []byte) bool {
	var h map[string]json.RawMessage
	if json.Unmarshal(lenientJSON(hdr), &h) != nil {
		return false
	}
	_, ok := h["alg"]
	return ok
}

// lenientJSON rewrites the bare NaN, Infinity and -Infinity that Python's
// json accepts (and Go's refuses) as null, outside strings, so that Go's
// decoder reads what Python's reads. Other input is returned as it is.
func lenientJSON(b []byte) []byte {
	if !bytes.Contains(b, []byte("NaN")) && !bytes.Contains(b, []byte("Infinity")) {
		return b
	}
	out := make([]byte, 0, len(b))
	inStr, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			out = append(out, c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch {
		case c == '"':
			inStr = true
		case bytes.HasPrefix(b[i:], []byte("NaN")):
			out, i = append(out, "null"...), i+2
			continue
		case bytes.HasPrefix(b[i:], []byte("-Infinity")):
			out, i = append(out, "null"...), i+8
			continue
		case bytes.HasPrefix(b[i:], []byte("Infinity")):
			out, i = append(out, "null"...), i+7
			continue
		}
		out = append(out, c)
	}
	return out
}

// claimReadings are the values a payload gives each claim, as different
// libraries read it: every member whose name equals the claim, or matches
// it as Go's encoding/json matches struct fields (Unicode case folding, so
// "SUB" and "ſub" are read as sub by a struct-based reader). The last
// exact member is what most readers take; the others are alternates.
type claimReadings map[string][]json.RawMessage

// readPayload reads the members of a JWT payload that revocation cares
// about, leniently. ok is false when the payload is not a JSON object.
func readPayload(payload []byte, names ...string) (claimReadings, bool) {
	dec := json.NewDecoder(bytes.NewReader(lenientJSON(payload)))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	folded := make([]string, len(names))
	for i, n := range names {
		folded[i] = FoldName(n)
	}
	out := claimReadings{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		fk := FoldName(key)
		for i, n := range names {
			switch {
			case key == n:
				out[n] = append(out[n], v) // exact: last one is the primary
			case fk == folded[i]:
				out[n] = append([]json.RawMessage{v}, out[n]...) // folded: an alternate
			}
		}
	}
	return out, true
}

// strings returns every reading of a claim as a string, the primary (the
// last exact member) first. A value that is not a string is read as apps
// stringify it, in every way a mainstream language does: a number as its
// literal text, as JavaScript prints it (12345678901234567890 becomes
// "12345678901234567000") and as Go's %v prints a float64; true and false
// as words; an array or object as its compact JSON text, and an array's
// strings one by one (JavaScript's String(["a"]) is "a").
func (cr claimReadings) strings(name string) []string {
	vals := cr[name]
	var out []string
	for i := len(vals) - 1; i >= 0; i-- {
		for _, s := range claimStrings(vals[i]) {
			if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// claimStrings reads a claim value as the string identities apps see,
// the most common reading first.
func claimStrings(v json.RawMessage) []string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return nil
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil
		}
		return []string{s}
	case 't', 'f':
		return []string{string(v)}
	case 'n':
		return nil
	case '[', '{':
		var buf bytes.Buffer
		if json.Compact(&buf, v) != nil {
			return nil
		}
		out := []string{buf.String()}
		var elems []json.RawMessage
		if v[0] == '[' && json.Unmarshal(v, &elems) == nil {
			var parts []string
			for _, e := range elems {
				if ss := claimStrings(e); len(ss) > 0 {
					parts = append(parts, ss[0])
					out = append(out, ss[0])
				}
			}
			out = append(out, strings.Join(parts, ","))
		}
		if len(out) > maxAlternates+1 {
			out = out[:maxAlternates+1]
		}
		return out
	}
	lit := string(v)
	out := []string{lit}
	if i, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return append(out, strconv.FormatInt(i, 10))
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return out
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		out = append(out, strconv.FormatFloat(f, 'f', -1, 64)) // JavaScript
	} else {
		out = append(out, strconv.FormatFloat(f, 'g', -1, 64))
	}
	return append(out, fmt.Sprint(f)) // Go's %v of a float64
}

// FoldName folds a member name as Go's encoding/json does when it matches
// names to struct fields: each letter mapped to the smallest rune of its
// Unicode simple-folding orbit, so that "refreſh" (long s) and a KELVIN
// SIGN in place of k match the ASCII name. .NET's and Jackson's
// case-insensitive readers fold within the same orbits.
func FoldName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// IsSpaceLike reports whether r is whitespace to any mainstream parser:
// Go's unicode.IsSpace (which includes NO-BREAK SPACE and the other
// Unicode spaces) and the information separators 0x1C-0x1F that Python's
// str.split() also splits on.
func IsSpaceLike(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}
