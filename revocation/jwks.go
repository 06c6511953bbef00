package revocation

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// maxJWKSBytes bounds a key set document.
const maxJWKSBytes = 1 << 20

// RemoteKeySet is a JWKS fetched over HTTP and cached. It is fetched again
// when a token names a kid it does not hold, at most once per MinRefetch,
// and when the cached copy is older than MaxAge.
type RemoteKeySet struct {
	url        string
	client     *http.Client
	minRefetch time.Duration
	maxAge     time.Duration
	log        *slog.Logger
	now        func() time.Time

	fetchMu sync.Mutex // one fetch at a time
	mu      sync.RWMutex
	byKid   map[string][]jwksKey
	all     []jwksKey
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
}

type jwksKey struct {
	alg string // the JWK's own alg, "" when unrestricted
	key crypto.PublicKey
}

// NewRemoteKeySet prepares a key set; nothing is fetched until first use
// or Refresh.
func NewRemoteKeySet(url string, client *http.Client, minRefetch, maxAge time.Duration, log *slog.Logger) *RemoteKeySet {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	if minRefetch <= 0 {
		minRefetch = 30 * time.Second
	}
	if maxAge <= 0 {
		maxAge = time.Hour
	}
	if log == nil {
		log = slog.Default()
	}
	return &RemoteKeySet{url: url, client: client, minRefetch: minRefetch, maxAge: maxAge, log: log, now: time.Now}
}

// Keys returns the keys that may have signed a token with this kid and
// alg. An unknown kid (or a stale cache) triggers a fetch, rate-limited.
func (r *RemoteKeySet) Keys(ctx context.Context, kid, alg string) []crypto.PublicKey {
	keys, known, age := r.lookup(kid, alg)
	if (kid != "" && !known) || age > r.maxAge {
		if r.fetchIfAllowed(ctx) {
			keys, _, _ = r.lookup(kid, alg)
		}
	}
	return keys
}

func (r *RemoteKeySet) lookup(kid, alg string) ([]crypto.PublicKey, bool, time.Duration) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	age := r.now().Sub(r.fetched)
	if r.fetched.IsZero() {
		age = 1<<63 - 1
	}
	cands := r.all
	known := true
	if kid != "" {
		cands, known = r.byKid[kid]
	}
	var out []crypto.PublicKey
	for _, k := range cands {
		if k.alg == "" || k.alg == alg {
			out = append(out, k.key)
		}
	}
	return out, known, age
}

// fetchIfAllowed fetches unless a fetch was attempted less than
// MinRefetch ago; it reports whether the cache was replaced.
func (r *RemoteKeySet) fetchIfAllowed(ctx context.Context) bool {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	r.mu.RLock()
	recent := !r.tried.IsZero() && r.now().Sub(r.tried) < r.minRefetch
	r.mu.RUnlock()
	if recent {
		return false
	}
	// The fetch spends the rate limit, so it must not end with the request
	// that triggered it: a client that cancels at once could otherwise keep
	// a rotated key out for ever. It has its own deadline instead.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	if err := r.fetch(fctx); err != nil {
		r.log.Warn("fetching JWKS failed; keeping the cached keys", "url", r.url, "error", err)
		return false
	}
	return true
}

// fetchTimeout bounds one JWKS fetch triggered by a token.
const fetchTimeout = 10 * time.Second

// Refresh fetches the key set now, whatever the rate limit says.
func (r *RemoteKeySet) Refresh(ctx context.Context) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	return r.fetch(ctx)
}

func (r *RemoteKeySet) fetch(ctx context.Context) error {
	r.mu.Lock()
	r.tried = r.now()
	r.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwks fetch: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("jwks read: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("jwks document larger than %d bytes", maxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("jwks decode: %w", err)
	}
	byKid := make(map[string][]jwksKey)
	var all []jwksKey
	for i, raw := range doc.Keys {
		var j JWK
		if err := json.Unmarshal(raw, &j); err != nil {
			r.log.Warn("skipping unreadable JWKS key", "index", i, "error", err)
			continue
		}
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		pub, err := j.PublicKey()
		if err != nil {
			r.log.Warn("skipping unusable JWKS key", "kid", j.Kid, "error", err)
			continue
		}
		k := jwksKey{alg: j.Alg, key: pub}
		all = append(all, k)
		if j.Kid != "" {
			byKid[j.Kid] = append(byKid[j.Kid], k)
		}
	}
	r.mu.Lock()
	r.byKid, r.all, r.fetched = byKid, all, r.now()
	r.mu.Unlock()
	return nil
}
