package testredis

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sentinel is a real Sentinel set-up on loopback: a master, its replicas
// and several redis-sentinel processes watching them, each with its own
// config file in its own temporary directory.
type Sentinel struct {
	t testing.TB
	// MasterName is the name the Sentinels know the master by.
	MasterName string
	// Master is the master at start (after a failover, a replica is).
	Master *Server
	// Replicas replicate the master.
	Replicas []*Server
	// Sentinels are the redis-sentinel processes.
	Sentinels []*Server
}

// StartSentinel starts a master, replicas replicas of it, and sentinels
// Sentinels with a quorum of sentinels/2+1, a master declared down after
// one second, and waits until every Sentinel knows the master, every
// replica and every other Sentinel. Everything is stopped by its PID when
// the test ends.
func StartSentinel(t testing.TB, replicas, sentinels int) *Sentinel {
	t.Helper()
	bin := Binary(t, "redis-sentinel")
	s := &Sentinel{t: t, MasterName: "mymaster"}
	// A diskless full sync waits five seconds by default for more
	// replicas to join it; here there is nothing to wait for.
	noDelay := []string{"--repl-diskless-sync-delay", "0"}
	s.Master = Start(t, noDelay...)
	for range replicas {
		r := Start(t, append(noDelay, "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port))...)
		s.Replicas = append(s.Replicas, r)
	}
	for _, r := range s.Replicas {
		if err := waitInfo(r.Addr(), "replication", "master_link_status", "up", 20*time.Second); err != nil {
			t.Fatalf("replica %s: %v\n%s", r.Addr(), err, r.Log())
		}
	}
	quorum := sentinels/2 + 1
	for range sentinels {
		dir := t.TempDir()
		port := FreePort(t)
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
dir %s
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, port, dir, s.MasterName, s.Master.Port, quorum, s.MasterName, s.MasterName, s.MasterName)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatalf("sentinel config: %v", err)
		}
		sn := &Server{t: t, bin: bin, args: []string{conf}, Port: port, Dir: dir}
		sn.start()
		t.Cleanup(sn.Stop)
		s.Sentinels = append(s.Sentinels, sn)
	}
	// Sentinels find each other and the replicas through the master,
	// every couple of seconds.
	deadline := time.Now().Add(30 * time.Second)
	for _, sn := range s.Sentinels {
		for {
			m, err := s.masterState(sn)
			if err == nil && m["num-other-sentinels"] == strconv.Itoa(sentinels-1) &&
				m["num-slaves"] == strconv.Itoa(replicas) && m["flags"] == "master" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sentinel %s never saw the whole set-up: %v %v\n%s", sn.Addr(), m, err, sn.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return s
}

// Addrs are the Sentinels' host:port, as a client configures them.
func (s *Sentinel) Addrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		out[i] = sn.Addr()
	}
	return out
}

// masterState returns SENTINEL MASTER as a map.
func (s *Sentinel) masterState(sn *Server) (map[string]string, error) {
	out, err := sn.Do("SENTINEL", "MASTER", s.MasterName)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	m := make(map[string]string, len(lines)/2)
	for i := 0; i+1 < len(lines); i += 2 {
		m[lines[i]] = lines[i+1]
	}
	return m, nil
}

// MasterAddr asks the Sentinels (the first that answers) for the
// master's host:port.
func (s *Sentinel) MasterAddr() (string, error) {
	var last error
	for _, sn := range s.Sentinels {
		out, err := sn.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
		if err != nil {
			last = err
			continue
		}
		f := strings.Fields(out)
		if len(f) != 2 {
			last = fmt.Errorf("sentinel %s: unexpected reply %q", sn.Addr(), out)
			continue
		}
		return f[0] + ":" + f[1], nil
	}
	return "", last
}

// WaitFailover waits until the Sentinels name a master other than old,
// and that master says it is one.
func (s *Sentinel) WaitFailover(old string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		addr, err := s.MasterAddr()
		if err == nil && addr != old {
			if role, err := Do(addr, "ROLE"); err == nil && strings.HasPrefix(role, "master\n") {
				return addr, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no failover from %s within %s (master now %q, %v)", old, within, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Server returns the server of the set-up listening on addr.
func (s *Sentinel) Server(addr string) *Server {
	for _, srv := range append([]*Server{s.Master}, s.Replicas...) {
		if srv.Addr() == addr {
			return srv
		}
	}
	return nil
}

// waitInfo waits until INFO section on addr has field set to want.
func waitInfo(addr, section, field, want string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var got string
	for {
		out, err := Do(addr, "INFO", section)
		if err == nil {
			got = infoField(out, field)
			if got == want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("INFO %s: %s is %q, want %q (%v)", section, field, got, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// infoField finds "field:value" in an INFO or CLUSTER INFO reply.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}
