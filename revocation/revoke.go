package revocation

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrRevoked is returned (wrapped in a *RevokedError) when a credential
// presented to an endpoint is itself revoked.
var ErrRevoked = errors.New("credential revoked")

// RevokedError says why a presented credential is refused.
type RevokedError struct{ Reason Reason }

func (e *RevokedError) Error() string { return "credential revoked (" + e.Reason.String() + ")" }

// Unwrap makes errors.Is(err, ErrRevoked) true.
func (e *RevokedError) Unwrap() error { return ErrRevoked }

// ErrBadRequest wraps revocation requests that make no sense for the
// credential presented (for instance "others" from a token that names no
// session).
var ErrBadRequest = errors.New("bad revocation request")

// Revoker gives each kind of revocation its meaning, as changes to a
// Store. The HTTP dialects and the admin API are thin layers over it.
type Revoker struct {
	Store Store
	// Verifier authenticates callers; nil when no key is configured (then
	// only the admin operations work).
	Verifier *Verifier
	// SessionTTL is how long session and subject revocations are kept.
	SessionTTL time.Duration
	// Hasher derives the keys of jtis, sessions and subjects; nil derives
	// them unkeyed.
	Hasher *Hasher
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (r *Revoker) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// ErrNoSubject is returned (wrapped in ErrInvalidToken) when a token
// presented to an endpoint names no subject: sessions are scoped to their
// subject, so such a token identifies no caller whose sessions could be
// revoked.
var ErrNoSubject = errors.New("token names no subject")

// Authenticate verifies a bearer token presented to an endpoint and makes
// sure it is not revoked. The token must name a subject. Errors wrap
// ErrInvalidToken or ErrRevoked; with ErrRevoked the credential is
// returned too, so that the caller can tell why.
//
// The caller's session is noted as seen, as the proxy notes the sessions
// it guards, so that a later "all" or "others" stops its future tokens.
func (r *Revoker) Authenticate(ctx context.Context, raw string) (*Credential, error) {
	if r.Verifier == nil {
		return nil, fmt.Errorf("%w: no verification key configured", ErrInvalidToken)
	}
	claims, err := r.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrNoSubject)
	}
	c := r.read(raw, claims, true)
	if reason := r.blockedCaller(c); reason != NotBlocked {
		return c, &RevokedError{Reason: reason}
	}
	r.noteSession(c)
	return c, nil
}

// blockedCaller says why a caller's token is refused. A token whose
// session is revoked is refused for its session, even when the token
// itself (or its jti) was revoked with it, as a logout does: the caller
// learns that the session is gone, not merely that one token is.
func (r *Revoker) blockedCaller(c *Credential) Reason {
	now := r.now().Unix()
	dl := r.Store.Denylist()
	reason := dl.CheckInfo(c, now)
	if reason == BlockedToken || reason == BlockedJTI {
		if _, ok := dl.Lookup(c.ID.Session, now); !c.ID.Session.IsZero() && ok {
			return BlockedSession
		}
	}
	return reason
}

// ExamineRefresh reads a refresh token handed in as proof (seed 000): an
// opaque token stands for itself; a JWT must verify, since an expired or
// forged one proves nothing. Errors wrap ErrInvalidToken.
func (r *Revoker) ExamineRefresh(ctx context.Context, raw string) (*Credential, error) {
	if !LooksLikeJWT(raw) {
		return r.read(raw, nil, false), nil
	}
	if r.Verifier == nil {
		return nil, fmt.Errorf("%w: no verification key configured", ErrInvalidToken)
	}
	claims, err := r.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	return r.read(raw, claims, true), nil
}

// read builds the credential of raw with its claims (nil: none), keyed
// as the Inspector keys the guard's.
func (r *Revoker) read(raw string, claims *Claims, verified bool) *Credential {
	j, _ := readJWS(raw)
	return readCredential(raw, &j, claims, verified, r.Hasher)
}

func (r *Revoker) noteSession(c *Credential) {
	if cl := c.Claims; c.Verified && cl.Subject != "" && cl.Session != "" {
		r.Store.NoteSession(r.Hasher.Subject(cl.Subject), r.Hasher.Session(cl.Subject, cl.Session), r.SessionTTL)
	}
}

