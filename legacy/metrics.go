package legacy

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// registerMetrics exposes the pathstats_legacy_* metrics. They read the
// system's atomics at scrape time, so Observe pays nothing for them.
func (s *System) registerMetrics() error {
	reg := s.cfg.Registerer
	if reg == nil {
		return nil
	}
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "pathstats", Subsystem: "legacy", Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "pathstats", Subsystem: "legacy", Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	cs := []prometheus.Collector{
		counter("dropped_total", "Events dropped: by a full actor mailbox (single observations) or a full dual-write feed.", s.dropped.Load),
		counter("feed_dropped_batches_total", "Accepted batches the dual write dropped because its feed was full (their events are in dropped_total).", s.feed.dropped.Load),
		counter("feed_deltas_total", "Deltas of accepted batches delivered to actors.", s.feed.delivered.Load),
		gauge("feed_queued_batches", "Accepted batches waiting for delivery to actors.", func() int64 { return s.feed.queued.Load() - s.feed.done.Load() }),
		counter("flushes_total", "Write-behind flushes committed.", s.flushes.Load),
		counter("flush_errors_total", "Write-behind flushes that failed (retried on the next flush).", s.flushErrors.Load),
		counter("wakes_total", "Actor goroutines started (first use or wake from sleep).", s.wakes.Load),
		counter("load_errors_total", "Failed reads of an actor's state from storage (retried).", s.loadErrors.Load),
		gauge("instances", "Legacy instances (stored plus not yet flushed).", s.count.Load),
		gauge("active_actors", "Actors awake, each with a goroutine and a mailbox.", s.awake.Load),
		gauge("last_flush_timestamp_ms", "Unix milliseconds of the last committed flush (a kill -9 loses increments after it).", s.lastFlushMs.Load),
		gauge("decommissioned", "1 once the legacy system is decommissioned.", func() int64 {
			if s.decom.Load() {
				return 1
			}
			return 0
		}),
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("register legacy metrics: %w", err)
		}
	}
	s.collectors = cs
	return nil
}

func (s *System) unregisterMetrics() {
	for _, c := range s.collectors {
		s.cfg.Registerer.Unregister(c)
	}
	s.collectors = nil
}
