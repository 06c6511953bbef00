package revocation

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"
)

// maxJWKSBytes bounds a key set document.
const maxJWKSBytes = 1 << 20

// maxKidWait bounds how long a token with an unknown kid waits for the
// refetch allowance, and so the refetch itself.
const maxKidWait = 5 * time.Second

// DefaultMinRefetch is the least time between two fetches of a key set
// for unknown kids, unless configured (jwks_refetch_interval).
const DefaultMinRefetch = 30 * time.Second

// RemoteKeySet is a JWKS fetched over HTTP(S) and cached, through
// keyfunc and jwkset: fetched first when Start is called (when Caddy
// starts the configuration, never while it only validates it) or when a
// token first needs a key, again every MaxAge in the background, and when
// a token names an unknown kid (at most once per MinRefetch; such a token
// waits up to 5s for that allowance, else it is refused).
type RemoteKeySet struct {
	ctx  context.Context
	cfg  RemoteKeySetConfig
	once sync.Once
	kf   keyfunc.Keyfunc
	err  error
}

// RemoteKeySetConfig configures a RemoteKeySet.
type RemoteKeySetConfig struct {
	URL string
	// Client fetches the set; a 5s-timeout client when nil. Documents over
	// 1 MiB are refused whatever the client.
	Client *http.Client
	// MinRefetch is the least time between fetches for unknown kids;
	// default DefaultMinRefetch.
	MinRefetch time.Duration
	// MaxAge is how often the set is fetched again; default 1h.
	MaxAge time.Duration
	Log    *slog.Logger
}

// NewRemoteKeySet checks the configuration and returns a key set that
// fetches nothing yet: Start (or the first token that needs a key) makes
// the first fetch, and the set is kept current until ctx ends. A first
// fetch that fails is logged, not returned: the set is fetched again for
// the first token that needs a key.
func NewRemoteKeySet(ctx context.Context, cfg RemoteKeySetConfig) (*RemoteKeySet, error) {
	if cfg.MinRefetch <= 0 {
		cfg.MinRefetch = DefaultMinRefetch
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("jwks %s: want an http(s) URL", cfg.URL)
	}
	return &RemoteKeySet{ctx: ctx, cfg: cfg}, nil
}

// Start makes the first fetch, once; later calls do nothing.
func (r *RemoteKeySet) Start() error {
	r.once.Do(func() {
		cfg := r.cfg
		client := http.Client{Timeout: 5 * time.Second}
		if cfg.Client != nil {
			client = *cfg.Client
		}
		base := client.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		client.Transport = limitedTransport{base}
		r.kf, r.err = keyfunc.NewDefaultOverrideCtx(r.ctx, []string{cfg.URL}, keyfunc.Override{
			Client:            &client,
			HTTPTimeout:       client.Timeout,
			RateLimitWaitMax:  maxKidWait,
			RefreshInterval:   cfg.MaxAge,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(cfg.MinRefetch), 1),
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(_ context.Context, err error) {
					cfg.Log.Warn("fetching JWKS failed; keeping the cached keys", "url", u, "error", err)
				}
			},
		})
		if r.err != nil {
			r.err = fmt.Errorf("jwks %s: %w", cfg.URL, r.err)
		}
	})
	return r.err
}

// Keys returns the keys that may have signed a token with this kid and
// alg: the key of that kid (fetching the set again for an unknown one),
// or every key for a token without a kid; a key whose use is not "sig",
// whose alg differs, or an RSA key under 2048 bits is left out. A request that ends does not abort a
// fetch it started: the fetch has its own deadline, so that a client
// cancelling at once cannot spend the refetch allowance for nothing.
func (r *RemoteKeySet) Keys(ctx context.Context, kid, alg string) []crypto.PublicKey {
	if err := r.Start(); err != nil {
		r.cfg.Log.Warn("JWKS unavailable", "error", err)
		return nil
	}
	st := r.kf.Storage()
	ctx = context.WithoutCancel(ctx)
	var keys []crypto.PublicKey
	add := func(use, keyAlg string, key any) {
		if (use != "" && use != "sig") || (keyAlg != "" && keyAlg != alg) {
			return
		}
		if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
			key = pk.Public() // a careless issuer published a private key
		}
		if rk, ok := key.(*rsa.PublicKey); ok && rk.N.BitLen() < minRSABits {
			return // as for PEM keys: too weak to trust
		}
		keys = append(keys, key)
	}
	if kid != "" {
		jwk, err := st.KeyRead(ctx, kid)
		if err != nil {
			return nil
		}
		m := jwk.Marshal()
		add(string(m.USE), m.ALG.String(), jwk.Key())
		return keys
	}
	all, err := st.KeyReadAll(ctx)
	if err != nil {
		return nil
	}
	for _, jwk := range all {
		m := jwk.Marshal()
		add(string(m.USE), m.ALG.String(), jwk.Key())
	}
	return keys
}

// limitedTransport refuses key set documents larger than maxJWKSBytes:
// jwkset decodes whatever the server sends.
type limitedTransport struct{ base http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > maxJWKSBytes {
		resp.Body.Close()
		return nil, fmt.Errorf("jwks document of %d bytes; at most %d", resp.ContentLength, maxJWKSBytes)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: maxJWKSBytes}
	return resp, nil
}

var errJWKSTooLarge = errors.New("jwks document too large")

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errJWKSTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
