package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// adminApp is the revocation app the admin routes of these tests act
// on, as they act on the running configuration's.
var adminApp *App

// newTestApp provisions a revocation app outside any configuration,
// cleaned up with the test.
func newTestApp(t *testing.T) *App {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	app := &App{}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Cleanup() })
	return app
}

// adminStore opens an embedded store in a revocation app, as a handler
// would, so that the admin API acts on it.
func adminStore(t *testing.T) *sharedStore {
	t.Helper()
	initMetrics()
	app := newTestApp(t)
	s, err := app.open(StoreConfig{KeyPrefix: "admin-test-" + t.Name() + ":", SessionTTL: caddy.Duration(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	adminApp = app
	t.Cleanup(func() { adminApp = nil })
	return s
}

// adminPost calls POST /revocation/revoke and returns the status and
// the decoded answer (or the error message).
func adminPost(t *testing.T, body string) (int, AdminRevokeResponse, string) {
	t.Helper()
	a := &adminAPI{log: zap.NewNop(), app: adminApp}
	w := httptest.NewRecorder()
	err := a.handleRevoke(w, httptest.NewRequest(http.MethodPost, "/revocation/revoke", strings.NewReader(body)))
	var out AdminRevokeResponse
	if err != nil {
		var ae caddy.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("%s: not an API error: %v", body, err)
		}
		return ae.HTTPStatus, out, ae.Message
	}
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: answer %q: %v", body, w.Body, err)
		}
	}
	return w.Code, out, w.Body.String()
}

