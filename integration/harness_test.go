// Package integration holds the end-to-end tests: a real caddy binary
// built from this repository, real redis-server processes, a real
// upstream HTTP server and real HTTP clients, all on loopback.
package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// caddyBin is the binary under test: $CADDY_BIN when set (the test script
// sets it to the ./caddy that ./xcaddy.sh built), else one built here
// from ./cmd/caddy.
var caddyBin string

// repoRoot is the repository's top directory.
var repoRoot string

// buildDir holds the binaries the tests build, removed when they end.
var buildDir string

// defaultParallel is how many tests run at once unless -test.parallel
// says otherwise. The tests spend their time waiting on processes,
// networks and timers, not on the CPU, so more of them than the machine
// has cores overlap their waits: each starts its own redis-server,
// caddy and upstream on free loopback ports and shares nothing.
const defaultParallel = 6

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(defaultParallel))
	}
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// xcaddyBuildEnv is the environment of a caddy build made here: the
// flags ./xcaddy.sh builds with (see scripts/test.sh), so that the build
// reuses the dependencies that build, go vet and staticcheck compiled
// instead of compiling all of them once more (minutes with a cold cache).
func xcaddyBuildEnv() []string {
	flags := "-trimpath -tags=nobadger,nomysql,nopgx"
	if f := os.Getenv("GOFLAGS"); f != "" {
		flags = f + " " + flags
	}
	return append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS="+flags)
}

func run(m *testing.M) (int, error) {
	if bin := os.Getenv("CADDY_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return 0, err
		}
		caddyBin = abs
	}
	dir, err := os.MkdirTemp("", "caddy-revocation-bin-")
	if err != nil {
		return 0, err
	}
	// Every build a test makes goes in here (the old build of a rolling
	// upgrade too), and goes with it.
	defer os.RemoveAll(dir)
	buildDir = dir
	if caddyBin != "" {
		return m.Run(), nil
	}
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", caddyBin, "./cmd/caddy")
	build.Dir = repoRoot
	build.Env = xcaddyBuildEnv()
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build caddy: %v\n%s", err, out)
	}
	return m.Run(), nil
}

// Caddy is one running caddy process.
type Caddy struct {
	t      *testing.T
	dir    string
	config string
	Admin  string // host:port of the admin endpoint
	URL    string // base URL of the guarded site
	cmd    *exec.Cmd
	log    string
	done   chan struct{}
	// bin is the binary run: caddyBin unless StartCaddyBin named another
	// (an older build, for rolling upgrades).
	bin string
}

// StartCaddy runs caddy with a Caddyfile. The text may use {{ADMIN}} and
// {{PORT}}, replaced by free loopback ports (the admin endpoint and the
// guarded site); it is stopped, by its PID, when the test ends.
func StartCaddy(t *testing.T, caddyfile string, env ...string) *Caddy {
	t.Helper()
	return StartCaddyBin(t, caddyBin, caddyfile, env...)
}

// StartCaddyBin is StartCaddy with another caddy binary.
func StartCaddyBin(t *testing.T, bin, caddyfile string, env ...string) *Caddy {
	t.Helper()
	c := &Caddy{t: t, dir: t.TempDir(), bin: bin}
	c.config = filepath.Join(c.dir, "Caddyfile")
	t.Cleanup(c.Stop)
	// Before Stop (cleanups run last first): a test that failed because
	// its caddy died shows why (a panic, a fatal error), which its
	// temporary directory would otherwise take away.
	t.Cleanup(func() {
		if !t.Failed() || c.done == nil {
			return
		}
		select {
		case <-c.done:
			log := c.Logs()
			t.Logf("caddy %s had exited; the end of its log:\n%s", c.URL, log[max(0, len(log)-6000):])
		default:
		}
	})
	// A port found free may be taken by another process before caddy
	// binds it; then caddy exits saying so, and we try other ports.
	for attempt := 1; ; attempt++ {
		c.Admin = "127.0.0.1:" + strconv.Itoa(testredis.FreePort(t))
		port := testredis.FreePort(t)
		c.URL = "http://127.0.0.1:" + strconv.Itoa(port)
		c.write(caddyfile, port)
		err := c.start(env)
		if err == nil {
			return c
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatalf("%v\n%s", err, c.Logs())
		}
	}
}

