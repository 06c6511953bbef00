// Package revocation is the core of caddy-revocation: the identities a
// request can carry, the denylist that records which of them are revoked,
// the stores that keep that denylist (embedded, or shared through Redis),
// token verification, and the meaning of each kind of revocation.
//
// It knows nothing of Caddy or of the HTTP dialects served in front of it;
// package caddymodule translates between the two.
package revocation

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Kind says what a denylist entry revokes. Its value is the byte stored in
// the last position of every Key, so a key carries its own kind.
type Kind byte

// The kinds of denylist entry.
const (
	// KindToken revokes one exact token (access or refresh), by hash.
	KindToken Kind = 't'
	// KindJTI revokes every token carrying one jti claim.
	KindJTI Kind = 'j'
	// KindSession revokes every token of one session of one subject.
	KindSession Kind = 's'
	// KindSubject revokes every token of one subject issued at or before a
	// moment, except (optionally) the tokens of one kept session.
	KindSubject Kind = 'u'
	// KindGlobal revokes every token of every subject issued at or before
	// a moment (the global cutoff, for incident response). There is one
	// such entry at most, under GlobalKey().
	KindGlobal Kind = 'g'
)

// Kinds lists every kind, in the order reports use.
var Kinds = []Kind{KindToken, KindJTI, KindSession, KindSubject, KindGlobal}

// String names the kind as logs, metrics and the admin API spell it.
func (k Kind) String() string {
	switch k {
	case KindToken:
		return "token"
	case KindJTI:
		return "jti"
	case KindSession:
		return "session"
	case KindSubject:
		return "subject"
	case KindGlobal:
		return "global"
	}
	return "unknown"
}

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindToken, KindJTI, KindSession, KindSubject, KindGlobal:
		return true
	}
	return false
}

// Key identifies one denylist entry: the first 15 bytes of a SHA-256 over
// the identity (domain-separated by kind), followed by the kind itself.
// 120 bits keep accidental collisions out of reach at any realistic size,
// and the fixed 16 bytes keep the in-memory map small and flat.
//
// A Key never reveals the raw token, jti, session or subject it stands for.
type Key [16]byte

// Kind returns the kind the key was derived for.
func (k Key) Kind() Kind { return Kind(k[15]) }

// IsZero reports whether k is the zero key, which stands for "absent".
func (k Key) IsZero() bool { return k == Key{} }

// String renders the key as 32 lowercase hex digits, the form stored in
// Redis and shown in logs.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// ParseKey decodes the 32-hex-digit form of a key.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 2*len(k) {
		return k, fmt.Errorf("key %q: want %d hex digits", s, 2*len(k))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("key %q: %w", s, err)
	}
	if !k.Kind().Valid() {
		return k, fmt.Errorf("key %q: unknown kind %q", s, k[15])
	}
	return k, nil
}

// TokenHash is the SHA-256 of a token as the denylist knows it. It is the
// only form in which a token is kept, compared or logged.
type TokenHash [32]byte

// Domain tags keep the two ways of hashing a token apart: the signed part
// of a JWS is never hashed to the same value as an opaque string, so that
// knowing someone's header.payload (which is not secret-looking and may be
// logged) gives no way to name their token as an opaque credential.
const (
	jwsDomain = "caddy-revocation/jws\x00"
	rawDomain = "caddy-revocation/raw\x00"
)

// HashToken hashes a raw token. For a JWS (three dot-separated parts whose
// header is a JSON object naming an alg) only the signed part is hashed,
// in its canonical form (header and payload decoded leniently and encoded
// again without padding): the signature covers that content, while every
// segment can be re-encoded without the key (padding, the other base64
// alphabet, unused bits, ECDSA's (r, n-s)) and lenient libraries still
// accept the result. Every encoding of one signed token is thus one token,
// and revoking it revokes them all. Anything else is hashed whole, as
// RawHash does.
func HashToken(raw string) TokenHash {
	j, _ := readJWS(raw)
	return j.hash(raw)
}

