package extract

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// bodyCredentials reads a request body of up to the limit for
// credentials and puts it back as it was. It undoes gzip and deflate
// content encodings (any chain of them), reads the text as UTF-8, UTF-16
// or UTF-32 (by byte-order mark, by the zero bytes of its first
// characters as Python's json and Flask detect them, or by a charset
// parameter), and then takes every reading whatever the declared type:
// url-encoded pairs, JSON-like members (see jsonMembers), and multipart
// fields. It returns false when the body could not be examined in full:
// larger than the limit, or in an encoding it cannot undo.
func (e *Extractor) bodyCredentials(x *Extraction, r *http.Request) bool {
	if r.ContentLength > e.Limit {
		return false
	}
	orig := r.Body
	raw, err := io.ReadAll(io.LimitReader(orig, e.Limit+1))
	if err != nil || int64(len(raw)) > e.Limit {
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
func (e *Extractor) textCredentials(x *Extraction, text []byte) {
	trimmed := string(bytes.TrimSpace(text))
	x.add(SourceBody, Value, trimmed)
	e.formCredentials(x, SourceBody, trimmed)
	jsonMembers(text, func(kind Kind, v string) {
		x.add(SourceBody, kind, v)
		if !utf8.ValidString(v) {
			// Decoders replace each bad byte (Go) or each maximal bad
			// sequence (JavaScript) with U+FFFD.
			x.add(SourceBody, kind, replaceEachInvalidByte(v))
			x.add(SourceBody, kind, strings.ToValidUTF8(v, "\uFFFD"))
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
func (e *Extractor) decodeContent(data []byte, header []string) ([]byte, bool) {
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

func (e *Extractor) inflate(data []byte, open func(io.Reader) (io.Reader, error)) ([]byte, bool) {
	zr, err := open(bytes.NewReader(data))
	if err != nil {
		return nil, false
	}
	out, err := io.ReadAll(io.LimitReader(zr, e.MaxInflation+1))
	if err != nil || int64(len(out)) > e.MaxInflation {
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

type readCloser struct {
	io.Reader
	io.Closer
}
