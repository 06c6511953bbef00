package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// A replica with compact_denylist beside an exact one on one Redis:
// what the exact one revokes, the compact one blocks, as it comes from
// the feed and again after a restart, when it holds the revocations as
// fingerprints and confirms each match in Redis; tokens nobody revoked
// pass, before and after. The restart starts from the compact snapshot
// the compact replica wrote (its log and /revocation/status say so), and
// a revocation made while it was down comes from the feed.
func TestCompactReplicaBlocksAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	exact := StartCaddy(t, basicConfig("redis "+srv.URL(), up, ""))
	exact.WaitReady()
	compact := StartCaddy(t, basicConfig("redis "+srv.URL(), up, "compact_denylist\n\t\tsnapshot_every 10s"))
	compact.WaitReady()

	var revoked, clean []string
	for i := range 20 {
		tok := testtoken.HS256(t, jwt.MapClaims{"sid": fmt.Sprintf("c-%d", i), "jti": fmt.Sprintf("compact-jti-%d", i)})
		ExpectStatus(t, "a token before its revocation", Get(t, compact.URL+"/orders", tok), http.StatusOK)
		if i%2 == 0 {
			revokeTokenAt(t, exact, tok)
			revoked = append(revoked, tok)
		} else {
			clean = append(clean, tok)
		}
	}
	adminRevoke(t, exact, `{"jti":"compact-jti-1"}`)
	revoked = append(revoked, clean[0])
	clean = clean[1:]
	for i, tok := range revoked {
		c := []*Caddy{compact}
		eventuallyAll(t, fmt.Sprintf("revocation %d, from the feed", i), c, tok, http.StatusUnauthorized)
	}

	// Its compact snapshot, written after the revocations (within 12.5 s:
	// the first turn comes within a quarter of the period).
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(compact.Logs(), `"kind":"compact"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no compact snapshot written:\n%s", compact.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	compact.Stop()
	down := testtoken.HS256(t, jwt.MapClaims{"sid": "revoked-while-down"})
	revokeTokenAt(t, exact, down)
	revoked = append(revoked, down)
	compact.Restart()
	compact.WaitReady()
	if logs := compact.Logs(); !strings.Contains(logs, `"source":"compact snapshot"`) {
		t.Fatalf("the restart did not load the compact snapshot:\n%s", logs)
	}
	st, body := compact.AdminDo("GET", "/revocation/status", "")
	if st != http.StatusOK || !strings.Contains(body, `"loaded_from":"compact snapshot"`) || !strings.Contains(body, `"static_values":`) {
		t.Fatalf("/revocation/status: %d %s", st, body)
	}
	for i, tok := range revoked {
		ExpectStatus(t, fmt.Sprintf("revocation %d after the restart", i), Get(t, compact.URL+"/orders", tok), http.StatusUnauthorized)
	}
	for i, tok := range clean {
		ExpectStatus(t, fmt.Sprintf("clean token %d after the restart", i), Get(t, compact.URL+"/orders", tok), http.StatusOK)
	}
}
