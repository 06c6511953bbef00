package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// The docs are tested where they make a claim a test can hold: each
// walk-through is run against the real binary and its output compared,
// each Caddyfile is adapted by it, each CLI transcript is replayed. The
// tests find their material by markers, an HTML comment on the line
// before a fenced block (docs/developing.md lists them), so that a new
// page or walk-through is tested by adding one line to it.

// docBlock is one fenced block of a doc page.
type docBlock struct {
	file   string            // relative to the repository
	line   int               // of the opening fence
	lang   string            // after the fence: sh, caddyfile, ...
	marker string            // what follows "doc-test: ", or ""
	args   map[string]string // the marker's key=value words
	kind   string            // the marker's first word
	text   string            // the content, dedented
}

var markerRE = regexp.MustCompile(`^<!-- doc-test: (.*) -->$`)

// docBlocks reads every fenced block of README.md and docs/*.md.
func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(repoRoot, "README.md")}, files...)
	var out []docBlock
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, f)
		lines := strings.Split(string(data), "\n")
		for i := 0; i < len(lines); i++ {
			trimmed := strings.TrimSpace(lines[i])
			if !strings.HasPrefix(trimmed, "```") {
				continue
			}
			indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " "))]
			b := docBlock{file: rel, line: i + 1, lang: strings.TrimPrefix(trimmed, "```"), args: map[string]string{}}
			for j := i - 1; j >= 0; j-- {
				prev := strings.TrimSpace(lines[j])
				if prev == "" {
					continue
				}
				if m := markerRE.FindStringSubmatch(prev); m != nil {
					b.marker = m[1]
					words := strings.Fields(m[1])
					b.kind = words[0]
					for _, w := range words[1:] {
						k, v, _ := strings.Cut(w, "=")
						b.args[k] = v
					}
				}
				break
			}
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				body = append(body, strings.TrimPrefix(lines[i], indent))
			}
			b.text = strings.Join(body, "\n") + "\n"
			out = append(out, b)
		}
	}
	return out
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// Every Caddyfile of the docs carries a marker, and adapts with the real
// binary: a fragment inside the block it belongs in; a copy of a file of
// the repository is that file, verbatim.
func TestDocsCaddyfilesAdapt(t *testing.T) {
	t.Parallel()
	n := 0
	for _, b := range docBlocks(t) {
		if b.kind == "file" {
			data, err := os.ReadFile(filepath.Join(repoRoot, strings.TrimPrefix(b.marker, "file ")))
			if err != nil {
				t.Errorf("%s: %v", b, err)
			} else if string(data) != b.text {
				t.Errorf("%s: the block is not %s as it is in the repository", b, strings.TrimPrefix(b.marker, "file "))
			}
		}
		if b.lang != "caddyfile" {
			continue
		}
		text := b.text
		switch {
		case b.kind == "caddyfile" && b.args["fragment"] == "revocation":
			text = "{\n\tadmin off\n}\n:0 {\n\trevocation {\n" + text + "\t}\n}\n"
		case b.kind == "caddyfile" && b.args["fragment"] == "site":
			text = "{\n\tadmin off\n}\n:0 {\n" + text + "\trespond ok\n}\n"
		case b.kind == "caddyfile" && b.args["fragment"] != "":
			t.Errorf("%s: fragment=%s: want revocation or site", b, b.args["fragment"])
			continue
		case b.kind == "caddyfile" && strings.Contains(b.marker, "syntax"):
			continue // the directive's syntax, with <placeholders>
		case b.kind == "caddyfile", b.kind == "file":
		default:
			t.Errorf("%s: a caddyfile block without a <!-- doc-test: caddyfile ... --> marker (docs/developing.md lists them)", b)
			continue
		}
		n++
		dir := t.TempDir()
		path := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(caddyBin, "adapt", "--config", path, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: caddy adapt: %v\n%s\n%s", b, err, out, text)
		}
	}
	if n < 8 {
		t.Fatalf("only %d Caddyfiles found in the docs: the markers are not being read", n)
	}
}

