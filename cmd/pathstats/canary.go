package main

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/migration"
	"github.com/pathstats/pathstats/rollout"
	"github.com/prometheus/client_golang/prometheus"
)

// canary is the migration machinery: the config store, the router of
// GET /api/admin/paths, the auto-rollback monitor and the rollout driver.
type canary struct {
	store   *migration.Store
	router  *migration.Router
	monitor *migration.Monitor
	shadow  *migration.Shadow
	rollout *rollout.Driver
}

// startCanary wires the canary after the read path and the extensions (the
// legacy system sets s.oldPaths and s.legacyActive).
func (s *server) startCanary() error {
	var trusted []string
	for _, t := range strings.Split(s.cfg.TrustedProxies, ",") {
		if t = strings.TrimSpace(t); t != "" {
			trusted = append(trusted, t)
		}
	}
	ips, err := migration.NewClientIP(trusted, s.cfg.ClientIPHeader)
	if err != nil {
		return err
	}
	c := &canary{}
	c.store = migration.NewStore(s.kv, s.store, migration.StoreOptions{Logger: s.log.With("component", "migration")})
	c.monitor = migration.NewMonitor(migration.MonitorOptions{Updater: c.store, Actor: "auto-rollback@" + s.node(), Logger: s.log.With("component", "auto-rollback")})
	var old api.PathsSource = noPaths{}
	if s.oldPaths != nil {
		old = s.oldPaths
	}
	legacyOff := func() bool { return s.oldPaths == nil || s.legacyActive == nil || !s.legacyActive() }
	c.shadow = newShadow(s, old)
	c.router = migration.NewRouter(migration.RouterOptions{
		Config: c.store.Current, New: s.paths, Old: old, LegacyOff: legacyOff, ClientIP: ips, Monitor: c.monitor, Shadow: c.shadow,
	})
	c.rollout = rollout.New(rollout.Options{
		KV: s.kv, Updater: c.store, Stats: c.monitor.Stats, Accuracy: s.comparer.accuracy, Holder: s.node(), LeaseTTL: s.cfg.LeaseTTL, Logger: s.log.With("component", "rollout"),
	})
	s.canary = c
	s.reg.MustRegister(newCanaryCollector(c))
	s.wg.Add(3)
	go func() { defer s.wg.Done(); _ = c.store.Run(s.workers) }()
	go func() { defer s.wg.Done(); c.monitor.Run(s.workers, time.Second) }()
	go func() { defer s.wg.Done(); c.rollout.Run(s.workers) }()
	if s.comparer != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.comparer.runPeriodic(s.workers, func() bool { return c.store.Current().EnableComparison }, 5*time.Minute)
		}()
	}
	return nil
}

// shadowViewMaxAge is how often, at most, the legacy view of shadow
// comparison is rebuilt (one read of every actor: 0.5 s of one core at
// 100,000 paths). A minute of skew is far below the 1 % tolerance of a
// 24-hour window's counts.
const shadowViewMaxAge = time.Minute

// newShadow returns the shadow comparer of /paths: the legacy side is read
// from its materialised view, rebuilt at most once a minute (or snapshot
// interval, if longer).
func newShadow(s *server, old api.PathsSource) *migration.Shadow {
	log := s.log.With("component", "shadow")
	if _, ok := old.(migration.ViewSource); !ok && s.oldPaths != nil {
		log.Warn("the legacy source has no materialised view: shadow comparison reads it per sample")
	}
	return migration.NewShadow(migration.ShadowOptions{ViewMaxAge: max(s.cfg.SnapshotEvery, shadowViewMaxAge), Logger: log})
}

// legacyInUse says whether the migration config still sends any client to
// the legacy system (cleanup refuses then, unless forced).
func (s *server) legacyInUse() bool {
	if s.canary == nil {
		return true
	}
	cfg := s.canary.store.Current()
	return cfg.NewAPIPercentage < 100 || len(cfg.ForceOldAPIIPs) > 0
}

// canaryRoutes are the canary's admin endpoints.
func (c *canary) routes() map[string]http.Handler {
	routes := map[string]http.Handler{"GET /api/admin/paths": c.router}
	for k, h := range migration.Handlers(c.store) {
		routes[k] = h
	}
	for k, h := range rollout.Handlers(c.rollout) {
		routes[k] = h
	}
	return routes
}

