package caddymodule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// What a handler's options mean, checked once. Validate applies every
// rule to the configuration as Caddy loads it, from a Caddyfile or from
// JSON alike; the Caddyfile parser reads only syntax (a number, a size,
// a duration, a word) and calls the same rule for the one option it has
// just read, so that its error still names the file and line.

// The bounds of the options that have one.
const (
	maxInspectBodyLimit = 16 << 20
	maxMaxCredentials   = 1024
	minFeedMaxLen       = 100
	minFeedRetention    = time.Minute
	minSnapshotEvery    = 10 * time.Second
	// minMemoryBudget: an idle replica holds about 60 MB; less leaves no
	// room.
	minMemoryBudget = 64 << 20
	maxMemoryBudget = 1 << 50
)

// Validate implements caddy.Validator: every option's meaning, for JSON
// and Caddyfile configurations alike.
func (h *Handler) Validate() error {
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	check(h.StoreConfig.Validate())
	check(checkChoice("oversized_body", h.OversizedBody, defaultOversizedBody, "reject"))
	if _, _, err := logLevel(h.LogBlocked); err != nil {
		check(err)
	}
	if h.InspectBodyLimit != 0 {
		check(checkInspectBodyLimit(h.InspectBodyLimit))
	}
	if h.MaxCredentials != 0 && (h.MaxCredentials < 1 || h.MaxCredentials > maxMaxCredentials) {
		check(fmt.Errorf("max_credentials: %d: want 1 to %d", h.MaxCredentials, maxMaxCredentials))
	}
	if h.TokenCacheSize < 0 {
		check(fmt.Errorf("token_cache_size: %d: want a positive integer", h.TokenCacheSize))
	}
	check(h.checkCredentials())
	if j := h.JWT; j != nil {
		if j.Leeway < 0 {
			check(errors.New("jwt leeway: must not be negative"))
		}
		check(checkAlgorithms(j.Algorithms))
	}
	return errors.Join(errs...)
}

// checkChoice checks a word option: empty (the default) or one of want.
func checkChoice(option, v string, want ...string) error {
	if v == "" {
		return nil
	}
	for _, w := range want {
		if v == w {
			return nil
		}
	}
	return fmt.Errorf("%s: %q: want %s", option, v, strings.Join(want, " or "))
}

// logLevel reads log_blocked: the level of a block's log line, and
// whether one is written at all.
func logLevel(v string) (zapcore.Level, bool, error) {
	switch strings.ToLower(v) {
	case "", defaultLogBlocked:
		return zapcore.InfoLevel, true, nil
	case "debug":
		return zapcore.DebugLevel, true, nil
	case "warn":
		return zapcore.WarnLevel, true, nil
	case "error":
		return zapcore.ErrorLevel, true, nil
	case "off":
		return zapcore.InfoLevel, false, nil
	}
	return zapcore.InfoLevel, false, fmt.Errorf("log_blocked: %q: want debug, info, warn, error or off", v)
}

func checkInspectBodyLimit(n int64) error {
	if n < 1 || n > maxInspectBodyLimit {
		return fmt.Errorf("inspect_body_limit: %d: want a size from 1B to %dMiB", n, maxInspectBodyLimit>>20)
	}
	return nil
}

func checkFeedMaxLen(n int64) error {
	if n < minFeedMaxLen {
		return fmt.Errorf("feed_max_len: %d: want an integer of at least %d", n, minFeedMaxLen)
	}
	return nil
}

// checkFeedRetention and checkSnapshotEvery say what is wrong with a
// value (their callers name the option and the value): the lower bounds.
// That the feed must outlast the time between snapshots is
// storeSettings.validate's.
func checkFeedRetention(d time.Duration) error {
	if d < minFeedRetention {
		return fmt.Errorf("want at least %v", minFeedRetention)
	}
	return nil
}

func checkSnapshotEvery(d time.Duration) error {
	if d < minSnapshotEvery {
		return fmt.Errorf("want at least %v, or off", minSnapshotEvery)
	}
	return nil
}

func checkMemoryBudget(n int64) error {
	if n < minMemoryBudget || n > maxMemoryBudget {
		return fmt.Errorf("memory_budget: %d: want a size of at least %dMiB (such as 256MiB or 1GB), cgroup or off", n, minMemoryBudget>>20)
	}
	return nil
}

func checkAlgorithms(algs []string) error {
	for _, a := range algs {
		if strings.EqualFold(a, "none") {
			return errors.New(`jwt algorithms: "none" can never be allowed`)
		}
	}
	return nil
}

// waitTimeout resolves redis_wait_timeout's default: defaultRedisWaitTimeout,
// or half of redis_timeout when that is shorter.
func waitTimeout(wait, redisTimeout time.Duration) time.Duration {
	if wait == 0 {
		return min(defaultRedisWaitTimeout, redisTimeout/2)
	}
	return wait
}

// checkCredentials checks the credential sources and the app_logout
// paths.
func (h *Handler) checkCredentials() error {
	for i, c := range h.Credentials {
		switch {
		case (c.Cookie == "") == (c.Header == ""):
			return fmt.Errorf("credentials[%d]: give exactly one of cookie or header", i)
		case c.Cookie != "" && !validToken(c.Cookie):
			return fmt.Errorf("credential cookie %q: not a valid cookie name", c.Cookie)
		case c.Header != "" && !validToken(c.Header):
			return fmt.Errorf("credential header %q: not a valid header name", c.Header)
		}
	}
	for _, p := range h.AppLogout {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("app_logout %q: want a path starting with /", p)
		}
	}
	return nil
}
