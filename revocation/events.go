package revocation

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// An identity provider tells the proxy about logouts with signed events:
// OpenID Connect back-channel logout tokens and Security Event Tokens
// (RFC 8417) pushed over RFC 8935. This file verifies them and reads what
// they revoke; the HTTP dialects that receive them live in caddymodule.

// Why an event was refused, each wrapped in ErrInvalidToken, so that a
// receiver can answer with its protocol's error code.
var (
	ErrEventIssuer    = errors.New("wrong issuer")
	ErrEventAudience  = errors.New("wrong audience")
	ErrEventKey       = errors.New("no acceptable key")
	ErrEventSignature = errors.New("bad signature")
)

// EventCheck says what a signed event must look like.
type EventCheck struct {
	// Issuer must equal iss. Required.
	Issuer string
	// Audience: aud must contain one of them. Required.
	Audience []string
	// Types are the accepted typ header values, compared without case and
	// without an "application/" prefix; "" accepts a token with no typ.
	// Explicit types keep one kind of JWT from being replayed as another.
	Types []string
	// RequireExp refuses a token without exp.
	RequireExp bool
}

// VerifyEvent checks an event's signature with the verifier's keys and
// algorithm allow-list ("none" never), its typ, iss, aud, iat (required,
// not in the future) and exp, and returns its claims. Errors wrap
// ErrInvalidToken, and one of ErrEventIssuer, ErrEventAudience,
// ErrEventKey and ErrEventSignature when that is the reason.
func (v *Verifier) VerifyEvent(ctx context.Context, raw string, chk EventCheck) (jwt.MapClaims, error) {
	if chk.Issuer == "" || len(chk.Audience) == 0 {
		return nil, fmt.Errorf("%w: no issuer or audience to check the event against", ErrInvalidToken)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algs),
		jwt.WithLeeway(v.cfg.Leeway),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.cfg.Now),
		jwt.WithIssuer(chk.Issuer),
		jwt.WithAudience(chk.Audience...),
		jwt.WithJSONNumber(),
	}
	if chk.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	mc := jwt.MapClaims{}
	var typErr error
	_, err := jwt.NewParser(opts...).ParseWithClaims(raw, mc, func(t *jwt.Token) (any, error) {
		if typErr = checkTyp(t.Header["typ"], chk.Types); typErr != nil {
			return nil, typErr
		}
		return v.keysFor(ctx, t)
	})
	switch {
	case typErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, typErr)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrEventIssuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrEventAudience)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, fmt.Errorf("%w: %w: %w", ErrInvalidToken, ErrEventKey, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, fmt.Errorf("%w: %w: %w", ErrInvalidToken, ErrEventSignature, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if _, ok := mc["iat"]; !ok {
		return nil, fmt.Errorf("%w: no iat claim", ErrInvalidToken)
	}
	return mc, nil
}

func checkTyp(h any, accepted []string) error {
	if h == nil {
		for _, a := range accepted {
			if a == "" {
				return nil
			}
		}
		return errors.New("the token has no typ header")
	}
	typ, ok := h.(string)
	if !ok {
		return errors.New("the typ header is not a string")
	}
	typ = strings.ToLower(typ)
	typ = strings.TrimPrefix(typ, "application/")
	for _, a := range accepted {
		if a != "" && typ == strings.ToLower(a) {
			return nil
		}
	}
	return fmt.Errorf("typ %q is not accepted here", typ)
}

// ProviderEvent is one logout an identity provider reports: a session
// (Session, with or without Subject), or every session of a subject
// issued until At.
type ProviderEvent struct {
	Issuer  string
	Subject string
	Session string
	// At is when the provider says the subject's sessions ended, in unix
	// milliseconds (a logout token's iat, a SET's event_timestamp), for
	// the record: a subject-wide event cuts when it is received (see
	// RevokeProviderEvents).
	At int64
}

// BackchannelLogoutEvent is the events member of an OpenID Connect
// back-channel logout token.
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutToken reads a verified back-channel logout token as OpenID
// Connect Back-Channel Logout 1.0 section 2.6 asks: an events object
// holding the back-channel logout member (an object), a sub or a sid or
// both (strings), no nonce, and a jti. It returns the event and the jti.
func LogoutToken(mc jwt.MapClaims) (ProviderEvent, string, error) {
	var ev ProviderEvent
	events, ok := mc["events"].(map[string]any)
	if !ok {
		return ev, "", fmt.Errorf("%w: no events object", ErrInvalidToken)
	}
	if m, ok := events[BackchannelLogoutEvent].(map[string]any); !ok || m == nil {
		return ev, "", fmt.Errorf("%w: events has no %s object", ErrInvalidToken, BackchannelLogoutEvent)
	}
	if _, ok := mc["nonce"]; ok {
		return ev, "", fmt.Errorf("%w: a logout token must not carry a nonce", ErrInvalidToken)
	}
	var err error
	str := func(name string) string {
		v, present := mc[name]
		if !present || err != nil {
			return ""
		}
		s, isStr := v.(string)
		if !isStr || s == "" {
			err = fmt.Errorf("%w: claim %q is not a non-empty string", ErrInvalidToken, name)
		}
		return s
	}
	ev.Issuer, ev.Subject, ev.Session = str("iss"), str("sub"), str("sid")
	jti := str("jti")
	if err != nil {
		return ProviderEvent{}, "", err
	}
	if ev.Subject == "" && ev.Session == "" {
		return ProviderEvent{}, "", fmt.Errorf("%w: a logout token must carry sub, sid or both", ErrInvalidToken)
	}
	if jti == "" {
		return ProviderEvent{}, "", fmt.Errorf("%w: no jti", ErrInvalidToken)
	}
	ev.At = ClaimMillis(mc, "iat")
	return ev, jti, nil
}

// The Shared Signals events acted on; any other event is accepted and
// ignored (RFC 8935 section 2: the recipient decides what it acts on).
const (
	CAEPSessionRevoked   = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	CAEPCredentialChange = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	RISCSessionsRevoked  = "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked"
)

// maxSETEvents bounds the events of one SET.
const maxSETEvents = 16

// SecurityEvent reads a verified Security Event Token (RFC 8417): a jti
// and an events object. It returns what the known events revoke (none
// when every event is unknown) and the jti. The subject of an event is
// its own "subject" member, else the SET's sub_id: format iss_sub,
// opaque, or complex (user and/or session). A session-revoked event names
// a session when its subject has one, else every session of the user; a
// credential-change or sessions-revoked event ends every session of the
// user. The cutoff of a subject-wide event is its event_timestamp, else
// the SET's iat.
func SecurityEvent(mc jwt.MapClaims) ([]ProviderEvent, string, error) {
	jti, _ := mc["jti"].(string)
	if jti == "" {
		return nil, "", fmt.Errorf("%w: no jti", ErrInvalidToken)
	}
	iss, _ := mc["iss"].(string)
	events, ok := mc["events"].(map[string]any)
	if !ok || len(events) == 0 {
		return nil, "", fmt.Errorf("%w: no events object", ErrInvalidToken)
	}
	if len(events) > maxSETEvents {
		return nil, "", fmt.Errorf("%w: more than %d events", ErrInvalidToken, maxSETEvents)
	}
	iat := ClaimMillis(mc, "iat")
	var out []ProviderEvent
	for typ, body := range events {
		payload, ok := body.(map[string]any)
		if !ok {
			return nil, "", fmt.Errorf("%w: event %s is not an object", ErrInvalidToken, typ)
		}
		if typ != CAEPSessionRevoked && typ != CAEPCredentialChange && typ != RISCSessionsRevoked {
			continue
		}
		subj, ok := payload["subject"]
		if !ok {
			subj, ok = mc["sub_id"]
		}
		if !ok {
			return nil, "", fmt.Errorf("%w: event %s names no subject", ErrInvalidToken, typ)
		}
		ev, err := readSubject(subj, iss)
		if err != nil {
			return nil, "", fmt.Errorf("%w: event %s: %w", ErrInvalidToken, typ, err)
		}
		if typ != CAEPSessionRevoked {
			ev.Session = "" // every session of the user
		}
		if ev.Session == "" {
			if ev.Subject == "" {
				return nil, "", fmt.Errorf("%w: event %s names no user", ErrInvalidToken, typ)
			}
			ev.At = iat
			if ts, present := payload["event_timestamp"]; present {
				ms, ok := numericMillis(ts)
				if !ok {
					return nil, "", fmt.Errorf("%w: event %s: event_timestamp is not a NumericDate", ErrInvalidToken, typ)
				}
				ev.At = ms
			}
		}
		out = append(out, ev)
	}
	return out, jti, nil
}

// readSubject reads a subject identifier (RFC 9493): iss_sub names a
// user; opaque names a user, or a session within a complex subject;
// complex joins a user and a session. An opaque session is scoped to
// the issuer that names it: the complex subject's user issuer, else the
// SET's.
func readSubject(v any, setIssuer string) (ProviderEvent, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return ProviderEvent{}, errors.New("subject is not an object")
	}
	format, _ := m["format"].(string)
	switch format {
	case "iss_sub":
		iss, _ := m["iss"].(string)
		sub, _ := m["sub"].(string)
		if iss == "" || sub == "" {
			return ProviderEvent{}, errors.New("iss_sub subject without iss and sub")
		}
		return ProviderEvent{Issuer: iss, Subject: sub}, nil
	case "opaque":
		id, _ := m["id"].(string)
		if id == "" {
			return ProviderEvent{}, errors.New("opaque subject without id")
		}
		return ProviderEvent{Issuer: setIssuer, Subject: id}, nil
	case "complex":
		ev := ProviderEvent{Issuer: setIssuer}
		if u, ok := m["user"]; ok {
			user, err := readSubject(u, setIssuer)
			if err != nil || user.Session != "" {
				return ProviderEvent{}, fmt.Errorf("complex subject: bad user: %v", err)
			}
			ev.Issuer, ev.Subject = user.Issuer, user.Subject
		}
		if s, ok := m["session"]; ok {
			sess, ok := s.(map[string]any)
			id, _ := sess["id"].(string)
			if f, _ := sess["format"].(string); !ok || f != "opaque" || id == "" {
				return ProviderEvent{}, errors.New("complex subject: session must be an opaque id")
			}
			ev.Session = id
		}
		if ev.Subject == "" && ev.Session == "" {
			return ProviderEvent{}, errors.New("complex subject names neither user nor session")
		}
		return ev, nil
	}
	return ProviderEvent{}, fmt.Errorf("subject format %q not supported (iss_sub, opaque, complex)", format)
}

