package aggregator

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	consumed, applied, duplicates, dead, rows, events prometheus.Counter
	errors                                            *prometheus.CounterVec
	applySeconds, delay                               prometheus.Histogram
	lag                                               prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pathstats", Subsystem: "aggregator", Name: name, Help: help})
	}
	m := &metrics{
		consumed:   counter("consumed_messages_total", "Messages fetched from the queue."),
		applied:    counter("applied_batches_total", "Batches applied to SQL."),
		duplicates: counter("duplicate_batches_total", "Batches skipped because the ledger had their id."),
		dead:       counter("dead_lettered_total", "Messages that could not be decoded, stored as dead letters."),
		rows:       counter("upserted_rows_total", "Hourly rows upserted."),
		events:     counter("applied_events_total", "Events in applied batches."),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pathstats", Subsystem: "aggregator", Name: "errors_total",
			Help: "Aggregator errors by operation."}, []string{"op"}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "pathstats", Subsystem: "aggregator", Name: "apply_seconds",
			Help: "Duration of one SQL transaction.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "pathstats", Subsystem: "aggregator", Name: "batch_delay_seconds",
			Help:    "From building a batch (recorder flush or ingest) to its SQL commit; an event waits at most one flush interval more.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pathstats", Subsystem: "aggregator", Name: "consumer_lag_messages",
			Help: "Messages in the queue not yet acknowledged by the aggregator."}),
	}
	for _, op := range []string{"fetch", "apply", "ack", "term"} {
		m.errors.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.consumed, m.applied, m.duplicates, m.dead, m.rows, m.events, m.errors, m.applySeconds, m.delay, m.lag)
	}
	return m
}
