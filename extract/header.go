package extract

import (
	"encoding/base64"
	"strings"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// headerValues reads any header value by value: each whitespace-
// separated field (the whole value, when it has no whitespace), trimmed
// of list and parameter separators; within a field, each element of a
// comma- or semicolon-separated list and each name=value's value,
// unquoted, and decoded when it is a structured field byte sequence;
// and the user and password of a Basic credential. Only readings without
// whitespace can be credentials (ValueShaped), so a field shorter than
// MinValueLen, the commonest, costs one scan.
func headerValues(x *Extraction, source, v string) {
	if len(v) < MinValueLen {
		return // every reading is shorter
	}
	afterBasic := false
	for f := range SpaceLikeFields(v) {
		if afterBasic {
			basicValues(x, source, f)
		}
		afterBasic = len(f) == 5 && strings.EqualFold(f, "Basic")
		if len(f) < MinValueLen {
			continue
		}
		x.add(source, Value, f)
		if !strings.ContainsAny(f, ",;=\"") {
			continue
		}
		x.add(source, Value, strings.Trim(f, ",;"))
		x.add(source, Value, unquote(strings.Trim(f, ",;")))
		for part := range strings.FieldsFuncSeq(f, func(r rune) bool { return r == ',' || r == ';' }) {
			x.add(source, Value, part)
			x.add(source, Value, unquote(part))
			if _, val, ok := strings.Cut(part, "="); ok {
				structuredValue(x, source, val)
			}
		}
	}
}

// structuredValue adds the readings of the value of a name=value pair in
// a header: as it is, unquoted, and decoded when it is a structured
// field byte sequence (RFC 8941, base64 between colons).
func structuredValue(x *Extraction, source, val string) {
	x.add(source, Value, val)
	x.add(source, Value, unquote(val))
	if len(val) > 2 && val[0] == ':' && val[len(val)-1] == ':' {
		if dec, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1]); err == nil {
			x.add(source, Value, string(dec))
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

// HeaderNameKey normalises a header name as CGI, WSGI and Rack servers
// see it: letters in one case, '-' and '_' alike (both become '_' in
// HTTP_X_AUTH_TOKEN).
func HeaderNameKey(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// headerCredentials reads a custom credential header: its whole value
// trimmed, and the fields of a value written with a scheme.
func headerCredentials(x *Extraction, v string) {
	x.add(SourceHeader, Refresh, v)
	x.add(SourceHeader, Refresh, strings.TrimFunc(v, revocation.IsSpaceLike))
	if strings.IndexFunc(strings.TrimFunc(v, revocation.IsSpaceLike), revocation.IsSpaceLike) >= 0 {
		authorizationCredentials(x, v)
	}
}