// RawHash hashes the exact string of a credential: the identity of an
// opaque token, and of a JWS that did not verify, which may revoke only
// itself (anybody can write a stranger's header and payload beside a
// signature of their own).
func RawHash(raw string) TokenHash { return domainHash(rawDomain, raw) }

// IsJWS reports whether HashToken reads raw as a JWS.
func IsJWS(raw string) bool {
	j, _ := readJWS(raw)
	return j.canon != ""
}

// domainHash is SHA-256 of domain+s, without a heap copy for strings of
// ordinary size.
func domainHash(domain, s string) TokenHash {
	if len(domain)+len(s) <= 256 {
		// Most values are short: a small buffer is zeroed in a fraction
		// of the time of the large one.
		var buf [256]byte
		return sha256.Sum256(append(append(buf[:0], domain...), s...))
	}
	var buf [2048]byte
	if len(domain)+len(s) <= len(buf) {
		return sha256.Sum256(append(append(buf[:0], domain...), s...))
	}
	return sha256.Sum256([]byte(domain + s))
}

// Key returns the denylist key of the exact token.
func (h TokenHash) Key() Key {
	var k Key
	copy(k[:15], h[:15])
	k[15] = byte(KindToken)
	return k
}

// Short is a 12-hex-digit prefix of the hash: enough to correlate log lines
// about one token, far too little to recover or replay it.
func (h TokenHash) Short() string { return hex.EncodeToString(h[:6]) }

// TokenKey returns the denylist key of one exact raw token.
func TokenKey(raw string) Key { return HashToken(raw).Key() }

// JTIKey returns the unkeyed denylist key of a jti (Hasher.JTI keys it). A jti is globally unique by
// definition (RFC 7519 section 4.1.7), and callers only ever revoke the jti
// of a token they have proven they hold, so it is not scoped further.
func JTIKey(jti string) Key { return derive(KindJTI, jti, "") }

// SessionKey returns the unkeyed denylist key of a session, scoped to its subject:
// revoking session "abc" of subject A never touches session "abc" of B.
func SessionKey(subject, sid string) Key { return derive(KindSession, subject, sid) }

// IssuerSessionKey returns the unkeyed denylist key of an identity provider's
// session, scoped to the issuer rather than to a subject: an OpenID
// Connect sid is unique per issuer, and a back-channel logout token may
// name only the sid. It is a session entry (KindSession), derived in a
// domain of its own so that it never meets a SessionKey.
func IssuerSessionKey(issuer, sid string) Key {
	k := derive(issuerSessionDomain, issuer, sid)
	k[15] = byte(KindSession)
	return k
}

// issuerSessionDomain separates IssuerSessionKey from the kinds' own
// derivations; it is never stored as a kind.
const issuerSessionDomain Kind = 'i'

// SubjectKey returns the unkeyed denylist key of a subject (Hasher.Subject
// keys it).
func SubjectKey(subject string) Key { return derive(KindSubject, subject, "") }

// GlobalKey returns the key of the one global cutoff entry.
func GlobalKey() Key { return derive(KindGlobal, "", "") }

// derive hashes kind, a and b with unambiguous separators. The lengths are
// written out so that ("ab","c") and ("a","bc") can never meet. It is the
// unkeyed derivation; Hasher.derive is the keyed one.
func derive(kind Kind, a, b string) Key {
	h := sha256.New()
	hdr := deriveHeader(kind, a, b)
	h.Write(hdr[:])
	h.Write([]byte(a))
	h.Write([]byte(b))
	var sum [32]byte
	h.Sum(sum[:0])
	var k Key
	copy(k[:15], sum[:15])
	k[15] = byte(kind)
	return k
}

// deriveHeader is the framing both derivations hash first: the kind and
// the two lengths.
func deriveHeader(kind Kind, a, b string) [1 + 2*8]byte {
	var hdr [1 + 2*8]byte
	hdr[0] = byte(kind)
	binary.BigEndian.PutUint64(hdr[1:], uint64(len(a)))
	binary.BigEndian.PutUint64(hdr[9:], uint64(len(b)))
	return hdr
}
