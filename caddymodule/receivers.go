package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// What the three receivers of identity-provider logouts share
// (dialect_backchannel_logout.go, dialect_token_revocation.go,
// dialect_security_events.go): the keys and issuer their events are
// checked against, replay protection of their jtis across replicas, and
// strict form reading.

// eventSource is where a receiver's signed events come from.
type eventSource struct {
	verifier *revocation.Verifier
	check    revocation.EventCheck
}

// provisionEventSource sets up a receiver's keys: its own jwks_url, else
// the jwt block's keys; its own issuer, else the jwt block's.
func (h *Handler) provisionEventSource(ctx caddy.Context, repl *caddy.Replacer, name, issuer, jwksURL string, audience []string) (*eventSource, error) {
	src := &eventSource{check: revocation.EventCheck{Issuer: repl.ReplaceKnown(issuer, "")}}
	for _, a := range audience {
		if a = repl.ReplaceKnown(a, ""); a != "" {
			src.check.Audience = append(src.check.Audience, a)
		}
	}
	if len(src.check.Audience) == 0 {
		what := "audience"
		if name == "backchannel_logout" {
			what = "client_id"
		}
		return nil, fmt.Errorf("%s: %s is required", name, what)
	}
	if src.check.Issuer == "" && h.JWT != nil {
		src.check.Issuer = repl.ReplaceKnown(h.JWT.Issuer, "")
	}
	if src.check.Issuer == "" {
		return nil, fmt.Errorf("%s: issuer is required (here or in the jwt block)", name)
	}
	if u := repl.ReplaceKnown(jwksURL, ""); u != "" {
		ks, err := h.remoteKeySet(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		cfg := revocation.VerifierConfig{JWKS: ks}
		if h.JWT != nil {
			cfg.Leeway = time.Duration(h.JWT.Leeway)
		}
		if src.verifier, err = revocation.NewVerifier(cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return src, nil
	}
	if h.verifier == nil {
		return nil, fmt.Errorf("%s: no keys: set jwks_url here, or keys in the jwt block", name)
	}
	src.verifier = h.verifier
	return src, nil
}

// rememberJTI records an event's jti in the shared store, so that every
// replica refuses it once it has been acted on, for as long as the event
// could still verify (until exp plus leeway, else the session TTL). It
// reports whether the jti is new.
func (h *Handler) rememberJTI(ctx context.Context, dialect, issuer, jti string, exp int64) (bool, error) {
	return h.store.Remember(ctx, jtiKey(dialect, issuer, jti), h.jtiTTL(exp))
}

// claimJTI binds an event's jti to the event itself, in the shared store,
// before anything is revoked: the first event seen with a jti (from its
// issuer) owns it, and another event that reuses the jti, however else
// it differs, is refused before it revokes anything (OIDC Back-Channel
// Logout 1.0 section 2.6: "a jti that has not been recently received").
// The same event again (a provider retrying after a 503) still owns it,
// so a retry is never mistaken for a replay here; rememberJTI, after the
// commit, tells a retry from a replay of an event already acted on.
func (h *Handler) claimJTI(ctx context.Context, dialect, issuer, jti, raw string, exp int64) (bool, error) {
	sum := sha256.Sum256([]byte(raw))
	mine := hex.EncodeToString(sum[:16])
	holder, err := h.store.Claim(ctx, "jti-owner:"+jtiKey(dialect, issuer, jti), mine, h.jtiTTL(exp))
	if err != nil {
		return false, fmt.Errorf("claim the jti of a %s event: %w", dialect, err)
	}
	return holder == mine, nil
}

// jtiKey names an event's jti in the store, by hash.
func jtiKey(dialect, issuer, jti string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + jti))
	return dialect + ":" + hex.EncodeToString(sum[:16])
}

// jtiTTL is how long an event's jti is remembered: for as long as the
// event could still verify (until exp plus leeway), else the session TTL.
func (h *Handler) jtiTTL(exp int64) time.Duration {
	ttl := time.Duration(h.SessionTTL)
	if exp > 0 {
		ttl = time.Until(time.UnixMilli(exp)) + time.Duration(h.jwtLeeway()) + time.Minute
		ttl = min(max(ttl, time.Minute), time.Duration(h.SessionTTL))
	}
	return ttl
}

