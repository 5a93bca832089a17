package snapshot

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Build results, the label of builds_total.
const (
	resultOK    = "ok"
	resultBusy  = "busy"
	resultError = "error"
)

type metrics struct {
	builds                *prometheus.CounterVec
	seconds               prometheus.Histogram
	paths, bytes, version prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pathstats", Subsystem: "snapshot", Name: name, Help: help})
	}
	m := &metrics{
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pathstats", Subsystem: "snapshot", Name: "builds_total",
			Help: "Snapshot builds by result: ok, busy (another node holds the lease), error."}, []string{"result"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "pathstats", Subsystem: "snapshot", Name: "build_seconds",
			Help: "Duration of a published build, SQL read to old-version cleanup.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		paths:   gauge("paths", "Paths in the last published snapshot."),
		bytes:   gauge("bytes", "Compressed size of the last published snapshot."),
		version: gauge("version", "Version of the last published snapshot."),
	}
	for _, r := range []string{resultOK, resultBusy, resultError} {
		m.builds.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.builds, m.seconds, m.paths, m.bytes, m.version)
	}
	return m
}

// observe counts a build; cfg is set when a version was published (even if
// a later step such as cleanup failed).
func (m *metrics) observe(result string, d time.Duration, cfg Config) {
	m.builds.WithLabelValues(result).Inc()
	if result == resultOK {
		m.seconds.Observe(d.Seconds())
	}
	if cfg.Version == 0 { // nothing published
		return
	}
	m.paths.Set(float64(cfg.PathCount))
	m.bytes.Set(float64(cfg.Bytes))
	m.version.Set(float64(cfg.Version))
}