var errPortTaken = errors.New("a port was taken before caddy could bind it")

func (c *Caddy) write(text string, port int) {
	c.t.Helper()
	text = strings.ReplaceAll(text, "{{ADMIN}}", c.Admin)
	text = strings.ReplaceAll(text, "{{PORT}}", strconv.Itoa(port))
	if err := os.WriteFile(c.config, []byte(text), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// Port returns the guarded site's port.
func (c *Caddy) Port() int {
	p, _ := strconv.Atoi(c.URL[strings.LastIndex(c.URL, ":")+1:])
	return p
}

func (c *Caddy) start(env []string) error {
	c.t.Helper()
	c.log = filepath.Join(c.dir, fmt.Sprintf("caddy-%d.log", time.Now().UnixNano()))
	f, err := os.Create(c.log)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	c.cmd = exec.Command(c.bin, "run", "--config", c.config, "--adapter", "caddyfile")
	c.cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(c.dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(c.dir, "config"),
		"HOME="+c.dir,
	)
	c.cmd.Env = append(c.cmd.Env, env...)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start caddy: %v", err)
	}
	c.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(c.cmd, c.done)
	return c.waitUp()
}

// waitUp waits until this process has started every app (it logs
// "serving initial configuration" only then, so the ports are its own)
// and its admin endpoint answers.
func (c *Caddy) waitUp() error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		log, _ := os.ReadFile(c.log)
		select {
		case <-c.done:
			c.cmd = nil
			if bytes.Contains(log, []byte("address already in use")) {
				return errPortTaken
			}
			return errors.New("caddy exited during start")
		default:
		}
		if bytes.Contains(log, []byte("serving initial configuration")) {
			if st, body := c.AdminDo("GET", "/revocation/live", ""); st == http.StatusOK && strings.Contains(body, `"live":true`) {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("caddy did not come up within 20s")
}

// Stop ends the process (SIGTERM, then SIGKILL) and waits for it.
func (c *Caddy) Stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// Kill ends the process at once, as a crash would.
func (c *Caddy) Kill() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	c.cmd = nil
}

// Restart stops the process and starts a new one on the same config and
// ports.
func (c *Caddy) Restart(env ...string) {
	c.t.Helper()
	c.Stop()
	if err := c.start(env); err != nil {
		c.t.Fatalf("restart: %v\n%s", err, c.Logs())
	}
}

// Reload applies a new Caddyfile to the running process with
// `caddy reload`.
func (c *Caddy) Reload(caddyfile string) {
	c.t.Helper()
	c.write(caddyfile, c.Port())
	out, err := exec.Command(caddyBin, "reload", "--config", c.config, "--adapter", "caddyfile", "--address", c.Admin, "--force").CombinedOutput()
	if err != nil {
		c.t.Fatalf("caddy reload: %v\n%s\n%s", err, out, c.Logs())
	}
	// The old servers close their idle keep-alive connections; a client
	// reusing one would read EOF, so the tests' client drops them.
	http.DefaultClient.CloseIdleConnections()
}

// Logs returns everything the process has written so far.
func (c *Caddy) Logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(c.dir, "caddy-*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// AdminDo calls the admin endpoint.
func (c *Caddy) AdminDo(method, path, body string) (int, string) {
	req, err := http.NewRequest(method, "http://"+c.Admin+path, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// WaitReady waits until /revocation/ready says 200.
func (c *Caddy) WaitReady() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		st, body := c.AdminDo("GET", "/revocation/ready", "")
		if st == http.StatusOK {
			return
		}
		last = body
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("never ready: %s\n%s", last, c.Logs())
}

// Upstream is the app behind the proxy: a real HTTP server that records
// every request it receives, whole (method, path, query, every header,
// body), so that a test can prove a request never reached it.
type Upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
}

// probeHeader carries the id that send gives every test request, so that
// the upstreams can tell whether they received a given one.
const probeHeader = "X-Test-Probe"

// upstreams are every upstream the tests started, for NeverReached.
var upstreams struct {
	sync.Mutex
	all []*Upstream
}

// StartUpstream starts an upstream on a free loopback port.
func StartUpstream(t *testing.T) *Upstream {
	t.Helper()
	u := &Upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"upstream":"reached","path":%q}`, r.URL.Path)
	}))
	t.Cleanup(u.Close)
	upstreams.Lock()
	upstreams.all = append(upstreams.all, u)
	upstreams.Unlock()
	return u
}

// Addr is the upstream's host:port, for reverse_proxy.
func (u *Upstream) Addr() string { return strings.TrimPrefix(u.URL, "http://") }

// Hits returns how many requests reached the upstream.
func (u *Upstream) Hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// Saw reports whether any request that reached the upstream carried s
// anywhere: in its query, any header, or its body.
func (u *Upstream) Saw(s string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.seen {
		if strings.Contains(r.Query, s) || strings.Contains(r.Body, s) {
			return true
		}
		for _, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, s) {
					return true
				}
			}
		}
	}
	return false
}

// received reports whether the upstream received the request with probe.
func (u *Upstream) received(probe string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.seen {
		if r.Header.Get(probeHeader) == probe {
			return true
		}
	}
	return false
}

// NeverReached fails the test when any upstream received the request
// that produced r: the assertion of every blocked case.
func NeverReached(t testing.TB, what string, r Response) {
	t.Helper()
	if r.Probe == "" {
		t.Fatalf("%s: response without a probe id", what)
	}
	upstreams.Lock()
	all := slices.Clone(upstreams.all)
	upstreams.Unlock()
	for _, u := range all {
		if u.received(r.Probe) {
			t.Fatalf("%s: the upstream received the request (status %d)", what, r.Status)
		}
	}
}

// ExpectBlocked checks that a request was stopped with 401 and the RFC
// 6750 challenge, and that no upstream ever received it.
func ExpectBlocked(t testing.TB, what string, r Response) {
	t.Helper()
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("%s: status %d, want 401; body %s", what, r.Status, r.Body)
	}
	if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer error="invalid_token"`) {
		t.Fatalf("%s: WWW-Authenticate %q", what, got)
	}
	NeverReached(t, what, r)
}