func (h *Handler) jwtLeeway() caddy.Duration {
	if h.JWT == nil {
		return 0
	}
	return h.JWT.Leeway
}

var errFormInvalid = errors.New("invalid form")

// readForm reads a POSTed application/x-www-form-urlencoded body of at
// most maxBody bytes. A parameter may appear once only (RFC 6749 section
// 3.2), and a malformed body is refused rather than read in part.
func readForm(r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, fmt.Errorf("%w: content type must be application/x-www-form-urlencoded", errFormInvalid)
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	return parseForm(body)
}

// parseForm parses a form body strictly: no malformed escapes, no
// repeated parameters.
func parseForm(body []byte) (url.Values, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errFormInvalid, err)
	}
	for name, vals := range form {
		if len(vals) > 1 {
			return nil, fmt.Errorf("%w: parameter %q given %d times", errFormInvalid, name, len(vals))
		}
	}
	return form, nil
}

// secretEqual compares secrets in constant time, whatever their lengths.
func secretEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// auditEvents writes the audit line of a provider's logout.
func (h *Handler) auditEvents(r *http.Request, dialect, raw string, res revocation.Result, events []revocation.ProviderEvent) {
	subjects, sessions := make([]string, 0, len(events)), make([]string, 0, len(events))
	for _, ev := range events {
		subjects, sessions = append(subjects, ev.Subject), append(sessions, ev.Session)
	}
	h.audit(r, dialect, nil, res,
		zap.String("event_hash", revocation.HashToken(raw).Short()),
		zap.String("issuer", eventIssuer(events)),
		zap.Strings("subjects", subjects),
		zap.Strings("session_ids", sessions))
}

func eventIssuer(events []revocation.ProviderEvent) string {
	if len(events) == 0 {
		return ""
	}
	return events[0].Issuer
}

// refuseEvent logs why a provider's event was refused, by hash only.
func (h *Handler) refuseEvent(dialect, raw string, err error) {
	h.log.Info("identity provider event refused",
		zap.String("endpoint", dialect),
		zap.String("event_hash", revocation.HashToken(raw).Short()),
		zap.Error(err))
}

// eventDescription says why an event was refused without echoing it.
func eventDescription(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "invalid token: "); i >= 0 {
		msg = msg[i+len("invalid token: "):]
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// provisionReceivers sets up the receivers whose blocks are present.
func (h *Handler) provisionReceivers(ctx caddy.Context, repl *caddy.Replacer) error {
	var err error
	if b := h.BackchannelLogout; b != nil {
		if h.backchannel, err = h.provisionEventSource(ctx, repl, "backchannel_logout", b.Issuer, b.JWKSURL, b.ClientID); err != nil {
			return err
		}
	}
	if s := h.SecurityEvents; s != nil {
		if h.secEvents, err = h.provisionEventSource(ctx, repl, "security_events", s.Issuer, s.JWKSURL, s.Audience); err != nil {
			return err
		}
		h.secAuthToken = repl.ReplaceKnown(s.AuthToken, "")
		if s.AuthToken != "" && h.secAuthToken == "" {
			return errors.New("security_events: auth_token is empty once placeholders are replaced")
		}
	}
	if t := h.TokenRevocation; t != nil {
		if len(t.Clients) == 0 {
			return errors.New("token_revocation: name at least one client")
		}
		h.clients = make(map[string]revocationClient, len(t.Clients))
		for _, c := range t.Clients {
			id := repl.ReplaceKnown(c.ID, "")
			if id == "" {
				return errors.New("token_revocation: a client has an empty id")
			}
			if _, dup := h.clients[id]; dup {
				return fmt.Errorf("token_revocation: client %q given twice", id)
			}
			secret := repl.ReplaceKnown(c.Secret, "")
			if c.Secret != "" && secret == "" {
				return fmt.Errorf("token_revocation: client %q: secret is empty once placeholders are replaced", id)
			}
			h.clients[id] = revocationClient{secret: secret, public: secret == ""}
		}
	}
	return nil
}