// Examine reads a credential that need not verify (a refresh token handed
// in for revocation): verified claims when it verifies, decoded claims
// when it is a JWT that does not, none when it is opaque.
func (r *Revoker) Examine(ctx context.Context, raw string) *Credential {
	if c, err := r.ExamineRefresh(ctx, raw); err == nil {
		return c
	}
	sessionClaim := DefaultSessionClaim
	if r.Verifier != nil {
		sessionClaim = r.Verifier.SessionClaim()
	}
	claims, err := Decode(raw, sessionClaim)
	if err != nil {
		claims = nil
	}
	return r.read(raw, claims, false)
}

// Revoked reports whether a credential is revoked now, as the guard
// would find it. A credential assembled field by field, without keys,
// gets them from its claims.
func (r *Revoker) Revoked(c *Credential) Reason {
	if c.ID.Token.IsZero() {
		c.ID = c.identity(r.Hasher)
	}
	return r.Store.Denylist().CheckInfo(c, r.now().Unix())
}

// tokenPut revokes one exact token until it expires (or for the session
// TTL when it carries no expiry). A verified token is revoked in every
// encoding (its Hash); one that did not verify only as the exact string
// presented (its Raw hash), since anyone can put a stranger's header and
// payload beside a signature of their own. The expiry of a token whose
// claims were not verified is the client's word: it is believed only up
// to the session TTL, so that nobody can make an entry live for ever.
func (r *Revoker) tokenPut(c *Credential) Put {
	p := Put{Key: c.Raw.Key(), TTL: r.SessionTTL}
	if c.Verified {
		p.Key = c.Hash.Key()
	}
	if c.Claims != nil && c.Claims.ExpiresAt > 0 {
		exp := ExpiryOf(c.Claims.ExpiresAt)
		if c.Verified || exp <= SecondsOf(r.now().Add(r.SessionTTL)) {
			p.Expires = exp
		}
	}
	return p
}

// accessPuts revokes a verified token: itself and its jti. The jti also
// stops any other encoding of the same token (a JWS signature can be
// re-encoded without the key), which the token's hash alone would not.
func (r *Revoker) accessPuts(c *Credential) []Put {
	puts := []Put{r.tokenPut(c)}
	if c.Verified && c.Claims != nil && c.Claims.JTI != "" {
		p := r.tokenPut(c)
		p.Key = r.Hasher.JTI(c.Claims.JTI)
		puts = append(puts, p)
	}
	return puts
}

// subjectCut revokes a subject, sparing the session keep (none when
// empty). While unkeyed entries are checked (see Hasher), the sessions
// noted under the subject's unkeyed form are revoked by name too.
func (r *Revoker) subjectCut(subject, keep string) *SubjectCut {
	c := &SubjectCut{Subject: r.Hasher.Subject(subject), TTL: r.SessionTTL}
	if keep != "" {
		c.Keep = r.Hasher.Session(subject, keep)
	}
	if r.Hasher.ChecksUnkeyed() {
		c.Unkeyed = SubjectKey(subject)
		if keep != "" {
			c.UnkeyedKeep = SessionKey(subject, keep)
		}
	}
	return c
}

func (r *Revoker) sessionPut(subject, sid string) Put {
	return Put{Key: r.Hasher.Session(subject, sid), TTL: r.SessionTTL}
}

// callerClaims returns the claims of a verified caller that names a
// subject, the only kind of caller the endpoints act for.
func callerClaims(caller *Credential) (*Claims, error) {
	if caller == nil || caller.Claims == nil || !caller.Verified {
		return nil, fmt.Errorf("%w: caller not verified", ErrInvalidToken)
	}
	if caller.Claims.Subject == "" {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrNoSubject)
	}
	return caller.Claims, nil
}

// RevokeRefresh revokes a refresh token handed in as proof (seed 000):
// the token itself, and, when it is a verified JWT, its jti and the
// session it names (scoped to its subject).
func (r *Revoker) RevokeRefresh(ctx context.Context, refresh *Credential) (Result, error) {
	c := Change{Puts: r.accessPuts(refresh)}
	if cl := refresh.Claims; refresh.Verified && cl.Subject != "" && cl.Session != "" {
		c.Puts = append(c.Puts, r.sessionPut(cl.Subject, cl.Session))
	}
	return r.Store.Commit(ctx, c)
}

// ErrUnknownSession is returned when a caller names a session of theirs
// that no replica has seen in use (nor revoked): there is nothing to
// revoke, and storing an entry for every name a caller makes up would let
// one token fill the store.
var ErrUnknownSession = errors.New("session not known")

