// Package testredis starts real redis-server processes on free loopback
// ports for tests: a standalone server, a Sentinel set-up or a Cluster.
// Every process is stopped by its PID when the test ends.
package testredis

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of a program the tests need, or fails the test
// with the command that installs it. The test command (scripts/test.sh)
// installs them, so a missing one means the tests were run another way.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: run the tests with ./scripts/test.sh, which installs it (apt-get install -y redis-server redis-sentinel)", name)
	}
	return p
}

// handedOut is every port FreePort returned in this process. Tests run
// in parallel: were a port handed out twice, a server one test stopped
// (a killed master) could be replaced on its port by another test's
// server while the first test's clients and Sentinels still point there,
// and they would find it alive.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort returns a loopback TCP port that was free a moment ago and
// that it never returned before in this process.
func FreePort(t testing.TB) int {
	t.Helper()
	// The listeners stay open until a new port is found, so that the
	// kernel does not offer the same one again.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		handedOut.Lock()
		if !handedOut.ports[port] {
			if handedOut.ports == nil {
				handedOut.ports = make(map[int]bool)
			}
			handedOut.ports[port] = true
			handedOut.Unlock()
			return port
		}
		handedOut.Unlock()
	}
	t.Fatal("find a free port: the kernel offered only ports already handed out")
	return 0
}

// Server is one redis-server (or redis-sentinel) process.
type Server struct {
	t    testing.TB
	bin  string
	args []string
	Port int
	Dir  string
	cmd  *exec.Cmd
	log  string
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Start runs a standalone redis-server without persistence on a free
// loopback port, and stops it when the test ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := Binary(t, "redis-server")
	s := &Server{t: t, bin: bin, Dir: t.TempDir()}
	s.Port = FreePort(t)
	s.args = append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.Dir,
		"--protected-mode", "yes",
	}, extra...)
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.log = filepath.Join(s.Dir, fmt.Sprintf("server-%d.log", time.Now().UnixNano()))
	f, err := os.Create(s.log)
	if err != nil {
		s.t.Fatalf("redis log: %v", err)
	}
	defer f.Close()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = f, f
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis on port %d: %v", s.Port, err)
	}
	if err := WaitPing(s.Addr(), 10*time.Second); err != nil {
		out, _ := os.ReadFile(s.log)
		s.Stop()
		s.t.Fatalf("redis on port %d did not come up: %v\n%s", s.Port, err, out)
	}
}

// Stop kills the process (by its PID) and waits for it. Safe to call
// more than once.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart stops the server and starts it again on the same port, empty
// (there is no persistence).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Resume starts a stopped server again on the same port.
func (s *Server) Resume() {
	s.t.Helper()
	s.start()
}

// Log returns what the process (and any earlier run of it on the same
// port) has written so far, for failure messages.
func (s *Server) Log() string {
	files, _ := filepath.Glob(filepath.Join(s.Dir, "server-*.log"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// Do sends one command and returns the reply as text (RESP, flattened).
func (s *Server) Do(args ...string) (string, error) {
	return Do(s.Addr(), args...)
}

// WaitPing waits until a server answers PING.
func WaitPing(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		out, err := Do(addr, "PING")
		if err == nil && strings.Contains(out, "PONG") {
			return nil
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PONG from %s: %v", addr, last)
}

// Do sends one command to addr in RESP and returns the reply, flattened to
// lines. It keeps the helper free of any client library.
func Do(addr string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	var out strings.Builder
	if err := readReply(r, &out); err != nil {
		return out.String(), err
	}
	return out.String(), nil
}

func readReply(r *bufio.Reader, out *strings.Builder) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		out.WriteString(line[1:] + "\n")
	case '-':
		return fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			out.WriteString("(nil)\n")
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		out.Write(buf[:n])
		out.WriteString("\n")
	case '*':
		n, _ := strconv.Atoi(line[1:])
		for i := 0; i < n; i++ {
			if err := readReply(r, out); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}
