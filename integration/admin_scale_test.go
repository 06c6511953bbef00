package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// The admin API at scale (SPEC section 9): bulk revocations and the
// global cutoff, through the admin API and the CLI, on two replicas
// sharing one Redis.

// TestBulkRevocationAcrossReplicas sends a JSON array larger than one
// batch to one replica and NDJSON through the CLI to the other; every
// revocation is enforced on both, and a bulk request with one bad
// element applies nothing.
func TestBulkRevocationAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	cs := startReplicas(t, 2, basicConfig("redis "+srv.URL(), up, ""))
	a, b := cs[0], cs[1]

	// 1200 revocations: more than two batches of 500. Among them, one of
	// each form whose effect the test checks by a token.
	subjTok := testtoken.HS256(t, jwt.MapClaims{"sub": "bulk-subject", "sid": "x"})
	sessTok := testtoken.HS256(t, jwt.MapClaims{"sub": "bulk-alice", "sid": "bulk-s1"})
	jtiTok := testtoken.HS256(t, jwt.MapClaims{"sub": "bulk-bob", "jti": "bulk-jti-1"})
	exactTok := testtoken.HS256(t, jwt.MapClaims{"sub": "bulk-carol"})
	spared := testtoken.HS256(t, jwt.MapClaims{"sub": "bulk-spared"})
	for _, tok := range []string{subjTok, sessTok, jtiTok, exactTok, spared} {
		expectAll(t, "before the bulk revocation", cs, tok, http.StatusOK)
	}
	var items []string
	for i := range 1195 {
		items = append(items, fmt.Sprintf(`{"jti":"filler-%d","expires":"10m"}`, i))
	}
	items = append(items,
		`{"subject":"bulk-subject"}`,
		`{"subject":"bulk-alice","session":"bulk-s1"}`,
		`{"jti":"bulk-jti-1","expires":`+fmt.Sprint(time.Now().Add(time.Hour).Unix())+`}`,
		fmt.Sprintf(`{"token":%q}`, exactTok),
		`{"subject":"someone-else"}`,
	)
	st, body := a.AdminDo("POST", "/revocation/revoke", "["+strings.Join(items, ",")+"]")
	if st != http.StatusOK {
		t.Fatalf("bulk revoke: %d %s", st, body)
	}
	var out struct {
		Revoked string `json:"revoked"`
		Applied int    `json:"applied"`
		Entries int    `json:"entries"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Revoked != "bulk" || out.Applied != 1200 || out.Entries < 1200 {
		// More entries than revocations: a subject's revocation also
		// revokes by name the sessions of it that the replicas saw.
		t.Fatalf("bulk answer %s (%v): want 1200 applied and at least 1200 entries", body, err)
	}
	revoked := []string{subjTok, sessTok, jtiTok, exactTok}
	for i, tok := range revoked {
		ExpectStatus(t, fmt.Sprintf("bulk revocation %d at the serving replica", i), Get(t, a.URL+"/orders", tok), http.StatusUnauthorized)
	}
	for _, tok := range revoked {
		eventuallyAll(t, "bulk revocation at the other replica", cs, tok, http.StatusUnauthorized)
	}
	expectAll(t, "a token the bulk revocation did not name", cs, spared, http.StatusOK)

	// One bad element: 400, and none of the good ones applied.
	untouched := testtoken.HS256(t, jwt.MapClaims{"sub": "bulk-dave"})
	st, body = a.AdminDo("POST", "/revocation/revoke", `[{"subject":"bulk-dave"},{"subject":"x","jti":"y"}]`)
	if st != http.StatusBadRequest || !strings.Contains(body, "element 2") {
		t.Fatalf("bulk with a bad element: %d %s, want 400 naming element 2", st, body)
	}
	expectAll(t, "the good element of a refused bulk request", cs, untouched, http.StatusOK)

	// NDJSON on the CLI's stdin, sent to the other replica.
	var lines []string
	var cliToks []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf(`{"subject":"ndjson-%d"}`, i))
		cliToks = append(cliToks, testtoken.HS256(t, jwt.MapClaims{"sub": fmt.Sprintf("ndjson-%d", i)}))
	}
	ndjson := strings.Join(lines, "\n") + "\n\n"
	code, stdout, stderr := runCLI(t, ndjson, nil, "revocation", "revoke", "--bulk", "--address", b.Admin)
	if code != 0 || !strings.Contains(stdout, "revoked 30 revocations: 30 entries") {
		t.Fatalf("revoke --bulk: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, tok := range cliToks {
		ExpectStatus(t, "NDJSON revocation at the serving replica", Get(t, b.URL+"/orders", tok), http.StatusUnauthorized)
	}
	eventuallyAll(t, "NDJSON revocation at the other replica", cs, cliToks[29], http.StatusUnauthorized)

	// A bad line stops the CLI before it sends anything.
	code, stdout, stderr = runCLI(t, `{"subject":"ndjson-late"}`+"\n"+`{"token":""}`+"\n", nil, "revocation", "revoke", "--bulk", "--address", b.Admin)
	if code == 0 || !strings.Contains(stderr, "line 2") {
		t.Fatalf("revoke --bulk with a bad line: exit %d\n%s%s", code, stdout, stderr)
	}
	expectAll(t, "the good line of a refused NDJSON input", cs, testtoken.HS256(t, jwt.MapClaims{"sub": "ndjson-late"}), http.StatusOK)
}

// TestGlobalCutoffAcrossReplicas sets the global cutoff with the CLI at
// one replica: every subject's tokens issued until then are refused on
// both, tokens issued later pass, and the cutoff survives a restart and
// a config reload.
func TestGlobalCutoffAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	config := withLeeway(basicConfig("redis "+srv.URL(), up, ""))
	cs := startReplicas(t, 2, config)
	a, b := cs[0], cs[1]

	old := []string{
		testtoken.HS256(t, jwt.MapClaims{"sub": "g-alice", "sid": "a1"}),
		testtoken.HS256(t, jwt.MapClaims{"sub": "g-bob", "sid": nil}),
		testtoken.HS256(t, jwt.MapClaims{"sub": "g-carol", "iat": time.Now().Add(-time.Hour).Unix()}),
	}
	for _, tok := range old {
		expectAll(t, "before the cutoff", cs, tok, http.StatusOK)
	}
	code, stdout, stderr := runCLI(t, "", nil, "revocation", "revoke", "--all", "--before", "now", "--address", b.Admin)
	if code != 0 || !strings.Contains(stdout, "revoked every token of every subject issued at or before") {
		t.Fatalf("revoke --all --before now: exit %d\n%s%s", code, stdout, stderr)
	}
	for i, tok := range old {
		ExpectStatus(t, fmt.Sprintf("old token %d at the serving replica", i), Get(t, b.URL+"/orders", tok), http.StatusUnauthorized)
		eventuallyAll(t, fmt.Sprintf("old token %d everywhere", i), cs, tok, http.StatusUnauthorized)
	}
	fresh := testtoken.HS256(t, nextSecond(), jwt.MapClaims{"sub": "g-alice", "sid": "a2"})
	expectAll(t, "a token issued after the cutoff", cs, fresh, http.StatusOK)

	// One entry, reported as such.
	st, body := a.AdminDo("GET", "/revocation/status", "")
	if st != http.StatusOK || !strings.Contains(body, `"global":1`) {
		t.Fatalf("status after the cutoff: %d %s", st, body)
	}
	if code, out, errOut := runCLI(t, "", nil, "revocation", "status", "--address", a.Admin); code != 0 || !strings.Contains(out, "GLOBAL") {
		t.Fatalf("caddy revocation status: exit %d\n%s%s", code, out, errOut)
	}

	// Surviving a crash and restart (loaded from Redis) and a reload.
	a.Kill()
	a.Restart()
	a.WaitReady()
	b.Reload(config)
	b.WaitReady()
	for i, tok := range old {
		expectAll(t, fmt.Sprintf("old token %d after a restart and a reload", i), cs, tok, http.StatusUnauthorized)
	}
	expectAll(t, "the later token after a restart and a reload", cs, fresh, http.StatusOK)

	// A cutoff in the future is refused, by the CLI and the API alike.
	if code, _, stderr := runCLI(t, "", nil, "revocation", "revoke", "--all", "--before", "2h", "--address", a.Admin); code == 0 || !strings.Contains(stderr, "future") {
		t.Fatalf("a cutoff two hours ahead: exit %d %s", code, stderr)
	}
	if st, body := a.AdminDo("POST", "/revocation/revoke", `{"all":true,"before":"2h"}`); st != http.StatusBadRequest {
		t.Fatalf("API cutoff two hours ahead: %d %s", st, body)
	}
	expectAll(t, "the later token after the refused cutoffs", cs, fresh, http.StatusOK)
}

// TestGlobalCutoffEmbedded: with the embedded store the cutoff holds in
// the process, across a config reload.
func TestGlobalCutoffEmbedded(t *testing.T) {
	t.Parallel()
	up := StartUpstream(t)
	config := basicConfig("", up, "")
	c := StartCaddy(t, config)
	c.WaitReady()
	old := testtoken.HS256(t, jwt.MapClaims{"sub": "e-alice", "iat": time.Now().Add(-2 * time.Minute).Unix()})
	ExpectStatus(t, "before the cutoff", Get(t, c.URL+"/orders", old), http.StatusOK)
	adminRevoke(t, c, `{"all":true,"before":"-1m"}`)
	ExpectStatus(t, "issued before the cutoff", Get(t, c.URL+"/orders", old), http.StatusUnauthorized)
	recent := testtoken.HS256(t, nil)
	ExpectStatus(t, "issued after the cutoff", Get(t, c.URL+"/orders", recent), http.StatusOK)
	c.Reload(config)
	ExpectStatus(t, "issued before the cutoff, after a reload", Get(t, c.URL+"/orders", old), http.StatusUnauthorized)
	ExpectStatus(t, "issued after the cutoff, after a reload", Get(t, c.URL+"/orders", recent), http.StatusOK)
}
