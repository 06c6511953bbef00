package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "revocation",
		Usage: "revoke|status|health|explain [flags]",
		Short: "Revokes credentials and checks revocation health on a running instance",
		Long: `
Acts on a running Caddy with caddy-revocation through its admin API
(the same address the other caddy commands use: --address, else the
admin address of --config, else $CADDY_ADMIN, else localhost:2019).

  caddy revocation revoke    revoke a subject, a session, a jti or a token
  caddy revocation status    show the stores, their entries and health
  caddy revocation health    exit 0 when ready (or, with --live, alive)
  caddy revocation explain   what the guard sees in a request (stdin), and why

Examples:

  # Every token of alice issued until now (a "log out everywhere"):
  caddy revocation revoke --subject alice

  # One session of alice (scoped: bob's session s1 is not touched):
  caddy revocation revoke --subject alice --session s1

  # One jti, kept until the token it names expires:
  caddy revocation revoke --jti 5f2b8c --expires 2026-12-01T00:00:00Z

  # One exact token, read from stdin so it stays out of shell history
  # and process listings:
  caddy revocation revoke --token - < token.txt
  pbpaste | caddy revocation revoke --token -

  # What the instance holds, and whether it can be trusted:
  caddy revocation status
  caddy revocation status --json

  # Kubernetes exec probes (the admin endpoint stays on localhost):
  caddy revocation health          # readiness: 0 when every store is loaded and current
  caddy revocation health --live   # liveness: 0 while the process answers

Exit status: 0 on success; 1 when the instance cannot be reached, refuses
the request, or (health) is not ready, with the reason on one line of
standard error.
`,
		CobraFunc: setUpCommand,
	})
}

// setUpCommand fills in caddy revocation's cobra command.
func setUpCommand(cmd *cobra.Command) {
	cmd.AddCommand(revokeCommand(), statusCommand(), healthCommand(), explainCommand())
	// Without a RunE of its own, cobra answers a word it does not
	// know (caddy revocation bulk) with the help and exit status
	// 0, and a misspelt subcommand followed by its flags with
	// "unknown flag". The flags are let through to reach RunE,
	// which names the word.
	cmd.Args = cobra.ArbitraryArgs
	cmd.FParseErrWhitelist.UnknownFlags = true
	cmd.RunE = unknownSubcommand
	cmd.SetHelpTemplate(cmd.HelpTemplate() + "\n" + docsFooter + "\n")
}

// docsFooter ends the help of caddy revocation and its subcommands, in
// place of Caddy's pointer to its own command-line documentation.
const docsFooter = `Full documentation of caddy revocation (the CLI, the admin API):
https://github.com/caddy-revocation/caddy-revocation/blob/main/docs/operating.md`

// unknownSubcommand is caddy revocation's own RunE: with no word it
// prints the help; with one it does not know, it says so, suggests the
// subcommand (or the flag) that was probably meant, and exits 1.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	word := args[0]
	var names []string
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() && sub.Name() != "completion" {
			names = append(names, sub.Name())
		}
	}
	hint := "want one of: " + strings.Join(names, ", ")
	cmd.SuggestionsMinimumDistance = 2 // statsu, revok
	if s := cmd.SuggestionsFor(word); len(s) > 0 {
		hint = "did you mean " + strings.Join(s, " or ") + "?"
	} else {
		for _, sub := range cmd.Commands() {
			if f := sub.Flags().Lookup(strings.TrimLeft(word, "-")); f != nil && !slices.Contains([]string{"address", "config", "adapter", "timeout", "json"}, f.Name) {
				hint = fmt.Sprintf("did you mean caddy revocation %s --%s?", sub.Name(), f.Name)
				break
			}
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "caddy revocation: unknown subcommand %q; %s (caddy revocation --help lists them)\n", word, hint)
	cmd.SilenceErrors = true
	return fmt.Errorf("unknown subcommand %q", word)
}

