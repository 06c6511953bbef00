package extract

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/multipart"
	"strings"
)

// multipartCredentials reads the parts of a multipart body: with Go's
// reader, each part whose name stands for a credential as that
// credential, and every part's value by value and as text (a part may
// hold JSON or a form). Go's reader refuses parts that PHP and Rack
// accept (a part-header line without a colon, a name parameter in
// another case, a boundary it does not expect) and ends at the first it
// refuses, so a lenient scan of the text follows, whatever Go's reader
// made of it: see multipartScan.
func (e *Extractor) multipartCredentials(x *Extraction, data []byte, boundary string) {
	if boundary != "" {
		mr := multipart.NewReader(bytes.NewReader(data), boundary)
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			v, err := io.ReadAll(io.LimitReader(p, e.Limit))
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
				x.add(SourceBody, kind, string(v))
				x.add(SourceBody, kind, strings.TrimSpace(string(v)))
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
func (e *Extractor) multipartScan(x *Extraction, text, boundary string) {
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
			x.add(SourceBody, kind, val)
			x.add(SourceBody, kind, strings.TrimSpace(val))
		}
		x.add(SourceBody, Value, val)
		if unterminated {
			heldBack(x, val, kind, named, len(boundary))
		}
		if len(val) >= MinValueLen && len(val) <= 4096 {
			// Values of a part's own fields (a JSON or url-encoded
			// part); a large part (a file) is read whole above.
			e.textCredentials(x, []byte(val))
		}
		for line := range strings.SplitSeq(hdr, "\n") {
			if _, v, ok := strings.Cut(line, ":"); ok {
				headerValues(x, SourceBody, strings.TrimSpace(v))
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
func heldBack(x *Extraction, val string, kind Kind, named bool, boundary int) {
	if !named {
		kind = Value
	}
	for k := 1; k <= boundary+16 && k < len(val); k++ {
		x.add(SourceBody, kind, val[:len(val)-k])
	}
}

// partName returns the name parameter of a part's headers, found in any
// case, quoted or not. Only ASCII letters are folded, so that an index
// into the folded copy is an index into hdr: strings.ToLower changes the
// length of invalid UTF-8 and of some letters.
func partName(hdr string) string {
	lower := asciiLower(hdr)
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

// asciiLower folds A-Z and leaves every other byte as it is, keeping the
// length.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
