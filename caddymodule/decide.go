package caddymodule

import (
	"context"
	"time"

	"github.com/caddy-revocation/caddy-revocation/extract"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// verdict is what the guard does with a proxied request.
type verdict uint8

const (
	pass verdict = iota
	// block: a credential the request carries is revoked (401).
	block
	// refuseBody: the body cannot be inspected and oversized_body is
	// reject (413).
	refuseBody
	// refuseStale: a credential found by name cannot be confirmed clean
	// while the denylist is stale and on_store_down is fail_closed (503).
	refuseStale
	// refuseNoToken: require_token, and no credential came (401).
	refuseNoToken
	// refuseUnverified: require_token, and no access token verifies (401).
	refuseUnverified
)

// decision is the guard's decision on one request, and what it rests on.
type decision struct {
	verdict verdict
	// named are the credentials found by name (not by value alone):
	// those an app_logout revokes.
	named []extract.Credential
	// hasAccess: a credential was presented as an access token.
	hasAccess bool
	// For block: the first revoked credential, what of it is revoked,
	// and what the guard knows of it.
	cred   *extract.Credential
	reason revocation.Reason
	info   *revocation.TokenInfo
	// skipped counts the JWT-shaped candidates checked by hash only (see
	// budget).
	skipped int
}

// decide is the one decision of the guard (handler.go) and of the dry
// run (explain.go), so that the two can never disagree; it fills d, which
// the caller zeroes (a decision returned by value was copied out at each
// of its returns, the largest part of decide's code). The refusals come
// first, in the order the guard applies them; then every credential is
// inspected until the first revoked one. When seen is not nil (the dry
// run), every credential is inspected and passed to it, whatever the
// verdict, which stays the first that applies. now is read only when the
// request carries a credential.
func (h *Handler) decide(ctx context.Context, d *decision, x *extract.Extraction, dl *revocation.Denylist, now time.Time, seen func(c *extract.Credential, info *revocation.TokenInfo, reason revocation.Reason)) {
	if h.passesUnread(x) {
		return
	}
	switch {
	case x.Uninspected && h.OversizedBody == "reject":
		d.verdict = refuseBody
	case len(x.Creds) == 0:
		if h.RequireToken {
			d.verdict = refuseNoToken
		}
		return
	}
	if d.verdict == pass {
		d.named = x.Named()
		// A request with a credential found by name cannot be confirmed
		// clean while the denylist is stale; one with values only (every
		// request has a few) is checked against what is known, as before
		// values were read at all.
		if len(d.named) > 0 && h.staleAfter > 0 && !h.failOpen && h.store.Staleness(now) > h.staleAfter {
			d.verdict = refuseStale
		}
	}
	if d.verdict != pass && seen == nil {
		return
	}
	unix, verified := now.Unix(), false
	b := h.newBudget()
	for i := range x.Creds {
		c := &x.Creds[i]
		info, reason, isVerified := h.inspect(ctx, dl, c, unix, &b)
		if seen != nil {
			seen(c, info, reason)
		}
		if reason != revocation.NotBlocked && d.cred == nil {
			d.cred, d.reason, d.info = c, reason, info
			if d.verdict == pass {
				d.verdict = block
			}
			if seen == nil {
				return
			}
		}
		if c.Kind == extract.Access {
			d.hasAccess = true
			verified = verified || isVerified
		}
	}
	d.skipped = b.skipped
	if d.verdict == pass && h.RequireToken && !verified {
		d.verdict = refuseUnverified
	}
}

// passesUnread reports whether decide passes the request without reading
// anything more: no credential, a body that was inspected (or none), and
// no require_token. The guard asks it before decide: most requests (static
// assets) are such, and calling decide for them cost about a hundred
// nanoseconds more than the guard did before decide existed (BenchmarkGuard/none).
func (h *Handler) passesUnread(x *extract.Extraction) bool {
	return len(x.Creds) == 0 && !x.Uninspected && !h.RequireToken
}
