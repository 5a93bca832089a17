package migration

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
)

// Monitor defaults.
const (
	DefaultWindow       = 60 * time.Second
	DefaultLatencySLO   = time.Second
	DefaultMaxErrorRate = 1.0 // percent
	DefaultMinSamples   = 200
	DefaultConfidenceZ  = 2.33 // one-sided 99 %
	DefaultCheckEvery   = time.Second
	monitorBuckets      = 12
)

// MonitorOptions configure a Monitor. Zero values take the defaults.
type MonitorOptions struct {
	// Window is the sliding window, kept as 12 buckets (default 60s).
	Window time.Duration
	// LatencySLO: slower answers count as failures (default 1s).
	LatencySLO time.Duration
	// MaxErrorRate is the failure threshold in percent (default 1).
	MaxErrorRate float64
	// MinSamples is the fewest outcomes in the window to judge (default 200).
	MinSamples int
	// Z is the confidence of the trigger: the Wilson score lower bound
	// with this z of the failure proportion must exceed MaxErrorRate/100
	// (default 2.33, one-sided 99 %).
	Z float64
	// Updater changes the config on rollback (required for Check).
	Updater pathstats.ConfigUpdater
	// Actor names this node in the history (default "auto-rollback").
	Actor  string
	Logger *slog.Logger
	Now    func() time.Time
}

// Monitor watches the new path's outcomes over a sliding window and rolls
// the canary back to 0 % when they fail too often, with confidence.
type Monitor struct {
	opts      MonitorOptions
	bucketDur time.Duration
	mu        sync.Mutex
	buckets   [monitorBuckets]monitorBucket
	rollbacks atomic.Uint64
}

type monitorBucket struct {
	slot     int64 // time slot this bucket holds (unix nanos / bucketDur)
	total    int64
	failures int64
	latency  [pathstats.NumLatencyBuckets]int64
}

// NewMonitor returns a Monitor.
func NewMonitor(opts MonitorOptions) *Monitor {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.LatencySLO <= 0 {
		opts.LatencySLO = DefaultLatencySLO
	}
	if opts.MaxErrorRate <= 0 {
		opts.MaxErrorRate = DefaultMaxErrorRate
	}
	if opts.MinSamples <= 0 {
		opts.MinSamples = DefaultMinSamples
	}
	if opts.Z <= 0 {
		opts.Z = DefaultConfidenceZ
	}
	if opts.Actor == "" {
		opts.Actor = "auto-rollback"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Monitor{opts: opts, bucketDur: max(opts.Window/monitorBuckets, time.Nanosecond)}
	for i := range m.buckets {
		m.buckets[i].slot = math.MinInt64
	}
	return m
}

// Observe records one answer of the new path: ok is false for a 5xx-class
// failure; an answer slower than the latency SLO counts as a failure too.
func (m *Monitor) Observe(ok bool, latency time.Duration) {
	failed := !ok || latency > m.opts.LatencySLO
	slot := m.opts.Now().UnixNano() / int64(m.bucketDur)
	m.mu.Lock()
	defer m.mu.Unlock()
	b := &m.buckets[slotIndex(slot, monitorBuckets)]
	if b.slot != slot {
		*b = monitorBucket{slot: slot}
	}
	b.total++
	if failed {
		b.failures++
	}
	b.latency[pathstats.LatencyBucketOf(latency)]++
}

func slotIndex(a, n int64) int64 {
	r := a % n
	if r < 0 {
		r += n
	}
	return r
}

// window sums the buckets inside the sliding window.
func (m *Monitor) window() (total, failures int64, lat [pathstats.NumLatencyBuckets]int64) {
	now := m.opts.Now().UnixNano() / int64(m.bucketDur)
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.buckets {
		b := &m.buckets[i]
		if b.slot > now-monitorBuckets && b.slot <= now {
			total += b.total
			failures += b.failures
			for j, n := range b.latency {
				lat[j] += n
			}
		}
	}
	return total, failures, lat
}

// Stats returns the new path's samples, failure rate (percent) and
// estimated p99 latency (ms) over the window.
func (m *Monitor) Stats() pathstats.RouteStats {
	total, failures, lat := m.window()
	s := pathstats.RouteStats{Samples: total}
	if total > 0 {
		s.ErrorRate = 100 * float64(failures) / float64(total)
		s.P99Ms = pathstats.PercentileOf(lat[:], 0.99)
	}
	return s
}

// Rollbacks returns how many rollbacks this monitor performed.
func (m *Monitor) Rollbacks() uint64 { return m.rollbacks.Load() }

// WilsonLower is the Wilson score lower bound of a proportion of
// failures out of n at the given z (0 when n is 0).
func WilsonLower(failures, n int64, z float64) float64 {
	if n <= 0 {
		return 0
	}
	nf := float64(n)
	p := float64(failures) / nf
	z2 := z * z
	centre := p + z2/(2*nf)
	spread := z * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return math.Max(0, (centre-spread)/(1+z2/nf))
}

// triggered evaluates the window: at least MinSamples outcomes and the
// Wilson lower bound of the failure rate above MaxErrorRate.
func (m *Monitor) triggered() (bool, string) {
	total, failures, lat := m.window()
	if total < int64(m.opts.MinSamples) {
		return false, ""
	}
	lower := WilsonLower(failures, total, m.opts.Z)
	if lower <= m.opts.MaxErrorRate/100 {
		return false, ""
	}
	return true, fmt.Sprintf("new path failed %d of %d answers in %s (%.2f%%, lower bound %.2f%% > %.2f%%; p99 %.0fms, latency SLO %s)",
		failures, total, m.opts.Window, 100*float64(failures)/float64(total), 100*lower, m.opts.MaxErrorRate,
		pathstats.PercentileOf(lat[:], 0.99), m.opts.LatencySLO)
}

// Check evaluates the window and, when the new path fails too often and
// the percentage is above 0, sets it to 0 through the Updater (recorded in
// history with source "auto-rollback"), logs and counts it, and resets the
// window. It never raises the percentage: an operator must act.
func (m *Monitor) Check(ctx context.Context) (rolledBack bool, err error) {
	ok, reason := m.triggered()
	if !ok || m.opts.Updater == nil {
		return false, nil
	}
	cur := m.opts.Updater.Current()
	if cur.NewAPIPercentage <= 0 {
		return false, nil
	}
	after, err := m.opts.Updater.Update(ctx, 0, m.opts.Actor, "auto-rollback", reason, func(c *pathstats.MigrationConfig) error {
		c.NewAPIPercentage = 0
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("auto-rollback: %w", err)
	}
	m.reset()
	m.rollbacks.Add(1)
	m.opts.Logger.Warn("canary auto-rollback: new path percentage set to 0",
		"from", cur.NewAPIPercentage, "version", after.Version, "reason", reason)
	return true, nil
}

func (m *Monitor) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.buckets {
		m.buckets[i] = monitorBucket{slot: math.MinInt64}
	}
}

// Run calls Check every interval (default 1s) until ctx ends.
func (m *Monitor) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultCheckEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := m.Check(ctx); err != nil && ctx.Err() == nil {
				m.opts.Logger.Error("canary auto-rollback check", "err", err)
			}
		}
	}
}
