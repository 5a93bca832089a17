package readpath

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics exposes how queries were answered; reg may be nil.
func (s *Service) RegisterMetrics(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	counter := func(source string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "pathstats", Subsystem: "readpath", Name: "queries_total",
			Help: "Path queries by how they were answered.", ConstLabels: prometheus.Labels{"source": source},
		}, func() float64 { return float64(v.Load()) })
	}
	reg.MustRegister(
		counter("kv-snapshot", &s.stats.Snapshot),
		counter("d1-fallback", &s.stats.Fallback),
		counter("unavailable", &s.stats.Unavailable),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "pathstats", Subsystem: "readpath", Name: "stale_answers_total",
			Help: "Snapshot answers older than --snapshot-max-age."}, func() float64 { return float64(s.stats.Stale.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "pathstats", Subsystem: "readpath", Name: "refresh_requests_total",
			Help: "Snapshot refreshes asked for (one per stale version)."}, func() float64 { return float64(s.stats.Refreshes.Load()) }),
	)
}