// knownSession reports whether a caller may name a session of subject: it
// is the caller's own, already revoked, or seen in use by any replica.
func (r *Revoker) knownSession(ctx context.Context, cl *Claims, sid string) (bool, error) {
	if sid == cl.Session {
		return true, nil
	}
	key := r.Hasher.Session(cl.Subject, sid)
	if _, ok := r.Store.Denylist().Lookup(key, r.now().Unix()); ok {
		return true, nil
	}
	return r.Store.SessionSeen(ctx, r.Hasher.Subject(cl.Subject), key)
}

// Target is what a "revoke my sessions" call revokes.
type Target string

// The targets of seed 001.
const (
	TargetAll     Target = "all"
	TargetOthers  Target = "others"
	TargetMine    Target = "mine"
	TargetSession Target = "session"
)

// RevokeSessions revokes sessions of the caller, who presented the
// verified access token caller (seed 001). A session ID always names a
// session of the caller's own subject: naming another subject's session
// revokes nothing of theirs.
func (r *Revoker) RevokeSessions(ctx context.Context, caller *Credential, target Target, sessionID string) (Result, error) {
	cl, err := callerClaims(caller)
	if err != nil {
		return Result{}, err
	}
	var c Change
	switch target {
	case TargetAll:
		c.Subject = r.subjectCut(cl.Subject, "")
		c.Puts = r.accessPuts(caller)
		if cl.Session != "" {
			// Tokens minted later for the current session (a refresh)
			// are stopped too, whoever has seen it before.
			c.Puts = append(c.Puts, r.sessionPut(cl.Subject, cl.Session))
		}
	case TargetOthers:
		if cl.Session == "" {
			return Result{}, fmt.Errorf("%w: the access token names no session, so there is no current session to keep", ErrBadRequest)
		}
		c.Subject = r.subjectCut(cl.Subject, cl.Session)
	case TargetMine:
		c.Puts = r.accessPuts(caller)
		if cl.Session != "" {
			c.Puts = append(c.Puts, r.sessionPut(cl.Subject, cl.Session))
		}
	case TargetSession:
		if sessionID == "" {
			return Result{}, fmt.Errorf("%w: session_id is required", ErrBadRequest)
		}
		switch known, err := r.knownSession(ctx, cl, sessionID); {
		case err != nil:
			return Result{}, err
		case !known:
			return Result{}, ErrUnknownSession
		}
		c.Puts = []Put{r.sessionPut(cl.Subject, sessionID)}
		if sessionID == cl.Session {
			c.Puts = append(c.Puts, r.accessPuts(caller)...)
		}
	default:
		return Result{}, fmt.Errorf("%w: unknown target %q", ErrBadRequest, target)
	}
	return r.Store.Commit(ctx, c)
}

// Invalidation says what InvalidateSession did.
type Invalidation struct {
	// SessionID is the session revoked; empty when the caller's token
	// names none and was revoked as its own session.
	SessionID string
	// AlreadyRevoked is true when that session (or that token) was
	// revoked before: writing it again changed nothing.
	AlreadyRevoked bool
	// Result is the committed change.
	Result Result
}

// InvalidateSession revokes one session of the caller (seed 002): the
// named one, or the caller's current one when sessionID is empty.
func (r *Revoker) InvalidateSession(ctx context.Context, caller *Credential, sessionID string) (Invalidation, error) {
	cl, err := callerClaims(caller)
	if err != nil {
		return Invalidation{}, err
	}
	if sessionID == "" {
		sessionID = cl.Session
	}
	var c Change
	if sessionID == "" {
		// A token without a session claim is its own session.
		c.Puts = r.accessPuts(caller)
	} else {
		switch known, err := r.knownSession(ctx, cl, sessionID); {
		case err != nil:
			return Invalidation{SessionID: sessionID}, err
		case !known:
			return Invalidation{SessionID: sessionID}, ErrUnknownSession
		}
		c.Puts = []Put{r.sessionPut(cl.Subject, sessionID)}
		if sessionID == cl.Session {
			c.Puts = append(c.Puts, r.accessPuts(caller)...)
		}
	}
	res, err := r.Store.Commit(ctx, c)
	// The session's put (or the token's, for a token that is its own
	// session) comes first.
	return Invalidation{SessionID: sessionID, AlreadyRevoked: err == nil && res.Existed[0], Result: res}, err
}