// Each walk-through is run as written, against the real binary started
// with the Caddyfile it names, and its output compared with the lines
// the docs show. Walk-throughs of one page with one Caddyfile share the
// instance and the shell, as a reader following the page does.
func TestDocsWalkthroughs(t *testing.T) {
	t.Parallel()
	type group struct {
		name   string
		blocks []docBlock
	}
	var groups []*group
	byName := map[string]*group{}
	named := map[string]string{} // caddyfile name= blocks
	for _, b := range docBlocks(t) {
		if b.kind == "caddyfile" && b.args["name"] != "" {
			named[b.args["name"]] = b.text
		}
		if b.kind != "walkthrough" {
			continue
		}
		key := b.file + " " + b.args["config"] + " " + b.args["app"]
		g := byName[key]
		if g == nil {
			g = &group{name: strings.ReplaceAll(b.file+"_"+b.args["config"], "/", "_")}
			byName[key] = g
			groups = append(groups, g)
		}
		g.blocks = append(g.blocks, b)
	}
	if len(groups) < 3 {
		t.Fatalf("only %d walk-throughs found in the docs: the markers are not being read", len(groups))
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			first := g.blocks[0]
			config := first.args["config"]
			if text, ok := named[config]; ok {
				config = filepath.Join(t.TempDir(), "Caddyfile")
				if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				config = filepath.Join(repoRoot, config)
			}
			appPort := 0
			if app := first.args["app"]; app != "" {
				appPort = startDocApp(t, app)
			}
			var env []string
			c := startCaddyFile(t, config, func(admin string, port int) []string {
				_, adminPort, _ := strings.Cut(admin, ":")
				ap := appPort
				if ap == 0 {
					ap = testredis.FreePort(t)
				}
				env = []string{"PORT=" + strconv.Itoa(port), "ADMIN_PORT=" + adminPort, "APP_PORT=" + strconv.Itoa(ap), "REDIS_URL="}
				return env
			})
			c.WaitReady()
			sh := startDocShell(t, append(env, "CADDY_ADMIN="+strings.Replace(c.Admin, "127.0.0.1", "localhost", 1)))
			ports := portsOf(env)
			for _, b := range g.blocks {
				for _, st := range walkSteps(b.text) {
					cmd := ports.Replace(strings.ReplaceAll(st.cmd, "./caddy ", caddyBin+" "))
					out, code := sh.run(t, cmd)
					if code != 0 {
						t.Fatalf("%s: %s\nexit status %d\n%s\ncaddy's log:\n%s", b, st.cmd, code, out, c.Logs())
					}
					var want []string
					for _, w := range st.want {
						want = append(want, ports.Replace(w))
					}
					if err := matchOutput(want, out); err != nil {
						t.Fatalf("%s: %s\n%v\nthe docs show:\n%s\nthe command printed:\n%s", b, st.cmd, err, strings.Join(want, "\n"), out)
					}
				}
			}
		})
	}
}

// portsOf replaces the ports the docs show with the test's.
func portsOf(env []string) *strings.Replacer {
	get := func(name string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				return v
			}
		}
		return ""
	}
	return strings.NewReplacer("localhost:8080", "localhost:"+get("PORT"), "localhost:2019", "localhost:"+get("ADMIN_PORT"))
}

// walkStep is one command of a walk-through and the output lines the
// docs show under it.
type walkStep struct {
	cmd  string
	want []string
}

// walkSteps splits a walk-through: a command is a line that is neither
// blank nor a comment (with its continuation lines); the "# " lines
// right under it are its output. A comment after a blank line is prose.
func walkSteps(text string) []walkStep {
	var steps []walkStep
	inOutput := false
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.TrimSpace(line) == "":
			inOutput = false
		case strings.HasPrefix(line, "#"):
			if inOutput {
				s := &steps[len(steps)-1]
				s.want = append(s.want, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
			}
		default:
			cmd := line
			for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
				i++
				cmd += "\n" + lines[i]
			}
			steps = append(steps, walkStep{cmd: cmd})
			inOutput = true
		}
	}
	return steps
}

