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

// sharedStoreScenario is the end-to-end test every Redis topology must
// pass: revocations at one replica (endpoint and admin API) are enforced
// at the other, a replica started afterwards loads them, and its own
// revocations reach the first two. It returns the three replicas and the
// tokens revoked.
func sharedStoreScenario(t *testing.T, config string) ([]*Caddy, []string) {
	t.Helper()
	cs := startReplicas(t, 2, config)
	a, b := cs[0], cs[1]
	revoked := []string{
		testtoken.HS256(t, jwt.MapClaims{"sid": "t1"}),
		testtoken.HS256(t, jwt.MapClaims{"sid": "t2"}),
		testtoken.HS256(t, jwt.MapClaims{"sub": "dave", "sid": "d1"}),
	}
	good := testtoken.HS256(t, jwt.MapClaims{"sid": "t-good"})
	for _, tok := range append(revoked, good) {
		expectAll(t, "before any revocation", cs, tok, http.StatusOK)
	}
	logoutAt(t, a, revoked[0])
	ExpectStatus(t, "logout, at the replica that served it", Get(t, a.URL+"/orders", revoked[0]), http.StatusUnauthorized)
	revokeTokenAt(t, b, revoked[1])
	ExpectStatus(t, "admin revocation, at the replica that served it", Get(t, b.URL+"/orders", revoked[1]), http.StatusUnauthorized)
	// A subject revocation's script also reads the subject's set of seen
	// sessions, a key derived inside the script: it shares the slot.
	adminRevoke(t, a, `{"subject":"dave"}`)
	for _, tok := range revoked {
		eventuallyAll(t, "revoked at one replica", cs, tok, http.StatusUnauthorized)
	}

	c := StartCaddy(t, config)
	c.WaitReady()
	cs = append(cs, c)
	for _, tok := range revoked {
		ExpectStatus(t, "a replica started later, at once", Get(t, c.URL+"/orders", tok), http.StatusUnauthorized)
	}
	expectAll(t, "a token nobody revoked", cs, good, http.StatusOK)
	later := testtoken.HS256(t, jwt.MapClaims{"sid": "t3"})
	expectAll(t, "before its revocation", cs, later, http.StatusOK)
	logoutAt(t, c, later)
	eventuallyAll(t, "revoked at the replica started later", cs, later, http.StatusUnauthorized)
	return cs, append(revoked, later)
}

// A real three-master Redis Cluster (redis-cli --cluster create), given
// in the long form: redis { addrs ... cluster }. Every key of the
// denylist shares the {dl} hash slot, so each revocation is one script on
// one master; which master that is, the replicas learn from the cluster.
func TestClusterEndToEnd(t *testing.T) {
	t.Parallel()
	cl := testredis.StartCluster(t, 3)
	owner, err := cl.Owner("revocation:{dl}:feed")
	if err != nil {
		t.Fatal(err)
	}
	// Seed the client with the other masters first: it must find the slot
	// owner itself, and a full load must scan past the seed.
	addrs := []string{}
	for _, n := range cl.Nodes {
		if n != owner {
			addrs = append(addrs, n.Addr())
		}
	}
	addrs = append(addrs, owner.Addr())
	up := StartUpstream(t)
	config := basicConfig(fmt.Sprintf("redis {\n\t\t\taddrs %s\n\t\t\tcluster\n\t\t}", strings.Join(addrs, " ")), up, "")
	sharedStoreScenario(t, config)

	for _, n := range cl.Nodes {
		out, err := n.Do("DBSIZE")
		if err != nil {
			t.Fatal(err)
		}
		if holds := out != "0\n"; holds != (n == owner) {
			t.Fatalf("node %s holds %s keys (slot owner: %v): every key must live in the {dl} slot", n.Addr(), strings.TrimSpace(out), n == owner)
		}
	}
}

// A real Sentinel set-up (a master, a replica, three redis-sentinel
// processes), given in the long form: redis { addrs ... master_name ... }.
// After the shared-store scenario, the master is killed: the replicas keep
// enforcing everything while the Sentinels fail over, then new
// revocations work against the promoted replica and reach every replica,
// and a replica started after the failover loads everything.
func TestSentinelEndToEndAndFailover(t *testing.T) {
	t.Parallel()
	sn := testredis.StartSentinel(t, 1, 3)
	up := StartUpstream(t)
	config := basicConfig(fmt.Sprintf("redis {\n\t\t\taddrs %s\n\t\t\tmaster_name %s\n\t\t}", strings.Join(sn.Addrs(), " "), sn.MasterName), up, "")
	cs, revoked := sharedStoreScenario(t, config)

	// Make sure the replica has every write before the master dies
	// (replication is asynchronous; a real failover can lose the last
	// writes, and the replicas' local copies would still hold them).
	if out, err := sn.Master.Do("WAIT", "1", "5000"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("WAIT for the replica: %q %v", out, err)
	}
	old := sn.Master.Addr()
	good := testtoken.HS256(t, jwt.MapClaims{"sid": "f-good"})
	expectAll(t, "a valid token before the failover", cs, good, http.StatusOK)
	sn.Master.Stop()
	for _, tok := range revoked {
		expectAll(t, "revoked, with the master gone", cs, tok, http.StatusUnauthorized)
	}
	if _, err := sn.WaitFailover(old, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, tok := range revoked {
		expectAll(t, "revoked, after the failover", cs, tok, http.StatusUnauthorized)
	}
	expectAll(t, "a valid token after the failover", cs, good, http.StatusOK)

	// A revocation may fail (500) until the replica's client has found
	// the new master; it must then succeed, and reach everyone.
	after := testtoken.HS256(t, jwt.MapClaims{"sid": "f1"})
	var last Response
	deadline := time.Now().Add(30 * time.Second)
	for {
		last = Do(t, "POST", cs[0].URL+"/v1/auth/logout", "", "Authorization", "Bearer "+after)
		if last.Status == http.StatusOK {
			break
		}
		if last.Status != http.StatusInternalServerError || time.Now().After(deadline) {
			t.Fatalf("logout after the failover: %d %s", last.Status, last.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	eventuallyAll(t, "revoked after the failover", cs, after, http.StatusUnauthorized)
	revokeTokenAt(t, cs[1], good)
	eventuallyAll(t, "admin revocation after the failover", cs, good, http.StatusUnauthorized)

	d := StartCaddy(t, config)
	d.WaitReady()
	for i, tok := range append(revoked, after, good) {
		ExpectStatus(t, fmt.Sprintf("revocation %d at a replica started after the failover", i), Get(t, d.URL+"/orders", tok), http.StatusUnauthorized)
	}
}