// Logout revokes, at once, the caller's access token (and its jti), its
// session, and the refresh token handed in with it (seed 003). The
// refresh token's own session is revoked only when the refresh token is
// a verified JWT of the same subject.
func (r *Revoker) Logout(ctx context.Context, caller *Credential, refresh *Credential) (Result, error) {
	cl, err := callerClaims(caller)
	if err != nil {
		return Result{}, err
	}
	c := Change{Puts: r.accessPuts(caller)}
	if cl.Session != "" {
		c.Puts = append(c.Puts, r.sessionPut(cl.Subject, cl.Session))
	}
	if refresh != nil {
		c.Puts = append(c.Puts, r.accessPuts(refresh)...)
		rc := refresh.Claims
		if refresh.Verified && rc.Subject == cl.Subject && rc.Session != "" && rc.Session != cl.Session {
			c.Puts = append(c.Puts, r.sessionPut(rc.Subject, rc.Session))
		}
	}
	return r.Store.Commit(ctx, c)
}

// RevokePresented revokes, at once, every credential a client presented
// (an app's own logout, seen at the proxy): a verified one in every
// encoding with its jti and its session, any other one as the exact
// string presented and nothing more (tokenPut), since anyone can present
// a string. Nothing is written when creds is empty.
func (r *Revoker) RevokePresented(ctx context.Context, creds []*Credential) (Result, error) {
	var c Change
	seen := map[Key]bool{}
	add := func(p Put) {
		if !seen[p.Key] {
			seen[p.Key] = true
			c.Puts = append(c.Puts, p)
		}
	}
	for _, cr := range creds {
		for _, p := range r.accessPuts(cr) {
			add(p)
		}
		if cl := cr.Claims; cr.Verified && cl.Subject != "" && cl.Session != "" {
			add(r.sessionPut(cl.Subject, cl.Session))
		}
	}
	if len(c.Puts) == 0 {
		return Result{}, nil
	}
	return r.Store.Commit(ctx, c)
}

// The operator's revocations (admin API, CLI) act on names, not on
// presented credentials.

// RevokeSubject revokes every token of a subject issued until now, and
// every session of it that any replica has seen.
func (r *Revoker) RevokeSubject(ctx context.Context, subject string) (Result, error) {
	if subject == "" {
		return Result{}, fmt.Errorf("%w: empty subject", ErrBadRequest)
	}
	return r.Store.Commit(ctx, Change{Subject: r.subjectCut(subject, "")})
}

// RevokeSession revokes one session of one subject.
func (r *Revoker) RevokeSession(ctx context.Context, subject, sid string) (Result, error) {
	if sid == "" {
		return Result{}, fmt.Errorf("%w: empty session", ErrBadRequest)
	}
	return r.Store.Commit(ctx, Change{Puts: []Put{r.sessionPut(subject, sid)}})
}

// RevokeJTI revokes every token carrying a jti, until expires (unix
// seconds) or, when zero, for the session TTL.
func (r *Revoker) RevokeJTI(ctx context.Context, jti string, expires UnixSeconds) (Result, error) {
	if jti == "" {
		return Result{}, fmt.Errorf("%w: empty jti", ErrBadRequest)
	}
	return r.Store.Commit(ctx, Change{Puts: []Put{{Key: r.Hasher.JTI(jti), Expires: expires, TTL: r.SessionTTL}}})
}

// RevokeToken revokes one exact raw token until it expires: on the
// operator's word, in every encoding, whether or not it verifies here.
func (r *Revoker) RevokeToken(ctx context.Context, raw string) (Result, error) {
	if raw == "" {
		return Result{}, fmt.Errorf("%w: empty token", ErrBadRequest)
	}
	return r.Store.Commit(ctx, Change{Puts: []Put{r.operatorTokenPut(ctx, raw)}})
}

// operatorTokenPut revokes a raw token on the operator's word: its
// canonical key, which stops every encoding, the exact string included,
// whether or not it verifies here.
func (r *Revoker) operatorTokenPut(ctx context.Context, raw string) Put {
	c := r.Examine(ctx, raw)
	p := r.tokenPut(c)
	p.Key = c.Hash.Key()
	return p
}

