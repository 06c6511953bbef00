package caddymodule

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

func TestParseExpires(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1795262400", time.Unix(1795262400, 0), true},
		{"15m", now.Add(15 * time.Minute), true},
		{"2026-12-01T00:00:00Z", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), true},
		{"-1h", time.Time{}, false},
		{"0s", time.Time{}, false},
		{"tomorrow", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, c := range cases {
		got, err := parseExpires(c.in, now)
		if (err == nil) != c.ok {
			t.Errorf("parseExpires(%q): err %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok && !got.Equal(c.want) {
			t.Errorf("parseExpires(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestReadTokenLine(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"eyJ.a.b\n", "eyJ.a.b", true},
		{"  eyJ.a.b  \r\nignored second line\n", "eyJ.a.b", true},
		{"eyJ.a.b", "eyJ.a.b", true},
		{"", "", false},
		{"\n", "", false},
		{"   \n", "", false},
	}
	for _, c := range cases {
		got, err := readTokenLine(strings.NewReader(c.in))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("readTokenLine(%q) = %q, %v; want %q, ok=%v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && strings.Contains(err.Error(), "eyJ") {
			t.Errorf("error %q repeats the input", err)
		}
	}
}

// The audit line names revoked tokens the way every other log line
// names a token: revocation.TokenHash.Short.
func TestRevokedTokenHashes(t *testing.T) {
	raw := []string{"access-token-1", "refresh-token-2"}
	entries := []revocation.Entry{
		{Key: revocation.TokenKey(raw[0])},
		{Key: revocation.JTIKey("jti-1")},
		{Key: revocation.TokenKey(raw[1])},
		{Key: revocation.SessionKey("alice", "s1")},
		{Key: revocation.TokenKey(raw[0])},
	}
	want := []string{revocation.HashToken(raw[0]).Short(), revocation.HashToken(raw[1]).Short()}
	if got := revokedTokenHashes(entries); !slices.Equal(got, want) {
		t.Fatalf("revokedTokenHashes = %v, want %v", got, want)
	}
	if got := revokedTokenHashes(entries[1:2]); got != nil {
		t.Fatalf("no token entries: got %v", got)
	}
}

func TestAdminRequestID(t *testing.T) {
	r := httptest.NewRequest("POST", "/revocation/revoke", nil)
	a, b := adminRequestID(r), adminRequestID(r)
	if len(a) != 32 || a == b {
		t.Fatalf("generated ids %q, %q: want 32 hex digits, different", a, b)
	}
	r.Header.Set("X-Request-Id", "ticket-4711")
	if got := adminRequestID(r); got != "ticket-4711" {
		t.Fatalf("caller's id not kept: %q", got)
	}
	for _, bad := range []string{"has space", "quote\"", strings.Repeat("x", 65), "new\nline"} {
		r.Header.Set("X-Request-Id", bad)
		if got := adminRequestID(r); got == bad {
			t.Errorf("unsafe request id %q kept", bad)
		}
	}
}

// The command's errors read like any command-line tool's: one plain
// line on stderr naming the command, never a JSON log line.
func TestCommandErrorsArePlainText(t *testing.T) {
	cases := []struct {
		name string
		cmd  func() *cobra.Command
		args []string
		want string
	}{
		{"session without subject", revokeCommand, []string{"--session", "s1"},
			"caddy revocation revoke: --session needs --subject: a session is revoked only together with its subject (--subject <sub> --session <sid>)\n"},
		{"nothing to revoke", revokeCommand, nil,
			"caddy revocation revoke: give exactly one of: --subject [--session], --jti, --token, --all --before, --bulk\n"},
		{"expires without jti", revokeCommand, []string{"--subject", "alice", "--expires", "1h"},
			"caddy revocation revoke: --expires applies to --jti only\n"},
		{"unreachable instance", healthCommand, []string{"--address", "127.0.0.1:1", "--timeout", "2s"},
			"caddy revocation health: admin API at 127.0.0.1:1: "},
		{"explain, unreachable instance", explainCommand, []string{"--address", "127.0.0.1:1", "--timeout", "2s"},
			"caddy revocation explain: admin API at 127.0.0.1:1: "},
		{"https address", statusCommand, []string{"--address", "https://localhost:2019"},
			"caddy revocation status: find the admin address: --address https://localhost:2019: the admin API speaks plain HTTP"},
		{"unknown subcommand", parentCommand, []string{"bulk"},
			`caddy revocation: unknown subcommand "bulk"; did you mean caddy revocation revoke --bulk?`},
		{"misspelt subcommand with flags", parentCommand, []string{"revok", "--address", "localhost:2019", "--subject", "a"},
			`caddy revocation: unknown subcommand "revok"; did you mean revoke?`},
		{"misspelt status", parentCommand, []string{"statsu"},
			`caddy revocation: unknown subcommand "statsu"; did you mean status?`},
	}
	// Every string flag, given empty or blank, is refused: none of them
	// means "everything" or falls back to something else.
	for _, c := range []struct {
		cmd  func() *cobra.Command
		args []string
	}{
		{revokeCommand, []string{"--subject", "alice", "--session", ""}},
		{revokeCommand, []string{"--subject", "alice", "--session", " "}},
		{revokeCommand, []string{"--subject", ""}},
		{revokeCommand, []string{"--jti", ""}},
		{revokeCommand, []string{"--jti", "j", "--expires", ""}},
		{revokeCommand, []string{"--token", ""}},
		{revokeCommand, []string{"--all", "--before", ""}},
		{revokeCommand, []string{"--subject", "alice", "--address", ""}},
		{revokeCommand, []string{"--subject", "alice", "--config", ""}},
		{revokeCommand, []string{"--subject", "alice", "--adapter", ""}},
		{statusCommand, []string{"--address", " "}},
		{healthCommand, []string{"--config", ""}},
		{explainCommand, []string{"--method", ""}},
		{explainCommand, []string{"--path", ""}},
	} {
		flag := ""
		for i, a := range c.args {
			if i+1 < len(c.args) && strings.TrimSpace(c.args[i+1]) == "" {
				flag = a
			}
		}
		cases = append(cases, struct {
			name string
			cmd  func() *cobra.Command
			args []string
			want string
		}{"empty " + flag + " of " + c.cmd().Name(), c.cmd, c.args,
			"caddy revocation " + c.cmd().Name() + ": " + flag + " is empty: give a value, or leave the flag out\n"})
	}
	stdin = strings.NewReader("Cookie: a=b\n")
	t.Cleanup(func() { stdin = os.Stdin })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := c.cmd()
			var out, errOut bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			cmd.SetArgs(c.args)
			if err := cmd.Execute(); err == nil {
				t.Fatal("no error")
			}
			got := errOut.String()
			if !strings.HasPrefix(got, c.want) || strings.Count(got, "\n") != 1 || strings.Contains(got, `"level"`) {
				t.Fatalf("stderr %q, want one plain line starting %q", got, c.want)
			}
		})
	}
}

