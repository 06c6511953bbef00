package revocation

import "sync/atomic"

// Credential is one raw token as this package knows it: its hashes, the
// denylist keys it answers to, and, for a JWT, its claims, verified or
// only decoded. It is the one model of a token: the Inspector reads one
// for each token the guard meets (and remembers it), the Revoker for each
// token an endpoint or an app's logout is handed, and both ask the
// denylist about it the same way (Denylist.CheckInfo).
type Credential struct {
	// ID holds the denylist keys of the token. Its claims-derived keys
	// come from verified claims when Verified, else from the unverified
	// payload: forged claims can only get a forger blocked, never let
	// anyone through, so they still count for blocking.
	ID Identity
	// Verified is true when the signature and claims checked out.
	Verified bool
	// Hash is the token's hash in every encoding of it (HashToken), for
	// logs (Short) and exact revocation.
	Hash TokenHash
	// Raw is the hash of the exact string presented (RawHash): what a
	// credential that did not verify may revoke, and nothing more.
	Raw TokenHash
	// Claims are nil for an opaque (non-JWT) token, and in what an
	// Inspector remembers: the guard needs the keys alone, and a cache of
	// many tokens should not hold every claim of each.
	Claims *Claims
	// ExpiresAt is the token's exp claim in unix milliseconds (verified
	// when Verified), zero when it has none or is not a JWT.
	ExpiresAt UnixMillis

	// until is when an Inspector's copy stops being valid (unix seconds).
	until int64
	// verifyTried says whether verification was attempted: a token first
	// seen where only blocking matters (a refresh token in a body) is only
	// decoded, and verified when it is later presented as an access token.
	verifyTried bool
	// cleanIn is the denylist epoch in which ID was last found clean
	// (Denylist.CheckInfo).
	cleanIn atomic.Pointer[epoch]
}

// NewCredential returns the unverified credential of a raw token, with
// no claims: its hashes and the keys they give.
func NewCredential(raw string) *Credential {
	j, _ := readJWS(raw)
	return readCredential(raw, &j, nil, false, nil)
}

// readCredential builds the credential of raw, read as j, with its claims
// (nil: none read), keyed by h (nil: unkeyed). The Inspector and the
// Revoker both build theirs here, so that a token has the same keys
// whichever of them read it.
func readCredential(raw string, j *jws, claims *Claims, verified bool, h *Hasher) *Credential {
	hash := j.hash(raw)
	c := &Credential{ID: Identity{Token: hash.Key()}, Verified: verified, Hash: hash, Raw: hash, Claims: claims}
	if j.canon != "" {
		// The exact string differs from the canonical form: its own
		// hash revokes it alone.
		c.Raw = RawHash(raw)
	}
	if claims != nil {
		c.ID = h.Identity(claims, hash)
		c.ExpiresAt = claims.ExpiresAt
		if j.canonAlt != "" {
			c.ID.Alt = append(c.ID.Alt, domainHash(jwsDomain, j.canonAlt).Key())
		}
	}
	if c.Raw != c.Hash {
		c.ID.Raw = c.Raw.Key()
	}
	return c
}

// Identity returns the denylist keys of the credential, unkeyed (see
// Hasher).
func (c *Credential) Identity() Identity { return c.identity(nil) }

// identity returns the denylist keys of the credential, keyed by h, from
// its claims: for a credential assembled field by field rather than read
// by readCredential.
func (c *Credential) identity(h *Hasher) Identity {
	id := Identity{Token: c.Hash.Key()}
	if c.Claims != nil {
		id = h.Identity(c.Claims, c.Hash)
	}
	if c.Raw != c.Hash {
		id.Raw = c.Raw.Key()
	}
	return id
}
