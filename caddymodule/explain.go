package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

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
	var blocked []string
	var d decision
	h.decide(r.Context(), &d, &x, h.store.Denylist(), now, func(c *extract.Credential, info *revocation.TokenInfo, reason revocation.Reason) {
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
		case extract.Value:
			ec.Kind = "value"
		}
		if reason != revocation.NotBlocked {
			ec.Revoked, ec.Reason = true, reason.String()
			blocked = append(blocked, fmt.Sprintf("%s %s revoked (%s)", c.Source, ec.Hash, reason))
		}
		out.Credentials = append(out.Credentials, ec)
	})
	out.AppLogout = h.appLogout[logoutPathKey(r.URL)]
	out.Verdict = "pass"
	switch d.verdict {
	case refuseBody:
		out.Verdict, out.Why = "refuse", "413: the body cannot be inspected (oversized_body reject)"
	case refuseNoToken:
		out.Verdict, out.Why = "refuse", "401: no credential, and require_token is set"
	case refuseStale:
		out.Verdict, out.Why = "refuse", "503: the denylist is not confirmed current (on_store_down fail_closed)"
	case block:
		out.Verdict, out.Why = "block", "401: "+strings.Join(blocked, "; ")
	case refuseUnverified:
		out.Verdict, out.Why = "refuse", "401: no access token verifies, and require_token is set"
	case pass:
		out.Why = "no credential is revoked"
		if len(x.Creds) == 0 {
			out.Why = "no credential found"
		}
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
	if app := a.revocationApp(); app != nil {
		app.eachGuard(func(h *Handler) {
			// Each handler reads the body; give each a fresh one.
			t := target.Clone(r.Context())
			if body != "" {
				t.Body = io.NopCloser(strings.NewReader(body))
			}
			resp.Handlers = append(resp.Handlers, h.explain(t))
		})
	}
	if len(resp.Handlers) == 0 {
		return apiErr(http.StatusConflict, "no revocation handler is configured in this instance")
	}
	return writeAdminJSON(w, http.StatusOK, resp)
}

// maxExplainBody bounds POST /revocation/explain: a request with a body
// of up to the largest inspect_body_limit, JSON-escaped.
const maxExplainBody = 2 * maxInspectBodyLimit