func TestAdminRevokeForms(t *testing.T) {
	s := adminStore(t)
	dl := s.Denylist()
	now := time.Now()
	check := func(what string, id revocation.Identity, want revocation.Reason) {
		t.Helper()
		if got := dl.Check(&id, time.Now().Unix()); got != want {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}

	st, out, msg := adminPost(t, `{"subject":"alice"}`)
	if st != http.StatusOK || out.Revoked != "subject" || out.Applied != 1 || out.Entries != 1 {
		t.Fatalf("subject: %d %+v %s", st, out, msg)
	}
	check("alice", revocation.Identity{Subject: revocation.SubjectKey("alice"), Issued: revocation.UnixMillis(now.UnixMilli() - 1)}, revocation.BlockedSubject)

	// expires as a duration string, and as a JSON number (unix seconds).
	if st, out, msg = adminPost(t, `{"jti":"j-dur","expires":"1h"}`); st != http.StatusOK || out.Revoked != "jti" {
		t.Fatalf("jti with a duration: %d %s", st, msg)
	}
	e, ok := dl.Lookup(revocation.JTIKey("j-dur"), now.Unix())
	if !ok || int64(e.Expires) < now.Add(time.Hour).Unix()-5 || int64(e.Expires) > now.Add(time.Hour).Unix()+5 {
		t.Fatalf("jti expires %d, want about an hour from now (%v)", e.Expires, ok)
	}
	exp := now.Add(2 * time.Hour).Unix()
	if st, _, msg = adminPost(t, `{"jti":"j-num","expires":`+jsonInt(exp)+`}`); st != http.StatusOK {
		t.Fatalf("jti with unix seconds: %d %s", st, msg)
	}
	if e, ok := dl.Lookup(revocation.JTIKey("j-num"), now.Unix()); !ok || int64(e.Expires) != exp {
		t.Fatalf("jti expires %d, want %d", e.Expires, exp)
	}
	rfc := now.Add(3 * time.Hour).UTC().Truncate(time.Second)
	if st, _, msg = adminPost(t, `{"jti":"j-rfc","expires":"`+rfc.Format(time.RFC3339)+`"}`); st != http.StatusOK {
		t.Fatalf("jti with RFC 3339: %d %s", st, msg)
	}
	if e, ok := dl.Lookup(revocation.JTIKey("j-rfc"), now.Unix()); !ok || int64(e.Expires) != rfc.Unix() {
		t.Fatalf("jti expires %d, want %d", e.Expires, rfc.Unix())
	}

	// Bulk: an array, answered with the count applied.
	st, out, msg = adminPost(t, `[{"subject":"bob"},{"subject":"carol","session":"s1"},{"jti":"j-bulk","expires":"30m"},{"token":"opaque-1"}]`)
	if st != http.StatusOK || out.Revoked != "bulk" || out.Applied != 4 || out.Entries != 4 || out.Stores != 1 {
		t.Fatalf("bulk: %d %+v %s", st, out, msg)
	}
	check("bob", revocation.Identity{Subject: revocation.SubjectKey("bob"), Issued: revocation.UnixMillis(now.UnixMilli() - 1)}, revocation.BlockedSubject)
	check("carol s1", revocation.Identity{Session: revocation.SessionKey("carol", "s1")}, revocation.BlockedSession)
	check("j-bulk", revocation.Identity{JTI: revocation.JTIKey("j-bulk")}, revocation.BlockedJTI)
	check("opaque-1", revocation.Identity{Token: revocation.TokenKey("opaque-1")}, revocation.BlockedToken)

	// The global cutoff: every subject, one entry.
	check("dave before the cutoff", revocation.Identity{Subject: revocation.SubjectKey("dave"), Issued: revocation.UnixMillis(now.UnixMilli() - 1)}, revocation.NotBlocked)
	st, out, msg = adminPost(t, `{"all":true,"before":"now"}`)
	if st != http.StatusOK || out.Revoked != "all" || out.Entries != 1 || out.Cutoff == nil {
		t.Fatalf("all: %d %+v %s", st, out, msg)
	}
	if d := out.Cutoff.Sub(now.Truncate(time.Millisecond)); d < 0 || d > 5*time.Second {
		t.Fatalf("cutoff %v, want about %v", out.Cutoff, now)
	}
	check("dave", revocation.Identity{Subject: revocation.SubjectKey("dave"), Issued: revocation.UnixMillis(now.UnixMilli() - 1)}, revocation.BlockedGlobal)
	check("dave, issued after", revocation.Identity{Subject: revocation.SubjectKey("dave"), Issued: revocation.UnixMillis(out.Cutoff.UnixMilli() + 1)}, revocation.NotBlocked)
	if n := dl.Len(revocation.KindGlobal); n != 1 {
		t.Fatalf("global entries: %d", n)
	}
	// before as a past duration and as unix seconds never moves it back.
	for _, b := range []string{`"-10m"`, jsonInt(now.Add(-time.Hour).Unix())} {
		if st, out2, msg := adminPost(t, `{"all":true,"before":`+b+`}`); st != http.StatusOK || !out2.Cutoff.Equal(*out.Cutoff) {
			t.Fatalf("before %s: %d %+v %s, want cutoff kept at %v", b, st, out2, msg, out.Cutoff)
		}
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// Bad requests answer 400 (or 413) and revoke nothing at all.
func TestAdminRevokeBadRequestsApplyNothing(t *testing.T) {
	s := adminStore(t)
	bad := []struct {
		body string
		want int
	}{
		{``, 400},
		{`[]`, 400},
		{`{}`, 400},
		{`{"subject":"a","jti":"b"}`, 400},
		{`{"subject":"a","expires":"1h"}`, 400},
		{`{"jti":"a","expires":"-1h"}`, 400},
		{`{"jti":"a","expires":"now"}`, 400},
		{`{"jti":"a","expires":true}`, 400},
		{`{"jti":"a","expires":1.5}`, 400},
		{`{"jti":"a","expires":"tomorrow"}`, 400},
		{`{"all":true}`, 400},
		{`{"before":"now"}`, 400},
		{`{"all":true,"before":"1h"}`, 400},
		{`{"all":true,"before":"yesterday"}`, 400},
		{`{"all":true,"before":"now","subject":"a"}`, 400},
		{`{"all":false,"before":"now"}`, 400},
		{`{"subject":"a","extra":1}`, 400},
		{`{"subject":"a"} {"subject":"b"}`, 400},
		{`[{"subject":"a"},{"all":true,"before":"now"}]`, 400},
		{`[{"subject":"a"},{"jti":"b","subject":"c"}]`, 400},
		{`[{"subject":"a"},{"jti":"b","expires":"-5m"}]`, 400},
		{`[{"subject":"a"},"b"]`, 400},
		{`[{"subject":"a"}`, 400},
		{`[` + strings.Repeat(`{"jti":"x"},`, maxBulkOrders) + `{"jti":"x"}]`, 413},
		// An empty, blank or null member never widens a revocation.
		{`{"subject":"a","session":""}`, 400},
		{`{"subject":"a","session":" "}`, 400},
		{`{"subject":"a","session":null}`, 400},
		{`{"subject":"","session":"s"}`, 400},
		{`{"subject":""}`, 400},
		{`{"jti":""}`, 400},
		{`{"token":"\t"}`, 400},
		{`{"jti":"a","expires":""}`, 400},
		{`{"all":true,"before":""}`, 400},
		{`{"all":true,"before":null}`, 400},
		{`[{"subject":"a"},{"subject":"b","session":""}]`, 400},
	}
	for _, c := range bad {
		st, _, msg := adminPost(t, c.body)
		if st != c.want || msg == "" {
			t.Errorf("%.60s: %d %q, want %d with a message", c.body, st, msg, c.want)
		}
	}
	if n := s.Denylist().Total(); n != 0 {
		t.Fatalf("bad requests wrote %d entries", n)
	}
	// The 400 names the member, and the element of a bulk request.
	for body, want := range map[string]string{
		`{"subject":"a","session":""}`:                   `"session" is empty`,
		`{"subject":"a","session":null}`:                 `"session" is null`,
		`{"jti":"a","expires":" "}`:                      `"expires" is empty`,
		`[{"subject":"a"},{"subject":"b","session":""}]`: `element 2: "session" is empty`,
	} {
		if _, _, msg := adminPost(t, body); !strings.Contains(msg, want) {
			t.Errorf("%s: %q does not say %q", body, msg, want)
		}
	}
}

func TestParseBefore(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"now", time.Time{}, true}, // the store's clock
		{"-10m", now.Add(-10 * time.Minute), true},
		{"0s", now, true},
		{"30s", now.Add(30 * time.Second), true}, // clock skew allowance
		{"1795262400", time.Unix(1795262400, 0), true},
		{"2026-11-21T11:00:00Z", now.Add(-time.Hour), true},
		{"2h", time.Time{}, false},
		{"2026-11-22T12:00:00Z", time.Time{}, false},
		{"0", time.Time{}, false},
		{"", time.Time{}, false},
		{"soon", time.Time{}, false},
	}
	for _, c := range cases {
		got, err := parseBefore(c.in, now)
		if (err == nil) != c.ok {
			t.Errorf("parseBefore(%q): err %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok && !got.Equal(c.want) {
			t.Errorf("parseBefore(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestReadBulk(t *testing.T) {
	now := time.Now()
	in := "{\"subject\":\"a\"}\n\n  {\"subject\":\"a\",\"session\":\"s\"}\r\n{\"jti\":\"j\",\"expires\":\"1h\"}\n{\"token\":\"t\"}"
	reqs, err := readBulk(strings.NewReader(in), now)
	if err != nil || len(reqs) != 4 || reqs[2].Expires != "1h" {
		t.Fatalf("readBulk: %+v, %v", reqs, err)
	}
	for _, bad := range []string{
		"",
		"\n\n",
		"{\"subject\":\"a\"}\n{\"all\":true,\"before\":\"now\"}\n",
		"{\"subject\":\"a\"}\nnot json\n",
		"{\"subject\":\"a\"}\n{\"jti\":\"j\",\"subject\":\"a\"}\n",
		"{\"subject\":\"a\"} {\"subject\":\"b\"}\n",
		"{\"subject\":\"a\",\"session\":\"\"}\n",
		"{\"subject\":\"a\",\"session\":null}\n",
		"{\"jti\":\" \"}\n",
	} {
		if _, err := readBulk(strings.NewReader(bad), now); err == nil {
			t.Errorf("readBulk(%q) accepted", bad)
		}
	}
	_, err = readBulk(strings.NewReader("{\"subject\":\"a\"}\n{\"jti\":\"j\",\"subject\":\"a\"}\n"), now)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v does not name line 2", err)
	}
}