// plainErrors runs a command and prints its error the way command-line
// tools do: one plain line on stderr, exit status 1. Caddy's own wrapper
// (caddycmd.WrapCommandFuncForCobra) logs it as a JSON line instead,
// which suits a server's log but not a person at a terminal or a probe's
// output.
func plainErrors(f caddycmd.CommandFunc) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		err := noBlankFlags(cmd)
		if err == nil {
			_, err = f(caddycmd.Flags{FlagSet: cmd.Flags()})
		}
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "caddy revocation %s: %v\n", cmd.Name(), err)
			// Printed above; cobra must not repeat it. Caddy's main exits
			// with status 1 for any error.
			cmd.SilenceErrors = true
		}
		return err
	}
}

// noBlankFlags refuses a string flag given with an empty or blank value:
// read as absent, --subject a --session ” would revoke every session of
// the subject instead of one, and --address ” would silently fall back
// to another instance.
func noBlankFlags(cmd *cobra.Command) error {
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if err == nil && f.Value.Type() == "string" && strings.TrimSpace(f.Value.String()) == "" {
			err = fmt.Errorf("--%s is empty: give a value, or leave the flag out", f.Name)
		}
	})
	return err
}

func revokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke --subject <sub> [--session <sid>] | --jti <jti> [--expires <when>] | --token <token>|- | --all --before <when> | --bulk < <ndjson>",
		Short: "Revokes a subject, one of its sessions, a jti, one exact token, many of them, or everything",
		Long: `
Revokes, on every replica sharing the instance's store:

  --subject <sub>                   every token of the subject issued until now
  --subject <sub> --session <sid>   every token of one session of the subject
  --jti <jti> [--expires <when>]    every token with that jti; <when> is a unix
                                    time, an RFC 3339 time or a duration from
                                    now (e.g. 15m); default: the session TTL
  --token <token>|-                 one exact access or refresh token; "-"
                                    reads it from the first line of stdin
  --all --before <when>             the global cutoff, for incident response:
                                    every token of every subject issued at or
                                    before <when>: now, a unix time, an RFC
                                    3339 time or a duration from now (-10m)
  --bulk                            many revocations, one JSON object a line
                                    (NDJSON) read from stdin, each as the
                                    admin API takes it: {"subject":"..."},
                                    {"subject":"...","session":"..."},
                                    {"jti":"...","expires":"1h"}, {"token":"..."}

Every line of a bulk revocation is checked before the first is sent; they
are then sent in parts of 10000 and applied in batches. When a part fails,
the command says how many were applied (the first ones, in order); sending
the same input again is harmless.

A token given as an argument ends up in shell history and is visible in
process listings: prefer --token - . Only a short hash of the token is
logged and printed.
`,
		Example: `  caddy revocation revoke --subject alice
  caddy revocation revoke --subject alice --session s1
  caddy revocation revoke --jti 5f2b8c --expires 1h
  caddy revocation revoke --token - < token.txt
  caddy revocation revoke --all --before now
  caddy revocation revoke --bulk < revocations.ndjson`,
		Args: cobra.NoArgs,
		RunE: plainErrors(cmdRevoke),
	}
	adminFlags(cmd)
	cmd.Flags().String("subject", "", "Subject (sub claim) to revoke")
	cmd.Flags().String("session", "", "Session (sid claim) of --subject to revoke")
	cmd.Flags().String("jti", "", "Token id (jti claim) to revoke")
	cmd.Flags().String("expires", "", "With --jti: when the entry may be dropped (unix time, RFC 3339, or duration from now)")
	cmd.Flags().Bool("all", false, "Revoke every token of every subject issued at or before --before (the global cutoff)")
	cmd.Flags().String("before", "", "With --all: the cutoff (now, unix time, RFC 3339, or duration from now such as -10m)")
	cmd.Flags().Bool("bulk", false, "Read many revocations from stdin, one JSON object a line (NDJSON)")
	cmd.Flags().String("token", "", `Exact token to revoke; "-" reads it from stdin`)
	return cmd
}

func statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Shows the revocation stores of a running instance",
		Long: `
Shows each store the instance uses: its kind and key prefix, its entries
by kind, whether it is loaded, connected and current, and if not, why.
`,
		Example: `  caddy revocation status
  caddy revocation status --json --address localhost:2019`,
		Args: cobra.NoArgs,
		RunE: plainErrors(cmdStatus),
	}
	adminFlags(cmd)
	cmd.Flags().Bool("json", false, "Print the admin API's JSON answer as is")
	return cmd
}

func healthCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health [--live]",
		Short: "Exits 0 when the instance is ready (or alive, with --live)",
		Long: `
Asks GET /revocation/ready (or /revocation/live with --live) and exits 0
when the answer is 200, else 1 with the reasons. Meant for exec probes,
so that the admin endpoint never has to leave localhost:

  readinessProbe:
    exec:
      command: ["caddy", "revocation", "health"]
  livenessProbe:
    exec:
      command: ["caddy", "revocation", "health", "--live"]

Ready means every store is loaded and, unless every handler using it is
on_store_down fail_open, confirmed current (a Redis store reachable and
followed within stale_after). Live means the process answers its admin
API.
`,
		Example: `  caddy revocation health
  caddy revocation health --live --timeout 2s`,
		Args: cobra.NoArgs,
		RunE: plainErrors(cmdHealth),
	}
	adminFlags(cmd)
	cmd.Flags().Bool("live", false, "Check liveness instead of readiness")
	cmd.Flags().BoolP("quiet", "q", false, "Print nothing when healthy")
	return cmd
}

// stdin is where --token - reads from; a variable so tests can swap it.
var stdin io.Reader = os.Stdin

func cmdRevoke(fl caddycmd.Flags) (int, error) {
	req := AdminRevokeRequest{
		Subject: fl.String("subject"),
		Session: fl.String("session"),
		JTI:     fl.String("jti"),
		Token:   fl.String("token"),
		Expires: When(fl.String("expires")),
		All:     fl.Bool("all"),
		Before:  When(fl.String("before")),
	}
	if fl.Bool("bulk") {
		if req != (AdminRevokeRequest{}) {
			return 1, errors.New("--bulk takes its revocations from stdin only; give no other revocation flag")
		}
		return cmdRevokeBulk(fl)
	}
	if req.All || req.Before != "" {
		if !req.All || req.Before == "" || req.Subject != "" || req.Session != "" || req.JTI != "" || req.Token != "" || req.Expires != "" {
			return 1, errors.New("the global cutoff is --all --before <when> (e.g. --before now), and nothing else")
		}
		if _, err := parseBefore(string(req.Before), time.Now()); err != nil {
			return 1, fmt.Errorf("--%w", err)
		}
		return sendRevoke(fl, &req)
	}
	switch req.Token {
	case "":
	case "-":
		tok, err := readTokenLine(stdin)
		if err != nil {
			return 1, err
		}
		req.Token = tok
	default:
		fmt.Fprintln(os.Stderr, "warning: a token given as an argument stays in shell history and shows in process listings; prefer --token - (stdin)")
	}
	if req.Expires != "" {
		if req.JTI == "" {
			return 1, errors.New("--expires applies to --jti only")
		}
		if _, err := parseExpires(string(req.Expires), time.Now()); err != nil {
			return 1, fmt.Errorf("--%w", err)
		}
	}
	if req.Session != "" && req.Subject == "" {
		return 1, errors.New("--session needs --subject: a session is revoked only together with its subject (--subject <sub> --session <sid>)")
	}
	switch {
	case req.Token != "" && req.Subject == "" && req.Session == "" && req.JTI == "":
	case req.JTI != "" && req.Subject == "" && req.Session == "" && req.Token == "":
	case req.Subject != "" && req.JTI == "" && req.Token == "":
	default:
		return 1, errors.New("give exactly one of: --subject [--session], --jti, --token, --all --before, --bulk")
	}
	return sendRevoke(fl, &req)
}

