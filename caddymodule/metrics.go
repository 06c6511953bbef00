package caddymodule

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// The metrics are created once per process, as Caddy's own handlers do,
// and registered on the registry of every config that uses the handler,
// so they keep counting across reloads. Labels are bounded: reasons,
// dialects, codes, kinds and store names, never a token, jti, session or
// subject.
var metrics struct {
	once sync.Once

	checked       prometheus.Counter
	hashOnly      prometheus.Counter
	valuesCapped  prometheus.Counter
	blocked       *prometheus.CounterVec // reason
	refused       *prometheus.CounterVec // why
	revocations   *prometheus.CounterVec // endpoint (the dialect or route that wrote them), kind
	appLogouts    *prometheus.CounterVec // result
	endpointErrs  *prometheus.CounterVec // dialect, code
	storeErrs     *prometheus.CounterVec // store, op
	transitions   *prometheus.CounterVec // store, to
	loads         *prometheus.CounterVec // store
	remoteApply   prometheus.Histogram
	streamsOpen   prometheus.Gauge
	streamsClosed *prometheus.CounterVec // reason
	storeGauges   prometheus.Collector
	blockedByWhat map[string]prometheus.Counter
}

const (
	metricsNamespace = "caddy"
	metricsSubsystem = "revocation"
)

// blockReasons are the values of the reason label: what was revoked.
var blockReasons = []string{"token", "jti", "session", "subject", "global", "refresh_token"}

