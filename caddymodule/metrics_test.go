package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// exportedMetricNames lists every series name the module's collectors
// can produce, histogram series included.
func exportedMetricNames(t *testing.T) []string {
	t.Helper()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for _, c := range collectors() {
		ch := make(chan *prometheus.Desc, 16)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no fqName in %s", d)
			}
			names = append(names, m[1])
			if _, ok := c.(prometheus.Histogram); ok {
				names = append(names, m[1]+"_bucket", m[1]+"_sum", m[1]+"_count")
			}
		}
	}
	return names
}

// Every metric that deploy/monitoring's dashboard queries and alerting
// rules name is one the module exports, and each query names one: a
// renamed metric must not leave an empty panel or an alert that can
// never fire.
func TestMonitoringNamesExportedMetrics(t *testing.T) {
	exported := exportedMetricNames(t)
	metricName := regexp.MustCompile(`caddy_revocation_[a-z_]+`)

	var exprs []string
	data, err := os.ReadFile(filepath.Join("..", "deploy", "monitoring", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("grafana-dashboard.json has no panels")
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	rules, err := os.ReadFile(filepath.Join("..", "deploy", "monitoring", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	nrules := 0
	for _, line := range strings.Split(string(rules), "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(line), "expr: "); ok {
			exprs = append(exprs, e)
			nrules++
		}
	}
	if nrules == 0 {
		t.Fatal("alerts.yml has no rule expressions")
	}

	// The rules' unit tests feed series by name: those must be real too.
	ruleTests, err := os.ReadFile(filepath.Join("..", "deploy", "monitoring", "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range metricName.FindAllString(string(ruleTests), -1) {
		if !slices.Contains(exported, n) {
			t.Errorf("alerts_test.yml feeds %s, which the module does not export", n)
		}
	}

	used := map[string]bool{}
	for _, e := range exprs {
		names := metricName.FindAllString(e, -1)
		if len(names) == 0 {
			t.Errorf("query %q names no caddy_revocation metric", e)
		}
		for _, n := range names {
			used[n] = true
			if !slices.Contains(exported, n) {
				t.Errorf("query %q names %s, which the module does not export (it exports %v)", e, n, exported)
			}
		}
	}
	// The panels docs/operating.md promises: blocks by reason, revocations by
	// endpoint, store up and staleness, propagation lag, loads.
	for _, n := range []string{"caddy_revocation_requests_blocked_total", "caddy_revocation_revocations_total",
		"caddy_revocation_store_up", "caddy_revocation_store_staleness_seconds",
		"caddy_revocation_remote_apply_seconds_bucket", "caddy_revocation_denylist_loads_total"} {
		if !used[n] {
			t.Errorf("no dashboard query or rule uses %s", n)
		}
	}
}
