// Package testbody encodes request bodies the way clients send them, for
// the tests of what the guard reads in a body: in a content coding, or in
// a Unicode encoding other than UTF-8.
package testbody

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"unicode/utf16"
)

// Compressed returns s in the content coding named "gzip", "zlib" or
// (any other name) "deflate".
func Compressed(coding, s string) string {
	var b bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "zlib":
		w = zlib.NewWriter(&b)
	default:
		w, _ = flate.NewWriter(&b, flate.DefaultCompression)
	}
	_, _ = io.WriteString(w, s)
	_ = w.Close()
	return b.String()
}

// UTF16 returns s in UTF-16, big- or little-endian, with or without its
// byte order mark.
func UTF16(s string, bigEndian, bom bool) string {
	var b []byte
	if bom {
		b = map[bool][]byte{true: {0xFE, 0xFF}, false: {0xFF, 0xFE}}[bigEndian]
	}
	for _, u := range utf16.Encode([]rune(s)) {
		if bigEndian {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	return string(b)
}

// UTF32 returns s in UTF-32, big- or little-endian, with or without its
// byte order mark.
func UTF32(s string, bigEndian, bom bool) string {
	var b []byte
	if bom {
		b = map[bool][]byte{true: {0, 0, 0xFE, 0xFF}, false: {0xFF, 0xFE, 0, 0}}[bigEndian]
	}
	for _, r := range s {
		if bigEndian {
			b = append(b, byte(r>>24), byte(r>>16), byte(r>>8), byte(r))
		} else {
			b = append(b, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
		}
	}
	return string(b)
}
