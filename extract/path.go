package extract

import (
	"net/url"
	"strings"
)

// pathCredentials reads the path: every segment percent-decoded (a
// route parameter such as /reset/<token> is a value an app is handed),
// and every path parameter of every segment (";name=value", as servlet
// containers read ";jsessionid=<id>"). A path parameter whose name is a
// configured cookie's, in any case, is read as that credential at any
// length.
func (e *Extractor) pathCredentials(x *Extraction, u *url.URL) {
	p := u.RawPath
	if p == "" {
		p = u.Path
	}
	if len(p) < MinValueLen && strings.IndexByte(p, ';') < 0 {
		return // the commonest path: short, no parameters
	}
	for seg := range strings.SplitSeq(p, "/") {
		if len(seg) == 0 {
			continue
		}
		x.add(SourcePath, Value, seg)
		x.add(SourcePath, Value, LenientUnescape(seg, false))
		if strings.IndexByte(seg, ';') < 0 {
			continue
		}
		for i, param := range strings.Split(seg, ";") {
			x.add(SourcePath, Value, LenientUnescape(param, false))
			if i == 0 {
				continue
			}
			name, val, _ := strings.Cut(param, "=")
			val = LenientUnescape(val, false)
			if e.namesCookie(LenientUnescape(name, false)) {
				x.add(SourcePath, Refresh, val)
			}
			x.add(SourcePath, Value, val)
		}
	}
}