// noPaths answers when no old source exists (legacy removed): never used
// because the router then sends everything to the new path.
type noPaths struct{}

func (noPaths) Paths(context.Context, pathstats.PathQuery) (api.PathsResult, error) {
	return api.PathsResult{}, pathstats.Errorf(pathstats.EGone, "the legacy system is gone")
}

// canaryCollector exposes the router's decisions, the new path's window and
// the rollbacks as Prometheus metrics, read at scrape time.
type canaryCollector struct {
	c                                      *canary
	decisions, errors, rollbacks, window   *prometheus.Desc
	errorRate, p99, percentage, cfgVersion *prometheus.Desc
	shadow, shadowReused                   *prometheus.Desc
}

func newCanaryCollector(c *canary) *canaryCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("pathstats_canary_"+name, help, labels, nil)
	}
	return &canaryCollector{
		c:          c,
		decisions:  d("decisions_total", "GET /api/admin/paths requests by target (new|old) and reason.", "target", "reason"),
		errors:     d("errors_total", "GET /api/admin/paths answers that failed, by target.", "target"),
		rollbacks:  d("auto_rollbacks_total", "Automatic rollbacks of the percentage to 0."),
		window:     d("new_path_window_samples", "New-path answers in the auto-rollback window."),
		errorRate:  d("new_path_error_rate_percent", "New-path failure rate over the window (5xx or over the latency SLO)."),
		p99:        d("new_path_p99_ms", "New-path p99 latency over the window."),
		percentage: d("new_api_percentage", "The newAPIPercentage this node routes with."),
		cfgVersion: d("config_version", "The migration config version this node holds."),
		shadow: d("shadow_comparisons_total", "Shadow comparisons of /paths answers with the other source, by result "+
			"(match, tolerated: counts within the tolerance, mismatch, skipped, failed).", "result"),
		shadowReused: d("shadow_reused_verdicts_total", "Shadow comparisons answered by a remembered verdict (same query, snapshot version and legacy view)."),
	}
}

func (cc *canaryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cc.decisions, cc.errors, cc.rollbacks, cc.window, cc.errorRate, cc.p99, cc.percentage, cc.cfgVersion, cc.shadow, cc.shadowReused} {
		ch <- d
	}
}

func (cc *canaryCollector) Collect(ch chan<- prometheus.Metric) {
	st := cc.c.router.Stats()
	for key, n := range st.ByReason {
		target, reason, _ := strings.Cut(key, "/")
		ch <- prometheus.MustNewConstMetric(cc.decisions, prometheus.CounterValue, float64(n), target, reason)
	}
	ch <- prometheus.MustNewConstMetric(cc.errors, prometheus.CounterValue, float64(st.NewErrors), "new")
	ch <- prometheus.MustNewConstMetric(cc.errors, prometheus.CounterValue, float64(st.OldErrors), "old")
	ch <- prometheus.MustNewConstMetric(cc.rollbacks, prometheus.CounterValue, float64(cc.c.monitor.Rollbacks()))
	rs := cc.c.monitor.Stats()
	ch <- prometheus.MustNewConstMetric(cc.window, prometheus.GaugeValue, float64(rs.Samples))
	ch <- prometheus.MustNewConstMetric(cc.errorRate, prometheus.GaugeValue, rs.ErrorRate)
	ch <- prometheus.MustNewConstMetric(cc.p99, prometheus.GaugeValue, rs.P99Ms)
	sh := cc.c.shadow
	for result, n := range map[string]int64{"match": sh.Matched.Load(), "tolerated": sh.Tolerated.Load(),
		"mismatch": sh.Mismatched.Load(), "skipped": sh.Skipped.Load(), "failed": sh.Failed.Load()} {
		ch <- prometheus.MustNewConstMetric(cc.shadow, prometheus.CounterValue, float64(n), result)
	}
	ch <- prometheus.MustNewConstMetric(cc.shadowReused, prometheus.CounterValue, float64(sh.Reused.Load()))
	cfg := cc.c.store.Current()
	ch <- prometheus.MustNewConstMetric(cc.percentage, prometheus.GaugeValue, cfg.NewAPIPercentage)
	ch <- prometheus.MustNewConstMetric(cc.cfgVersion, prometheus.GaugeValue, float64(cfg.Version))
}