// parentCommand is caddy revocation itself, as Caddy registers it.
func parentCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "revocation"}
	setUpCommand(cmd)
	return cmd
}

// The admin address: a URL works as --address; --config gives the
// config's admin address, adapted from a Caddyfile (unformatted, so that
// the adapter warns: the warning is dropped).
func TestAdminAddress(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:2019":      "localhost:2019",
		"http://127.0.0.1:2020/":     "127.0.0.1:2020",
		"localhost:2019":             "localhost:2019",
		"unix//run/caddy-admin.sock": "unix//run/caddy-admin.sock",
	} {
		if got, err := adminAddress(in, "", ""); err != nil || got != want {
			t.Errorf("--address %s: %q, %v; want %q", in, got, err, want)
		}
	}
	dir := t.TempDir()
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte("{\n admin localhost:2999\n}\n:8080 {\n  respond ok\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := adminAddress("", caddyfile, ""); err != nil || got != "localhost:2999" {
		t.Errorf("--config %s: %q, %v", caddyfile, got, err)
	}
	js := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(js, []byte(`{"admin":{"listen":"localhost:2998"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := adminAddress("", js, ""); err != nil || got != "localhost:2998" {
		t.Errorf("--config %s: %q, %v", js, got, err)
	}
	if _, err := adminAddress("", filepath.Join(dir, "missing"), ""); err == nil {
		t.Error("a missing config file: no error")
	}
}