// sendRevoke sends one revocation and prints what it did.
func sendRevoke(fl caddycmd.Flags, req *AdminRevokeRequest) (int, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 1, err
	}
	status, resp, err := adminCall(fl, http.MethodPost, "/revocation/revoke", body)
	if err != nil {
		return 1, err
	}
	if status != http.StatusOK {
		return 1, fmt.Errorf("revocation refused: HTTP %d: %s", status, adminMessage(resp))
	}
	var out AdminRevokeResponse
	if err := json.Unmarshal(resp, &out); err != nil {
		return 1, fmt.Errorf("decode answer: %w", err)
	}
	what := ""
	switch out.Revoked {
	case "subject":
		what = "subject " + strconv.Quote(req.Subject)
	case "session":
		what = fmt.Sprintf("session %q of subject %q", req.Session, req.Subject)
	case "jti":
		what = "jti " + strconv.Quote(req.JTI)
	case "token":
		what = "token"
	case "all":
		what = "every token of every subject issued at or before"
		if out.Cutoff != nil {
			what += " " + out.Cutoff.Format(time.RFC3339Nano)
		}
	}
	fmt.Printf("revoked %s: %d entries in %d store(s) (request_id %s)\n", what, out.Entries, out.Stores, out.RequestID)
	return 0, nil
}

// cmdRevokeBulk sends the revocations of an NDJSON input in parts.
func cmdRevokeBulk(fl caddycmd.Flags) (int, error) {
	reqs, err := readBulk(stdin, time.Now())
	if err != nil {
		return 1, err
	}
	applied, entries := 0, 0
	var ids []string
	for start := 0; start < len(reqs); start += cliBulkPart {
		part := reqs[start:min(start+cliBulkPart, len(reqs))]
		body, err := json.Marshal(part)
		if err != nil {
			return 1, err
		}
		status, resp, err := adminCall(fl, http.MethodPost, "/revocation/revoke", body)
		var out AdminRevokeResponse
		if err == nil {
			_ = json.Unmarshal(resp, &out) // a refusal's body has "applied" too
		}
		if err != nil || status != http.StatusOK {
			if err == nil {
				err = fmt.Errorf("HTTP %d: %s", status, adminMessage(resp))
			}
			return 1, fmt.Errorf("bulk revocation stopped: the first %d of %d revocations are applied, the rest not (sending the same input again is harmless): %w", applied+out.Applied, len(reqs), err)
		}
		applied += out.Applied
		entries += out.Entries
		ids = append(ids, out.RequestID)
	}
	fmt.Printf("revoked %d revocations: %d entries (request_id %s)\n", applied, entries, strings.Join(ids, ", "))
	return 0, nil
}

// readBulk reads and checks an NDJSON bulk revocation: one revocation
// object a line, blank lines skipped. Any bad line fails the whole input,
// so that nothing is sent.
func readBulk(r io.Reader, now time.Time) ([]AdminRevokeRequest, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var out []AdminRevokeRequest
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var req AdminRevokeRequest
		if err := decodeRevokeRequest(text, &req); err != nil {
			return nil, fmt.Errorf("--bulk line %d: %w", line, err)
		}
		if _, err := req.order(now); err != nil {
			return nil, fmt.Errorf("--bulk line %d: %w", line, err)
		}
		out = append(out, req)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--bulk: read line %d: %w", line+1, err)
	}
	if len(out) == 0 {
		return nil, errors.New("--bulk: no revocation in the input")
	}
	return out, nil
}