func initMetrics() {
	metrics.once.Do(func() {
		opts := func(name, help string) prometheus.Opts {
			return prometheus.Opts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
		}
		metrics.checked = prometheus.NewCounter(prometheus.CounterOpts(opts("requests_checked_total",
			"Proxied requests whose credentials were checked against the denylist.")))
		metrics.hashOnly = prometheus.NewCounter(prometheus.CounterOpts(opts("values_hash_only_total",
			"JWT-shaped candidates checked by hash only (their exact string, and their claims when decoded before), because their request had spent its decoding budget (max_credentials).")))
		metrics.valuesCapped = prometheus.NewCounter(prometheus.CounterOpts(opts("requests_values_capped_total",
			"Proxied requests that carried more values found by value alone than are checked in one request (4096); the rest were not checked, and the request was not refused for it.")))
		metrics.blocked = prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_blocked_total",
			"Proxied requests stopped because a credential they carry is revoked, by what was revoked.")), []string{"reason"})
		metrics.refused = prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_refused_total",
			"Proxied requests refused for another reason: store_stale (on_store_down fail_closed) or token_required.")), []string{"why"})
		metrics.revocations = prometheus.NewCounterVec(prometheus.CounterOpts(opts("revocations_total",
			"Denylist entries written, by the endpoint or admin route that wrote them and their kind.")), []string{"endpoint", "kind"})
		metrics.appLogouts = prometheus.NewCounterVec(prometheus.CounterOpts(opts("app_logout_total",
			"Proxied requests to an app_logout path, by result: revoked (the upstream answered 2xx or 3xx and every credential was revoked), failed (the store could not take the revocation; the client got 503) or not_success (the upstream answered otherwise; nothing revoked).")), []string{"result"})
		metrics.endpointErrs = prometheus.NewCounterVec(prometheus.CounterOpts(opts("endpoint_errors_total",
			"Error responses of the revocation endpoints, by dialect and error code.")), []string{"dialect", "code"})
		metrics.storeErrs = prometheus.NewCounterVec(prometheus.CounterOpts(opts("store_errors_total",
			"Failed store operations, by store and operation.")), []string{"store", "op"})
		metrics.transitions = prometheus.NewCounterVec(prometheus.CounterOpts(opts("store_transitions_total",
			"Store reachability changes, by store and the state entered (up or down).")), []string{"store", "to"})
		metrics.loads = prometheus.NewCounterVec(prometheus.CounterOpts(opts("denylist_loads_total",
			"Full loads of the local denylist from the store: one at start, more after a replica fell behind the change feed.")), []string{"store"})
		metrics.remoteApply = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "remote_apply_seconds",
			Help:    "Time from a revocation's write at another replica to its application here.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		})
		metrics.streamsOpen = prometheus.NewGauge(prometheus.GaugeOpts(opts("streams_open",
			"Proxied requests that carried a credential and are open and tracked: upgrades (WebSockets), event streams, gRPC and HTTP/2 streams, and any request open longer than half a second.")))
		metrics.streamsClosed = prometheus.NewCounterVec(prometheus.CounterOpts(opts("streams_closed_total",
			"Open streams ended by the guard, by reason: what was revoked (token, jti, session, subject, global) or expired (close_streams_at_expiry).")), []string{"reason"})
		for _, r := range streamReasons {
			metrics.streamsClosed.WithLabelValues(r)
		}
		metrics.storeGauges = storeCollector{
			entries: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "denylist_entries"),
				"Entries in the local denylist, by kind.", []string{"store", "prefix", "kind"}, nil),
			staleness: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "store_staleness_seconds"),
				"Seconds since the local denylist was last confirmed current (0 for the embedded store).", []string{"store", "prefix"}, nil),
			up: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "store_up"),
				"1 when the store is reachable and its local copy loaded.", []string{"store", "prefix"}, nil),
			loading: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "denylist_loading"),
				"1 while a full load of the local denylist runs (at start, or after falling behind the change feed).", []string{"store", "prefix"}, nil),
			loadRead: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "denylist_load_entries"),
				"Entries read so far by the full load under way (0 when none runs).", []string{"store", "prefix"}, nil),
			loadExpect: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "denylist_load_expected_entries"),
				"Upper estimate of the entries the full load under way reads (keys in the store when it began; 0 when unknown or none runs).", []string{"store", "prefix"}, nil),
			budget: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "memory_budget_bytes"),
				"The memory budget of the store's local copy and the Go runtime (memory_budget; 0: none).", []string{"store", "prefix"}, nil),
			tables: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "denylist_table_bytes"),
				"Memory the local denylist's tables hold.", []string{"store", "prefix"}, nil),
			notHeld: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "denylist_not_held_entries"),
				"Revocations the local copy lacks for want of memory (the replica is not ready while above 0).", []string{"store", "prefix"}, nil),
			loadedFrom: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "denylist_loaded_from"),
				"1 for where the local denylist's last full load read: snapshot, compact_snapshot, keys or carried (a reload kept the copy).", []string{"store", "prefix", "source"}, nil),
			compactStatic: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "compact_static_values"),
				"Fingerprints the compact denylist's static parts hold (compact_denylist).", []string{"store", "prefix"}, nil),
			compactMatches: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "compact_matches_total"),
				"Checks that matched a fingerprint of the compact denylist and asked Redis, by result: confirmed (revoked), false (another key's) or unconfirmed (no answer: blocked).", []string{"store", "prefix", "result"}, nil),
		}
		metrics.blockedByWhat = make(map[string]prometheus.Counter, len(blockReasons))
		for _, r := range blockReasons {
			metrics.blockedByWhat[r] = metrics.blocked.WithLabelValues(r)
		}
	})
}

// collectors are every metric this module exports.
func collectors() []prometheus.Collector {
	initMetrics()
	return []prometheus.Collector{
		metrics.checked, metrics.hashOnly, metrics.valuesCapped, metrics.blocked, metrics.refused, metrics.revocations, metrics.appLogouts,
		metrics.endpointErrs, metrics.storeErrs, metrics.transitions, metrics.loads,
		metrics.remoteApply, metrics.streamsOpen, metrics.streamsClosed, metrics.storeGauges,
	}
}