// ClaimMillis reads a NumericDate claim as unix milliseconds, zero when
// absent or malformed.
func ClaimMillis(mc jwt.MapClaims, name string) int64 {
	ms, _ := numericMillis(mc[name])
	return ms
}

func numericMillis(v any) (int64, bool) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case interface{ Float64() (float64, error) }: // json.Number
		var err error
		if f, err = n.Float64(); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if math.IsNaN(f) || f < 0 || f > 1e11 {
		return 0, false
	}
	return int64(math.Round(f * 1000)), true
}

// RevokeProviderEvents revokes, at once, what an identity provider
// reports ended. A session named with its subject is revoked under both
// keys (so that tokens without a sub claim stop too); a session named
// alone is revoked by issuer and sid; a subject alone loses every token
// issued until the event is received, and every session noted for it.
//
// The cut is the store's clock, not the event's own time. Cutting at a
// time in the past would spare the tokens of a session begun between
// that time and the event's arrival, but only when no replica had noted
// the session yet (a noted one is revoked by name whatever its start):
// whether a session survives would turn on whether it had made a request.
// The event says the subject's sessions are over; every session the
// subject has when the proxy hears it ends, and a login after that is
// untouched. One change holds at most one subject.
func (r *Revoker) RevokeProviderEvents(ctx context.Context, events []ProviderEvent) (Result, error) {
	var c Change
	for _, ev := range events {
		switch {
		case ev.Session != "":
			if ev.Subject != "" {
				c.Puts = append(c.Puts, r.sessionPut(ev.Subject, ev.Session))
			}
			if ev.Issuer != "" {
				c.Puts = append(c.Puts, Put{Key: r.Hasher.IssuerSession(ev.Issuer, ev.Session), TTL: r.SessionTTL})
			}
			if ev.Subject == "" && ev.Issuer == "" {
				return Result{}, fmt.Errorf("%w: a session without subject or issuer", ErrBadRequest)
			}
		case ev.Subject != "":
			cut := r.subjectCut(ev.Subject, "")
			if c.Subject != nil && c.Subject.Subject != cut.Subject {
				return Result{}, fmt.Errorf("%w: events about more than one subject", ErrBadRequest)
			}
			c.Subject = cut
		default:
			return Result{}, fmt.Errorf("%w: an event names neither subject nor session", ErrBadRequest)
		}
	}
	if len(c.Puts) == 0 && c.Subject == nil {
		return Result{}, nil
	}
	return r.Store.Commit(ctx, c)
}

// RevokeAccess revokes a verified access token handed in for revocation
// (RFC 7009): the token and its jti.
func (r *Revoker) RevokeAccess(ctx context.Context, c *Credential) (Result, error) {
	return r.Store.Commit(ctx, Change{Puts: r.accessPuts(c)})
}