func cmdStatus(fl caddycmd.Flags) (int, error) {
	var st StatusResponse
	if printed, err := adminJSON(fl, "status", http.MethodGet, "/revocation/status", nil, &st); err != nil || printed {
		return exitCode(err), err
	}
	if len(st.Stores) == 0 {
		fmt.Println("no revocation handler is configured in this instance")
		return 0, nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tPREFIX\tREADY\tLOADED\tCONNECTED\tSTALE\tTOKEN\tJTI\tSESSION\tSUBJECT\tGLOBAL")
	for _, s := range st.Stores {
		stale := "-"
		if revocation.StoreKind(s.Store).Shared() {
			stale = (time.Duration(s.StaleFor * float64(time.Second))).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", s.Describe, s.KeyPrefix,
			yesNo(s.Ready), yesNo(s.Loaded), yesNo(s.Connected), stale,
			s.Entries["token"], s.Entries["jti"], s.Entries["session"], s.Entries["subject"], s.Entries["global"])
	}
	if err := tw.Flush(); err != nil {
		return 1, err
	}
	for _, s := range st.Stores {
		switch {
		case !s.Ready:
			fmt.Printf("%s: not ready: %s\n", s.Describe, s.Reason)
		case s.Reason != "":
			fmt.Printf("%s: ready, degraded: %s\n", s.Describe, s.Reason)
		}
	}
	return 0, nil
}

func cmdHealth(fl caddycmd.Flags) (int, error) {
	path := "/revocation/ready"
	if fl.Bool("live") {
		path = "/revocation/live"
	}
	status, resp, err := adminCall(fl, http.MethodGet, path, nil)
	if err != nil {
		return 1, err
	}
	if fl.Bool("live") {
		if status != http.StatusOK {
			return 1, fmt.Errorf("not live: HTTP %d: %s", status, adminMessage(resp))
		}
		if !fl.Bool("quiet") {
			fmt.Println("live")
		}
		return 0, nil
	}
	var ready ReadyResponse
	if err := json.Unmarshal(resp, &ready); err != nil {
		return 1, fmt.Errorf("not ready: HTTP %d: %s", status, adminMessage(resp))
	}
	if status != http.StatusOK || !ready.Ready {
		if len(ready.Reasons) == 0 {
			return 1, fmt.Errorf("not ready: HTTP %d", status)
		}
		return 1, fmt.Errorf("not ready: %s", strings.Join(ready.Reasons, "; "))
	}
	if !fl.Bool("quiet") {
		fmt.Println("ready")
	}
	return 0, nil
}

// readTokenLine reads a token from the first line of r.
func readTokenLine(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return "", fmt.Errorf("read token from stdin: %w", err)
		}
		return "", errors.New("read token from stdin: no input")
	}
	tok := strings.TrimSpace(sc.Text())
	if tok == "" {
		return "", errors.New("read token from stdin: empty line")
	}
	return tok, nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func explainCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "explain [--json] [--method <m>] [--path <target>] < request",
		Short: "Shows what the guard sees in a request, and why it would block it or not",
		Long: `
Reads a request from stdin, either a whole HTTP request (request line,
headers, blank line, body) or header lines only ("Name: value", one a
line), and asks the running instance what each revocation handler would
do with it. For every candidate credential found it prints where it was
found, whether it is presented as an access token, a hash prefix (never
the credential), whether it verified, and whether and why it is revoked.

It runs the guard's own code, so what it says is what the guard does.
(Like the guard, it notes a verified token's session as seen.)
`,
		Example: `  printf 'Cookie: JSESSIONID=8F3A...\n' | caddy revocation explain
  caddy revocation explain --path '/api?access_token=-' < headers.txt
  curl -sv ... 2>&1 | sed -n 's/^> //p' | caddy revocation explain`,
		Args: cobra.NoArgs,
		RunE: plainErrors(cmdExplain),
	}
	adminFlags(cmd)
	cmd.Flags().Bool("json", false, "Print the admin API's JSON answer as is")
	cmd.Flags().String("method", "", "Request method (default: the request line's, else GET)")
	cmd.Flags().String("path", "", "Request target with query (default: the request line's, else /)")
	return cmd
}

