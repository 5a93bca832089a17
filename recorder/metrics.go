package recorder

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics exposes the recorder's counters as Prometheus metrics. They
// read the recorder's own atomics at scrape time, so recording pays nothing
// for them.
func (r *Recorder) RegisterMetrics(reg prometheus.Registerer) error {
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "pathstats", Subsystem: "recorder", Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "pathstats", Subsystem: "recorder", Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	s := &r.stats
	cs := []prometheus.Collector{
		counter("recorded_events_total", "Events taken from the in-memory counters into batches.", &s.Recorded),
		counter("batches_total", "Batches built by the recorder.", &s.Batches),
		counter("published_batches_total", "Batches acknowledged by the queue.", &s.Published),
		counter("published_events_total", "Events in batches acknowledged by the queue.", &s.PublishedEvents),
		counter("publish_failures_total", "Failed publish attempts (retried).", &s.PublishFailures),
		counter("dropped_events_total", "Events dropped: buffer full while the queue was down, or unpublished at shutdown.", &s.DroppedEvents),
		counter("overflow_events_total", "Events counted under /:other by the cardinality guard.", &s.OverflowEvents),
		gauge("pending_events", "Events in batches waiting for the queue (lost on kill -9).", r.PendingEvents),
		gauge("pending_batches", "Batches waiting for the queue.", r.PendingBatches),
		gauge("paths", "Distinct paths admitted by the cardinality guard.", r.Paths),
		gauge("last_flush_timestamp_ms", "Unix milliseconds of the last flush.", s.LastFlushUnixMs.Load),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
