package api

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// IngestMetrics counts ingest requests and events. A nil *IngestMetrics is
// valid and counts nothing.
type IngestMetrics struct {
	Requests *prometheus.CounterVec // by HTTP status code
	Accepted prometheus.Counter
	Rejected prometheus.Counter
}

// NewIngestMetrics creates the ingest counters and registers them with reg
// (when not nil); counters already registered there are reused.
func NewIngestMetrics(reg prometheus.Registerer) *IngestMetrics {
	m := &IngestMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pathstats", Name: "ingest_requests_total",
			Help: "Ingest requests by HTTP status code.",
		}, []string{"code"}),
		Accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "pathstats", Name: "ingest_events_total",
			Help: "Ingest events accepted and enqueued.",
		}),
		Rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "pathstats", Name: "ingest_rejected_events_total",
			Help: "Ingest events decoded but refused (invalid request or queue unavailable).",
		}),
	}
	if reg != nil {
		m.Requests = register(reg, m.Requests)
		m.Accepted = register(reg, m.Accepted)
		m.Rejected = register(reg, m.Rejected)
	}
	return m
}

// register registers c, or returns the collector already registered in its place.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic("register ingest metrics: " + err.Error())
}

func (m *IngestMetrics) request(status int, accepted, rejected int) {
	if m == nil {
		return
	}
	m.Requests.WithLabelValues(strconv.Itoa(status)).Inc()
	if accepted > 0 {
		m.Accepted.Add(float64(accepted))
	}
	if rejected > 0 {
		m.Rejected.Add(float64(rejected))
	}
}