func cmdExplain(fl caddycmd.Flags) (int, error) {
	req, note, err := readExplainRequest(stdin)
	if err != nil {
		return 1, err
	}
	if note != "" {
		fmt.Fprintln(os.Stderr, "note: "+note)
	}
	if m := fl.String("method"); m != "" {
		req.Method = m
	}
	if p := fl.String("path"); p != "" {
		req.Path = p
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 1, err
	}
	var out ExplainResponse
	if printed, err := adminJSON(fl, "explain", http.MethodPost, "/revocation/explain", body, &out); err != nil || printed {
		return exitCode(err), err
	}
	return 0, printExplain(os.Stdout, out)
}

func printExplain(w io.Writer, out ExplainResponse) error {
	for i, h := range out.Handlers {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "handler: store %s, key prefix %s", h.Store, h.KeyPrefix)
		if h.AppID != "" {
			fmt.Fprintf(w, ", app_id %s", h.AppID)
		}
		fmt.Fprintf(w, "\nverdict: %s: %s\n", h.Verdict, h.Why)
		if h.AppLogout {
			fmt.Fprintln(w, "app_logout path: a 2xx or 3xx answer from the upstream revokes these credentials")
		}
		if len(h.Credentials) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tKIND\tHASH\tJWT\tVERIFIED\tREVOKED")
		for _, c := range h.Credentials {
			revoked := "no"
			if c.Revoked {
				revoked = "yes (" + c.Reason + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Source, c.Kind, c.Hash, yesNo(c.JWT), yesNo(c.Verified), revoked)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

var requestLine = regexp.MustCompile(`^[A-Za-z]+ \S+ HTTP/\d(\.\d)?\r?$`)

// readExplainRequest reads a whole HTTP request, or header lines only.
// A request whose body has no Content-Length (nor chunked coding) has its
// body read to the end of input, as a person pasting one expects; the
// note says so, for the caller to print.
func readExplainRequest(r io.Reader) (_ ExplainRequest, note string, _ error) {
	data, err := io.ReadAll(io.LimitReader(r, maxExplainBody/2+1))
	if err != nil {
		return ExplainRequest{}, "", fmt.Errorf("read request from stdin: %w", err)
	}
	if len(data) > maxExplainBody/2 {
		return ExplainRequest{}, "", errors.New("read request from stdin: larger than 16 MiB")
	}
	data = bytes.TrimLeft(data, "\r\n")
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if requestLine.Match(first) {
		if !bytes.Contains(data, []byte("\n\n")) && !bytes.Contains(data, []byte("\r\n\r\n")) {
			data = append(data, '\n', '\n') // headers only, no blank line
		}
		br := bufio.NewReader(bytes.NewReader(data))
		hr, err := http.ReadRequest(br)
		if err != nil {
			return ExplainRequest{}, "", fmt.Errorf("read request from stdin: %w", err)
		}
		b, err := io.ReadAll(hr.Body)
		if err != nil {
			return ExplainRequest{}, "", fmt.Errorf("read request body from stdin: %w", err)
		}
		if hr.Header.Get("Content-Length") == "" && len(hr.TransferEncoding) == 0 {
			// net/http reads such a request as having no body.
			rest, _ := io.ReadAll(br) // a bytes.Reader: no error
			if len(bytes.TrimRight(rest, "\r\n")) > 0 {
				b = rest
				note = fmt.Sprintf("the request has no Content-Length: its body is read to the end of input (%d bytes)", len(rest))
			}
		}
		return ExplainRequest{Method: hr.Method, Path: hr.RequestURI, Headers: hr.Header, Body: string(b)}, note, nil
	}
	req := ExplainRequest{Headers: map[string][]string{}}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t") {
			return ExplainRequest{}, "", fmt.Errorf("stdin line %d: want \"Name: value\" or a request line", n+1)
		}
		name = http.CanonicalHeaderKey(name)
		req.Headers[name] = append(req.Headers[name], strings.TrimLeft(value, " \t"))
	}
	if len(req.Headers) == 0 {
		return ExplainRequest{}, "", errors.New("read request from stdin: no header")
	}
	return req, "", nil
}
