package revocation

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig says how to reach Redis: standalone, Sentinel or Cluster.
// The zero value means "no Redis" (the embedded store).
type RedisConfig struct {
	// URL is a redis:// or rediss:// URL of one standalone server, with
	// optional user, password and database: redis://user:pass@host:6379/0.
	URL string `json:"url,omitempty"`
	// Addrs lists servers: one standalone server, the Sentinels (with
	// MasterName), or Cluster seed nodes (with Cluster).
	Addrs []string `json:"addrs,omitempty"`
	// Username and Password authenticate to Redis (ACL user or
	// requirepass).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DB selects a database; standalone and Sentinel only. Default 0.
	DB int `json:"db,omitempty"`
	// TLS turns on TLS (implied by a rediss:// URL).
	TLS bool `json:"tls,omitempty"`
	// TLSServerName overrides the name checked in the server certificate.
	TLSServerName string `json:"tls_server_name,omitempty"`
	// TLSCAFile is a PEM file of CAs to trust instead of the system pool.
	TLSCAFile string `json:"tls_ca_file,omitempty"`
	// TLSInsecureSkipVerify disables certificate verification. Testing only.
	TLSInsecureSkipVerify bool `json:"tls_insecure_skip_verify,omitempty"`
	// MasterName selects Sentinel mode: Addrs are Sentinels that know this
	// master.
	MasterName string `json:"master_name,omitempty"`
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// when they differ from the data nodes.
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// Cluster selects Redis Cluster mode: Addrs are seed nodes.
	Cluster bool `json:"cluster,omitempty"`
}

// IsZero reports whether no Redis is configured.
func (c RedisConfig) IsZero() bool {
	return c.URL == "" && len(c.Addrs) == 0
}

// Mode names the deployment the config selects.
func (c RedisConfig) Mode() string {
	switch {
	case c.MasterName != "":
		return "sentinel"
	case c.Cluster:
		return "cluster"
	}
	return "standalone"
}

// Options validates the config and turns it into go-redis options, with
// the timeouts a sidecar wants. Errors never contain a password.
func (c RedisConfig) Options(dialTimeout, ioTimeout time.Duration) (*redis.UniversalOptions, error) {
	if c.IsZero() {
		return nil, errors.New("redis: no url or addrs")
	}
	opts := &redis.UniversalOptions{
		Username:         c.Username,
		Password:         c.Password,
		DB:               c.DB,
		MasterName:       c.MasterName,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,
		IsClusterMode:    c.Cluster,
		DialTimeout:      dialTimeout,
		ReadTimeout:      ioTimeout,
		WriteTimeout:     ioTimeout,
		// A revocation must fail fast when Redis is gone, so that the
		// endpoint can answer 500 instead of hanging; the feed follower
		// retries on its own schedule.
		MaxRetries: 1,
		// go-redis would otherwise dial five times, 100ms apart, before a
		// command even starts its retry: a refused connection must
		// surface at once.
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
		ClientName:            "caddy-revocation",
	}
	tlsOn := c.TLS
	if c.URL != "" {
		if len(c.Addrs) > 0 {
			return nil, errors.New("redis: give either url or addrs, not both")
		}
		if c.MasterName != "" || c.Cluster {
			return nil, errors.New("redis: Sentinel and Cluster take addrs, not url")
		}
		if !strings.Contains(c.URL, "://") {
			// "127.0.0.1:6379" is a common slip; url.Parse would call it
			// a path segment with a colon, or take "localhost" for a
			// scheme. Echo the value only when it holds no credentials.
			if strings.Contains(c.URL, "@") {
				return nil, errors.New("redis: url has no scheme: write it as redis://... (or rediss://... for TLS)")
			}
			return nil, fmt.Errorf("redis: url %q has no scheme: write redis://%s (or rediss://%s for TLS)", c.URL, c.URL, c.URL)
		}
		u, err := url.Parse(c.URL)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the URL, password included
			}
			return nil, fmt.Errorf("redis: malformed url: %v", err)
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" {
			return nil, fmt.Errorf("redis: url %s: scheme must be redis:// or rediss://", u.Redacted())
		}
		if u.Host == "" {
			return nil, fmt.Errorf("redis: url %s: no host", u.Redacted())
		}
		parsed, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, fmt.Errorf("redis: url %s: %s", u.Redacted(), strings.ReplaceAll(err.Error(), c.URL, u.Redacted()))
		}
		if err := checkAddr(parsed.Addr); err != nil {
			return nil, fmt.Errorf("redis: url %s: %w", u.Redacted(), err)
		}
		opts.Addrs = []string{parsed.Addr}
		if opts.Username == "" {
			opts.Username = parsed.Username
		}
		if opts.Password == "" {
			opts.Password = parsed.Password
		}
		if opts.DB == 0 {
			opts.DB = parsed.DB
		}
		tlsOn = tlsOn || parsed.TLSConfig != nil
	} else {
		for _, a := range c.Addrs {
			if err := checkAddr(a); err != nil {
				return nil, fmt.Errorf("redis: address %q: %w", a, err)
			}
		}
		opts.Addrs = append([]string(nil), c.Addrs...)
		if len(opts.Addrs) > 1 && c.MasterName == "" && !c.Cluster {
			return nil, errors.New("redis: several addrs need master_name (Sentinel) or cluster")
		}
	}
	if c.DB != 0 && c.Cluster {
		return nil, errors.New("redis: Cluster has no databases; remove db")
	}
	if c.DB < 0 {
		return nil, fmt.Errorf("redis: db %d: must be 0 or more", c.DB)
	}
	if tlsOn {
		tc := &tls.Config{
			MinVersion:         tls.VersionTLS12,
			ServerName:         c.TLSServerName,
			InsecureSkipVerify: c.TLSInsecureSkipVerify, //nolint:gosec // opt-in, documented as testing only
		}
		// With no tls_server_name, each connection checks the name of the
		// host it dials (crypto/tls does so from the address): right for
		// every node of a Cluster and for a master found by Sentinel,
		// where one fixed name would be wrong.
		if c.TLSCAFile != "" {
			pem, err := os.ReadFile(c.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("redis: tls_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("redis: tls_ca_file %s: no PEM certificates", c.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		opts.TLSConfig = tc
	} else if c.TLSCAFile != "" || c.TLSServerName != "" || c.TLSInsecureSkipVerify {
		return nil, errors.New("redis: tls_* options need tls (or a rediss:// url)")
	}
	return opts, nil
}

// checkAddr rejects a host:port that cannot be dialed: no host, or a
// port outside 1-65535.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("want host:port (%s)", ae.Err)
		}
		return fmt.Errorf("want host:port: %w", err)
	}
	if host == "" {
		return errors.New("no host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return nil
}

// Identity is a string equal for two configs exactly when they reach
// the same data on the same servers (mode, addresses, database, master
// name, user): whatever else differs (timeouts, TLS files, passwords) does
// not change which denylist they read. It may hold credentials: compare
// it, never show it.
func (c RedisConfig) Identity() string {
	return strings.Join([]string{c.Mode(), c.URL, strings.Join(c.Addrs, ","), strconv.Itoa(c.DB), c.MasterName, c.Username}, "\x00")
}

// Describe renders the config for logs and status pages: mode and
// addresses, never credentials.
func (c RedisConfig) Describe() string {
	addrs := c.Addrs
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err == nil {
			addrs = []string{u.Host}
		}
	}
	return c.Mode() + " " + strings.Join(addrs, ",")
}
