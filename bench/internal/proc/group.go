package proc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// Group is the processes one benchmark run starts, each in its own
// process group and with its files (HOME, XDG dirs, logs, configs) in
// Work, so that StopAll stops every one of them by PID.
type Group struct {
	Work  string
	procs []*exec.Cmd
}

// Start starts cmd as a member of the group.
func (g *Group) Start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+g.Work, "XDG_CONFIG_HOME="+g.Work, "HOME="+g.Work)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	g.procs = append(g.procs, cmd)
	return nil
}

// StopAll stops the group's processes, the last started first.
func (g *Group) StopAll() {
	for _, p := range slices.Backward(g.procs) {
		Stop(p)
	}
}

// Redis starts a redis-server on a free loopback port, without
// persistence, with its files in dir (Work when empty) and args added,
// and returns once it accepts connections.
func (g *Group) Redis(dir string, args ...string) (port int, cmd *exec.Cmd, err error) {
	if dir == "" {
		dir = g.Work
	}
	port = FreePort()
	cmd = exec.Command("redis-server", append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir}, args...)...)
	if err := g.Start(cmd); err != nil {
		return 0, nil, err
	}
	for range 200 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return port, cmd, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return 0, nil, errors.New("redis-server did not accept connections within 5 s")
}

// Replica is a caddy process of the group.
type Replica struct {
	Name  string
	Cmd   *exec.Cmd
	Admin string // http://127.0.0.1:port of its admin API
	Addr  string // 127.0.0.1:port of its site
	Log   string // the file its output goes to
}

// Caddy starts bin with the Caddyfile that config returns for the
// admin and site ports it is given, and returns once the replica's
// /revocation/ready answers 200, with the time that took from its start.
func (g *Group) Caddy(bin, name string, config func(admin, site int) string, within time.Duration) (*Replica, time.Duration, error) {
	admin, site := FreePort(), FreePort()
	path := filepath.Join(g.Work, name+".Caddyfile")
	if err := os.WriteFile(path, []byte(config(admin, site)), 0o600); err != nil {
		return nil, 0, err
	}
	logf, err := os.Create(filepath.Join(g.Work, name+".log"))
	if err != nil {
		return nil, 0, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logf, logf
	t0 := time.Now()
	if err := g.Start(cmd); err != nil {
		return nil, 0, err
	}
	r := &Replica{Name: name, Cmd: cmd, Log: logf.Name(),
		Admin: "http://127.0.0.1:" + strconv.Itoa(admin), Addr: "127.0.0.1:" + strconv.Itoa(site)}
	client := &http.Client{Timeout: time.Second}
	for time.Since(t0) < within {
		resp, err := client.Get(r.Admin + "/revocation/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, time.Since(t0), nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(r.Log)
	return nil, 0, fmt.Errorf("replica %s not ready within %s:\n%s", name, within, log[max(0, len(log)-2000):])
}

// Pct is the q-quantile of sorted durations (nearest rank).
func Pct(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Revoke posts body to the replica's /revocation/revoke and returns how
// many revocations it applied (at least one for an answer of 200).
func (r *Replica) Revoke(ctx context.Context, c *http.Client, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Admin+"/revocation/revoke", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("revoke at %s: %w", r.Name, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("revoke at %s: status %d: %s", r.Name, resp.StatusCode, data)
	}
	var out struct {
		Applied int `json:"applied"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, fmt.Errorf("revoke at %s: %w: %s", r.Name, err, data)
	}
	return max(out.Applied, 1), nil
}