var idCounter struct {
	sync.Mutex
	n int
}

func randomID() string {
	idCounter.Lock()
	idCounter.n++
	n := idCounter.n
	idCounter.Unlock()
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d-%d", time.Now().UnixNano(), n)))
	return hex.EncodeToString(sum[:8])
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   string
	// Probe is the id sent in probeHeader (see NeverReached).
	Probe string
}

// JSON decodes the body into a map.
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.Body, err)
	}
	return m
}

// Do sends a request. headers alternate name, value.
func Do(t testing.TB, method, url, body string, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	return send(t, req, headers...)
}

// send adds headers (alternating name, value) to req, sends it and reads
// the whole answer.
func send(t testing.TB, req *http.Request, headers ...string) Response {
	t.Helper()
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	probe := req.Header.Get(probeHeader)
	if probe == "" {
		probe = randomID()
		req.Header.Set(probeHeader, probe)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Probe: probe}
}

// Get sends a GET with a bearer token ("" for none).
func Get(t testing.TB, url, token string) Response {
	t.Helper()
	if token == "" {
		return Do(t, "GET", url, "")
	}
	return Do(t, "GET", url, "", "Authorization", "Bearer "+token)
}

// ExpectStatus fails the test when a response has another status. A
// refusal (4xx, 503) must also never have reached any upstream.
func ExpectStatus(t testing.TB, what string, r Response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.Status, want, r.Body)
	}
	if want >= 400 && want < 500 || want == http.StatusServiceUnavailable {
		NeverReached(t, what, r)
	}
}

// Eventually polls cond until it holds or ten seconds pass.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Validate runs `caddy validate` on a Caddyfile and returns its exit
// status and output.
func Validate(t *testing.T, caddyfile string, env ...string) (bool, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, "validate", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return err == nil, out.String()
}

// guarded returns a Caddyfile with a revocation block in front of the
// upstream; inner is the body of the revocation block.
func guarded(inner, upstream string) string {
	return fmt.Sprintf(`{
	admin {{ADMIN}}
}
:{{PORT}} {
	bind 127.0.0.1
	revocation {
%s
	}
	reverse_proxy %s
}
`, inner, upstream)
}
