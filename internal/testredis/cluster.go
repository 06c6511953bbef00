package testredis

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a real Redis Cluster on loopback: masters only, slots spread
// over them by redis-cli --cluster create.
type Cluster struct {
	// Nodes are the masters.
	Nodes []*Server
}

// StartCluster starts masters redis-server processes in cluster mode
// (each with its own free client and bus ports and its own nodes file),
// joins them with redis-cli --cluster create, and waits until every node
// says cluster_state:ok. Every process is stopped by its PID when the
// test ends.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	cli := Binary(t, "redis-cli")
	c := &Cluster{}
	for range masters {
		// The bus port is given explicitly: the default (port+10000) may
		// be taken, or past 65535 for a high ephemeral port.
		bus := FreePort(t)
		n := Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(bus),
		)
		c.Nodes = append(c.Nodes, n)
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.Nodes {
		for {
			info, err := n.Do("CLUSTER", "INFO")
			if err == nil && infoField(info, "cluster_state") == "ok" &&
				infoField(info, "cluster_slots_ok") == "16384" &&
				infoField(info, "cluster_known_nodes") == strconv.Itoa(masters) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s never became ok: %v\n%s", n.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs are the nodes' host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// Owner returns the node that serves key: the one that answers for it
// rather than redirecting.
func (c *Cluster) Owner(key string) (*Server, error) {
	for _, n := range c.Nodes {
		_, err := n.Do("EXISTS", key)
		if err == nil {
			return n, nil
		}
		if !strings.Contains(err.Error(), "MOVED") {
			return nil, fmt.Errorf("EXISTS %s on %s: %v", key, n.Addr(), err)
		}
	}
	return nil, fmt.Errorf("no node serves %s", key)
}