// RevokeAll sets the global cutoff, for incident response: every token of
// every subject issued at or before before (the store's clock when zero)
// is revoked, on every replica, by one entry kept for the session TTL.
// A later cutoff extends an earlier one; a cutoff never moves back.
func (r *Revoker) RevokeAll(ctx context.Context, before time.Time) (Result, error) {
	g := &GlobalCut{TTL: r.SessionTTL}
	if !before.IsZero() {
		if g.Before = MillisOf(before); g.Before <= 0 {
			return Result{}, fmt.Errorf("%w: cutoff %s is not after 1970", ErrBadRequest, before)
		}
	}
	return r.Store.Commit(ctx, Change{Global: g})
}

// Order is one operator revocation by name, as the admin API and the CLI
// take it: exactly one of {Subject}, {Subject, Session}, {JTI[, Expires]}
// or {Token}.
type Order struct {
	Subject string
	Session string
	JTI     string
	Token   string
	// Expires bounds a jti revocation (unix seconds); zero: the session
	// TTL.
	Expires UnixSeconds
}

// The kinds of Order, as OrderKind names them.
const (
	OrderSubject = "subject"
	OrderSession = "session"
	OrderJTI     = "jti"
	OrderToken   = "token"
)

// OrderKind says which form an order has, or why it has none.
func (o *Order) OrderKind() (string, error) {
	kind := ""
	switch {
	case o.Token != "" && o.Subject == "" && o.Session == "" && o.JTI == "":
		kind = OrderToken
	case o.JTI != "" && o.Subject == "" && o.Session == "" && o.Token == "":
		kind = OrderJTI
	case o.Subject != "" && o.Session != "" && o.JTI == "" && o.Token == "":
		kind = OrderSession
	case o.Subject != "" && o.Session == "" && o.JTI == "" && o.Token == "":
		kind = OrderSubject
	default:
		return "", fmt.Errorf(`%w: give exactly one of: {"subject"}, {"subject","session"}, {"jti"[,"expires"]}, {"token"}`, ErrBadRequest)
	}
	if o.Expires != 0 && kind != OrderJTI {
		return "", fmt.Errorf("%w: expires applies to jti revocations only", ErrBadRequest)
	}
	if o.Expires < 0 {
		return "", fmt.Errorf("%w: expires %d is before 1970", ErrBadRequest, o.Expires)
	}
	return kind, nil
}

// BulkBatch is how many orders RevokeBulk commits at once by default: one
// script call in Redis, short enough not to hold up other clients.
const BulkBatch = 500

// BulkResult says what RevokeBulk applied.
type BulkResult struct {
	// Applied is how many orders, from the first, are committed.
	Applied int
	// Entries is how many entries they wrote.
	Entries int
	// Kinds counts the entries written by kind.
	Kinds map[Kind]int
}

// RevokeBulk applies many orders, batch at a time (BulkBatch when batch
// is not positive), each batch one atomic change. Every order is checked
// before the first is applied, so a bad one applies nothing. A store
// failure stops at a batch boundary: the result then says how many
// orders, from the first, were applied; applying them again is harmless.
func (r *Revoker) RevokeBulk(ctx context.Context, orders []Order, batch int) (BulkResult, error) {
	if batch <= 0 {
		batch = BulkBatch
	}
	kinds := make([]string, len(orders))
	for i := range orders {
		k, err := orders[i].OrderKind()
		if err != nil {
			return BulkResult{}, fmt.Errorf("order %d: %w", i+1, err)
		}
		kinds[i] = k
	}
	res := BulkResult{Kinds: make(map[Kind]int)}
	for start := 0; start < len(orders); start += batch {
		end := min(start+batch, len(orders))
		var c Change
		for i := start; i < end; i++ {
			o := &orders[i]
			switch kinds[i] {
			case OrderToken:
				c.Puts = append(c.Puts, r.operatorTokenPut(ctx, o.Token))
			case OrderJTI:
				c.Puts = append(c.Puts, Put{Key: r.Hasher.JTI(o.JTI), Expires: o.Expires, TTL: r.SessionTTL})
			case OrderSession:
				c.Puts = append(c.Puts, r.sessionPut(o.Subject, o.Session))
			case OrderSubject:
				c.Subjects = append(c.Subjects, *r.subjectCut(o.Subject, ""))
			}
		}
		out, err := r.Store.Commit(ctx, c)
		if err != nil {
			return res, fmt.Errorf("orders %d to %d: %w", start+1, end, err)
		}
		res.Applied = end
		res.Entries += len(out.Entries)
		for _, e := range out.Entries {
			res.Kinds[e.Kind()]++
		}
	}
	return res, nil
}
