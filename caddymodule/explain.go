package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-revocation/caddy-revocation/extract"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// The dry run: what the guard would see in a request, and why it would
// block it or let it through. It runs the guard's own extractor and its
// own inspect (handler.go), so it can never disagree with the guard about
// what is revoked; it prints hash prefixes, never a credential.

// ExplainRequest is the body of POST /revocation/explain: a request as
// the guard would receive it.
type ExplainRequest struct {
	// Method defaults to GET.
	Method string `json:"method,omitempty"`
	// Path is the request target, query included. Default "/".
	Path    string              `json:"path,omitempty"`
	Headers map[string][]string `json:"headers,omitempty"`
	Body    string              `json:"body,omitempty"`
}

// ExplainResponse is the answer to POST /revocation/explain: one verdict
// per revocation handler of the instance.
type ExplainResponse struct {
	Handlers []ExplainedHandler `json:"handlers"`
}

// ExplainedHandler is what one handler would do with the request.
type ExplainedHandler struct {
	Store     string `json:"store"`
	KeyPrefix string `json:"key_prefix"`
	AppID     string `json:"app_id,omitempty"`
	// Verdict is pass, block or refuse; Why says why.
	Verdict     string                `json:"verdict"`
	Why         string                `json:"why,omitempty"`
	AppLogout   bool                  `json:"app_logout,omitempty"`
	Credentials []ExplainedCredential `json:"credentials"`
}

// ExplainedCredential is one candidate credential the guard found.
type ExplainedCredential struct {
	Source string `json:"source"`
	// Kind is access (presented as an access token: verified), other
	// (found by a credential's name) or value (found by value alone).
	Kind     string `json:"kind"`
	Hash     string `json:"hash"`
	JWT      bool   `json:"jwt"`
	Verified bool   `json:"verified"`
	Revoked  bool   `json:"revoked"`
	// Reason is what is revoked: token, jti, session or subject.
	Reason string `json:"reason,omitempty"`
}

// explain runs the guard's extraction and inspection on r.
func (h *Handler) explain(r *http.Request) ExplainedHandler {
	out := ExplainedHandler{Store: h.store.desc, KeyPrefix: h.KeyPrefix, AppID: h.AppID, Credentials: []ExplainedCredential{}}
	x := h.extractor.Extract(r, nil, nil)
	now := time.Now()
	dl, unix := h.store.Denylist(), now.Unix()
	var blocked []string
	verified, b := false, h.newBudget()
	for i := range x.Creds {
		c := &x.Creds[i]
		info, reason := h.inspect(r.Context(), dl, c, unix, &b)
		if info == nil {
			info = &revocation.TokenInfo{Hash: revocation.RawHash(c.Raw)}
		}
		ec := ExplainedCredential{
			Source: c.Source, Kind: "other", Hash: info.Hash.Short(),
			JWT: revocation.LooksLikeJWT(c.Raw), Verified: info.Verified,
		}
		switch c.Kind {
		case extract.Access:
			ec.Kind = "access"
			verified = verified || info.Verified
		case extract.Value:
			ec.Kind = "value"
		}
		if reason != revocation.NotBlocked {
			ec.Revoked, ec.Reason = true, reason.String()
			blocked = append(blocked, fmt.Sprintf("%s %s revoked (%s)", c.Source, ec.Hash, reason))
		}
		out.Credentials = append(out.Credentials, ec)
	}
	out.AppLogout = h.appLogout[logoutPathKey(r.URL)]
	out.Verdict = "pass"
	switch {
	case x.Uninspected && h.OversizedBody == "reject":
		out.Verdict, out.Why = "refuse", "413: the body cannot be inspected (oversized_body reject)"
	case len(x.Creds) == 0 && h.RequireToken:
		out.Verdict, out.Why = "refuse", "401: no credential, and require_token is set"
	case len(x.Creds) == 0:
		out.Why = "no credential found"
	case len(x.Named()) > 0 && h.staleAfter > 0 && !h.failOpen && h.store.Staleness(now) > h.staleAfter:
		out.Verdict, out.Why = "refuse", "503: the denylist is not confirmed current (on_store_down fail_closed)"
	case len(blocked) > 0:
		out.Verdict, out.Why = "block", "401: "+strings.Join(blocked, "; ")
	case h.RequireToken && !verified:
		out.Verdict, out.Why = "refuse", "401: no access token verifies, and require_token is set"
	default:
		out.Why = "no credential is revoked"
	}
	return out
}

// explainTarget turns an ExplainRequest into the request the guard sees.
func explainTarget(req ExplainRequest, r *http.Request) (*http.Request, error) {
	method, target := req.Method, req.Path
	if method == "" {
		method = http.MethodGet
	}
	if target == "" {
		target = "/"
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", target, err)
	}
	out, err := http.NewRequestWithContext(r.Context(), method, u.String(), strings.NewReader(req.Body))
	if err != nil {
		return nil, fmt.Errorf("method %q: %w", method, err)
	}
	if req.Body == "" {
		out.Body = http.NoBody
	}
	for name, vals := range req.Headers {
		for _, v := range vals {
			out.Header.Add(name, v)
		}
	}
	if cl := out.Header.Get("Content-Length"); cl == "" {
		out.ContentLength = int64(len(req.Body))
	}
	return out, nil
}

func (a *adminAPI) handleExplain(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use POST", r.Method)
	}
	var req ExplainRequest
	data, err := io.ReadAll(io.LimitReader(r.Body, maxExplainBody+1))
	if err != nil {
		return apiErr(http.StatusBadRequest, "read request: %v", err)
	}
	if len(data) > maxExplainBody {
		return apiErr(http.StatusRequestEntityTooLarge, "request larger than %d MiB", maxExplainBody>>20)
	}
	if err := decodeStrict(data, &req); err != nil {
		return apiErr(http.StatusBadRequest, "decode request: %v", err)
	}
	// An empty method or path is refused rather than read as GET or /,
	// like every other admin field; an empty body is a request's body.
	if err := noBlankMembers(data, "body", "headers"); err != nil {
		return apiErr(http.StatusBadRequest, "decode request: %v", err)
	}
	target, err := explainTarget(req, r)
	if err != nil {
		return apiErr(http.StatusBadRequest, "%v", err)
	}
	body := req.Body
	resp := ExplainResponse{Handlers: []ExplainedHandler{}}
	eachStore(func(s *sharedStore) {
		s.guards.Range(func(k, _ any) bool {
			// Each handler reads the body; give each a fresh one.
			t := target.Clone(r.Context())
			if body != "" {
				t.Body = io.NopCloser(strings.NewReader(body))
			}
			resp.Handlers = append(resp.Handlers, k.(*Handler).explain(t))
			return true
		})
	})
	if len(resp.Handlers) == 0 {
		return apiErr(http.StatusConflict, "no revocation handler is configured in this instance")
	}
	return writeAdminJSON(w, http.StatusOK, resp)
}

// maxExplainBody bounds POST /revocation/explain: a request with a body
// of up to the largest inspect_body_limit, JSON-escaped.
const maxExplainBody = 2 * maxInspectBodyLimit

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