// matchOutput checks that the wanted lines appear in the output, in
// order, each matching a whole line; "..." matches anything.
func matchOutput(want []string, out string) error {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	at := 0
	for _, w := range want {
		re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(strings.TrimRight(w, " ")), `\.\.\.`, `.*`) + "$")
		found := false
		for ; at < len(lines); at++ {
			if re.MatchString(strings.TrimRight(lines[at], " \r")) {
				found, at = true, at+1
				break
			}
		}
		if !found {
			return fmt.Errorf("no line (after the ones matched before) matches %q", w)
		}
	}
	return nil
}

// docShell is one bash process that runs a walk-through's commands one
// after the other, so that variables set by one are there for the next.
type docShell struct {
	in  io.Writer
	out *bufio.Reader
}

func startDocShell(t *testing.T, env []string) *docShell {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		pw.Close()
	})
	return &docShell{in: in, out: bufio.NewReader(pr)}
}

// run runs one command and returns what it printed and its status.
func (s *docShell) run(t *testing.T, cmd string) (string, int) {
	t.Helper()
	const end = "@@doc-test-end@@"
	if _, err := fmt.Fprintf(s.in, "%s\nprintf '\\n%s %%d\\n' $?\n", cmd, end); err != nil {
		t.Fatalf("shell: %v", err)
	}
	type result struct {
		out  string
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var b strings.Builder
		for {
			line, err := s.out.ReadString('\n')
			if err != nil {
				done <- result{b.String(), -1, err}
				return
			}
			if rest, ok := strings.CutPrefix(line, end+" "); ok {
				code, _ := strconv.Atoi(strings.TrimSpace(rest))
				done <- result{strings.TrimSuffix(b.String(), "\n"), code, nil}
				return
			}
			b.WriteString(line)
		}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("shell: %v\n%s", r.err, r.out)
		}
		return r.out, r.code
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s: no answer within 3 minutes", cmd)
	}
	return "", -1
}

// startDocApp builds and starts one of the repository's demo apps on a
// free loopback port, and returns the port.
func startDocApp(t *testing.T, pkg string) int {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "app")
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	port := testredis.FreePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "APP_PORT="+strconv.Itoa(port))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			conn.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %d: %v\n%s", pkg, port, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Each CLI transcript of the docs ("$ caddy ..." and what it printed) is
// what the real binary prints, with exit status 1 for an error.
func TestDocsCLI(t *testing.T) {
	t.Parallel()
	n := 0
	for _, b := range docBlocks(t) {
		if b.kind != "cli" {
			continue
		}
		var cmd string
		var want []string
		flush := func() {
			if cmd == "" {
				return
			}
			n++
			sh := exec.Command("bash", "-c", strings.Replace(cmd, "caddy ", caddyBin+" ", 1))
			sh.Env = append(os.Environ(), "CADDY_ADMIN=127.0.0.1:1")
			out, err := sh.CombinedOutput()
			got := strings.TrimRight(string(out), "\n")
			if got != strings.Join(want, "\n") {
				t.Errorf("%s: $ %s\nprinted:\n%s\nthe docs show:\n%s", b, cmd, got, strings.Join(want, "\n"))
			}
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Errorf("%s: $ %s: %v, want exit status 1", b, cmd, err)
			}
		}
		for _, line := range strings.Split(strings.TrimRight(b.text, "\n"), "\n") {
			if c, ok := strings.CutPrefix(line, "$ "); ok {
				flush()
				cmd, want = c, nil
				continue
			}
			want = append(want, line)
		}
		flush()
	}
	if n == 0 {
		t.Fatal("no CLI transcript found in the docs")
	}
}

// demo-token's help shows no meaningless default (it printed
// "-auth-age duration ... (default -1ns)").
func TestDemoTokenHelp(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "run", "./cmd/demo-token", "-h")
	cmd.Dir = repoRoot
	out, _ := cmd.CombinedOutput() // -h exits 0 or 2 depending on the flag package
	if !strings.Contains(string(out), "-auth-age") || strings.Contains(string(out), "-1ns") {
		t.Fatalf("demo-token -h:\n%s", out)
	}
}
