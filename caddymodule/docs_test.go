package caddymodule

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// codeDefaults is every default the docs may quote, as the code has it:
// one line per option, from the one constant the code applies. A default
// quoted in the docs for an option not listed here fails the test, so a
// new one is added here with its constant.
var codeDefaults = map[string]string{
	"key_prefix":              strconv.Quote(defaultKeyPrefix),
	"session_ttl":             docDuration(defaultSessionTTL),
	"stale_after":             docDuration(defaultStaleAfter),
	"redis_timeout":           docDuration(defaultRedisTimeout),
	"redis_wait_replicas":     "auto", // "" reads as auto (parseWaitReplicas)
	"redis_wait_timeout":      docDuration(defaultRedisWaitTimeout),
	"on_store_down":           defaultOnStoreDown,
	"oversized_body":          defaultOversizedBody,
	"log_blocked":             defaultLogBlocked,
	"inspect_body_limit":      docSize(defaultInspectBody),
	"max_credentials":         strconv.Itoa(defaultMaxCredentials),
	"token_cache_size":        strconv.Itoa(revocation.DefaultCacheSize),
	"feed_max_len":            strconv.Itoa(revocation.DefaultFeedMaxLen),
	"feed_retention":          docDuration(revocation.DefaultFeedRetention),
	"snapshot_every":          docDuration(revocation.DefaultSnapshotEvery),
	"memory_budget":           "cgroup", // 0 reads as revocation.CgroupMemoryLimit() (memoryBudget)
	"jwks_refetch_interval":   docDuration(revocation.DefaultMinRefetch),
	"session_claim":           revocation.DefaultSessionClaim,
	"inspect_body":            "on",  // InspectBody nil reads as true (Provision)
	"leeway":                  "0",   // the zero caddy.Duration
	"close_streams_at_expiry": "off", // the zero bool
	"compact_denylist":        "off", // the zero bool
}

// docDuration writes a duration as the docs and the Caddyfile do: 720h,
// 5m, 30s.
func docDuration(d time.Duration) string {
	s := d.String() // 720h0m0s, 5m0s, 30s, 1m30s
	s, _ = strings.CutSuffix(s, "m0s")
	if strings.HasSuffix(d.String(), "m0s") {
		s += "m"
	}
	s, _ = strings.CutSuffix(s, "h0m")
	if strings.HasSuffix(d.String(), "h0m0s") {
		s += "h"
	}
	return s
}

// docSize writes a byte count as the docs do: 64KiB.
func docSize(n int) string {
	switch {
	case n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n)
}

var (
	// A default in the Caddyfile syntax block: an option line whose
	// comment says "default X" (not "default: ...", which describes).
	syntaxDefault = regexp.MustCompile(`^\s*([a-z_]+)\b[^#]*#.*\bdefault\s+("[^"]*"|[^\s;,)]+)`)
	// A default quoted in prose: "`option` (default X)".
	proseDefault = regexp.MustCompile("`([a-z_]+)` \\(default ([^);,]+)")
)

// Every default the docs quote is the code's: in the syntax block of
// docs/configuration.md and wherever a page says "`option` (default X)".
func TestDocsDefaults(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "README.md"))
	found := map[string]bool{}
	check := func(where, option, quoted string) {
		t.Helper()
		found[option] = true
		want, ok := codeDefaults[option]
		switch {
		case !ok:
			t.Errorf("%s: quotes a default for %s (%s) that codeDefaults does not know: add its constant there", where, option, quoted)
		case quoted != want:
			t.Errorf("%s: %s defaults to %s, the code to %s", where, option, quoted, want)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inSyntax, fenced := false, false
		for i, line := range strings.Split(string(data), "\n") {
			where := filepath.Base(f) + ":" + strconv.Itoa(i+1)
			trimmed := strings.TrimSpace(line)
			switch {
			case trimmed == "<!-- doc-test: caddyfile syntax -->":
				inSyntax = true
				continue
			case strings.HasPrefix(trimmed, "```"):
				fenced = !fenced
				if !fenced {
					inSyntax = false
				}
				continue
			}
			if inSyntax && fenced {
				if m := syntaxDefault.FindStringSubmatch(line); m != nil {
					check(where, m[1], m[2])
				}
				continue
			}
			for _, m := range proseDefault.FindAllStringSubmatch(line, -1) {
				check(where, m[1], strings.TrimSpace(m[2]))
			}
		}
	}
	// The syntax block quotes every default the code has.
	for option := range codeDefaults {
		if !found[option] {
			t.Errorf("the docs quote no default for %s (docs/configuration.md's syntax block should)", option)
		}
	}
}

func TestDocDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{720 * time.Hour: "720h", 30 * time.Second: "30s", 5 * time.Minute: "5m", time.Minute: "1m", 90 * time.Second: "1m30s", 2 * time.Second: "2s"} {
		if got := docDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
)

// anchor is the id GitHub gives a heading: lower case, punctuation other
// than - and _ dropped, spaces as -.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Every link between the README and the docs lands on a file that exists
// and, when it names one, on a heading of that file.
func TestDocsLinks(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "README.md"))
	anchors := map[string]map[string]bool{}
	read := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			return ""
		}
		if anchors[path] == nil {
			anchors[path] = map[string]bool{}
			for _, m := range mdHeading.FindAllStringSubmatch(string(data), -1) {
				anchors[path][anchor(m[1])] = true
			}
		}
		return string(data)
	}
	n := 0
	for _, f := range files {
		for _, m := range mdLink.FindAllStringSubmatch(read(f), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			n++
			path, frag, _ := strings.Cut(target, "#")
			dest := f
			if path != "" {
				dest = filepath.Join(filepath.Dir(f), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %s: no such file", f, target)
					continue
				}
			}
			if frag != "" && strings.HasSuffix(dest, ".md") {
				read(dest)
				if !anchors[dest][frag] {
					t.Errorf("%s: link %s: no heading #%s in %s", f, target, frag, dest)
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d links found", n)
	}
}

// redis_wait_replicas has no constant: an unset value reads as a word,
// and the default the docs quote must be the word it reads as.
func TestDocsDefaultWaitReplicas(t *testing.T) {
	unset, err := parseWaitReplicas("")
	if err != nil {
		t.Fatal(err)
	}
	if quoted, err := parseWaitReplicas(codeDefaults["redis_wait_replicas"]); err != nil || quoted != unset {
		t.Fatalf("redis_wait_replicas %q reads as %d (%v); unset reads as %d", codeDefaults["redis_wait_replicas"], quoted, err, unset)
	}
}