func registerMetrics(reg *prometheus.Registry) error {
	initMetrics()
	if reg == nil {
		return nil
	}
	for _, c := range collectors() {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// countRevocation records the entries a revocation wrote, by the dialect
// (or app_logout, or admin) that wrote them. The label that carries it is
// named endpoint, as the docs, the dashboard and users' queries name it.
func countRevocation(dialect string, entries []revocation.Entry) {
	for _, e := range entries {
		metrics.revocations.WithLabelValues(dialect, e.Kind().String()).Inc()
	}
}

// countRevocationKinds records entries a revocation wrote, counted by kind.
func countRevocationKinds(dialect string, kinds map[revocation.Kind]int) {
	for k, n := range kinds {
		metrics.revocations.WithLabelValues(dialect, k.String()).Add(float64(n))
	}
}

func countEndpointError(dialect, code string) {
	metrics.endpointErrs.WithLabelValues(dialect, code).Inc()
}

func storeHooks(settings storeSettings) revocation.Hooks {
	initMetrics()
	name, _ := storeLabel(settings)
	return revocation.Hooks{
		RemoteApplied: func(_ int, lag time.Duration) {
			metrics.remoteApply.Observe(lag.Seconds())
		},
		Error: func(op string, _ error) {
			metrics.storeErrs.WithLabelValues(name, op).Inc()
		},
		Transition: func(connected bool) {
			to := "down"
			if connected {
				to = "up"
			}
			metrics.transitions.WithLabelValues(name, to).Inc()
		},
		Reloaded: func(int, time.Duration) {
			metrics.loads.WithLabelValues(name).Inc()
		},
	}
}

// storeCollector reports per-store gauges at scrape time, for every store
// in use in this process.
type storeCollector struct {
	entries, staleness, up        *prometheus.Desc
	loading, loadRead, loadExpect *prometheus.Desc
	budget, tables, notHeld       *prometheus.Desc
	loadedFrom                    *prometheus.Desc
	compactStatic, compactMatches *prometheus.Desc
}

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.staleness
	ch <- c.up
	ch <- c.loading
	ch <- c.loadRead
	ch <- c.loadExpect
	ch <- c.budget
	ch <- c.tables
	ch <- c.notHeld
	ch <- c.loadedFrom
	ch <- c.compactStatic
	ch <- c.compactMatches
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	eachStore(func(s *sharedStore) {
		h := s.Health()
		dl := s.Denylist()
		for _, k := range revocation.Kinds {
			ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(dl.Len(k)), h.Store.String(), s.prefix, k.String())
		}
		stale := 0.0
		if h.Store.Shared() {
			if h.Confirmed.IsZero() {
				stale = -1 // never confirmed
			} else {
				stale = now.Sub(h.Confirmed).Seconds()
			}
		}
		ch <- prometheus.MustNewConstMetric(c.staleness, prometheus.GaugeValue, stale, h.Store.String(), s.prefix)
		up := 0.0
		if h.Connected && h.Loaded {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, h.Store.String(), s.prefix)
		loading, read, expect := 0.0, 0.0, 0.0
		if p := h.Load; p != nil {
			loading, read, expect = 1, float64(p.Entries), float64(p.Expected)
		}
		ch <- prometheus.MustNewConstMetric(c.loading, prometheus.GaugeValue, loading, h.Store.String(), s.prefix)
		ch <- prometheus.MustNewConstMetric(c.loadRead, prometheus.GaugeValue, read, h.Store.String(), s.prefix)
		ch <- prometheus.MustNewConstMetric(c.loadExpect, prometheus.GaugeValue, expect, h.Store.String(), s.prefix)
		var budget, notHeld float64
		if m := h.Memory; m != nil {
			budget, notHeld = float64(m.Budget), float64(m.Dropped)
		}
		ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, budget, h.Store.String(), s.prefix)
		ch <- prometheus.MustNewConstMetric(c.tables, prometheus.GaugeValue, float64(dl.Bytes()), h.Store.String(), s.prefix)
		ch <- prometheus.MustNewConstMetric(c.notHeld, prometheus.GaugeValue, notHeld, h.Store.String(), s.prefix)
		if h.LoadedFrom != "" {
			ch <- prometheus.MustNewConstMetric(c.loadedFrom, prometheus.GaugeValue, 1, h.Store.String(), s.prefix, strings.ReplaceAll(h.LoadedFrom, " ", "_"))
		}
		if dl.Compact() {
			st := dl.CompactStats()
			ch <- prometheus.MustNewConstMetric(c.compactStatic, prometheus.GaugeValue, float64(st.Static), h.Store.String(), s.prefix)
			for result, n := range map[string]int64{"confirmed": st.Confirmed, "false": st.FalseMatches, "unconfirmed": st.Unconfirmed} {
				ch <- prometheus.MustNewConstMetric(c.compactMatches, prometheus.CounterValue, float64(n), h.Store.String(), s.prefix, result)
			}
		}
	})
}
