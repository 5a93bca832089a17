package archive

import "github.com/prometheus/client_golang/prometheus"

// Operations and stages used as metric labels.
const (
	opArchive = "archive"
	opRestore = "restore"

	stageList     = "list"
	stageRecover  = "recover"
	stageRead     = "read"
	stageEncode   = "encode"
	stageUpload   = "upload"
	stageVerify   = "verify"
	stageRemove   = "remove"
	stageManifest = "manifest"
	stageHold     = "hold"
	stageRestore  = "restore"
	stageDelete   = "delete"
)

type metrics struct {
	rows, hours, parts, bytes *prometheus.CounterVec
	errors                    *prometheus.CounterVec
	lastSuccess               *prometheus.GaugeVec
	duration                  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	counter := func(name, help string, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pathstats", Subsystem: "archive", Name: name, Help: help}, []string{label})
	}
	m := &metrics{
		rows:   counter("rows_total", "Hourly rows moved out of SQL (op=archive) or back into it (op=restore).", "op"),
		hours:  counter("hours_total", "Hours archived (one or more parts committed) or restored.", "op"),
		parts:  counter("parts_total", "Parquet parts committed (op=archive) or restored (op=restore).", "op"),
		bytes:  counter("bytes_total", "Bytes of Parquet parts written (op=archive) or read back for restore (op=restore).", "op"),
		errors: counter("errors_total", "Archive errors by stage.", "stage"),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pathstats", Subsystem: "archive", Name: "last_success_timestamp_seconds",
			Help: "Unix time of the last archive run or restore that finished without error."}, []string{"op"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "pathstats", Subsystem: "archive", Name: "run_duration_seconds",
			Help: "Duration of one archive run or restore.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}, []string{"op"}),
	}
	for _, op := range []string{opArchive, opRestore} {
		m.rows.WithLabelValues(op)
		m.hours.WithLabelValues(op)
		m.parts.WithLabelValues(op)
		m.bytes.WithLabelValues(op)
	}
	for _, s := range []string{stageList, stageRecover, stageRead, stageEncode, stageUpload, stageVerify, stageRemove,
		stageManifest, stageHold, stageRestore, stageDelete} {
		m.errors.WithLabelValues(s)
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.hours, m.parts, m.bytes, m.errors, m.lastSuccess, m.duration)
	}
	return m
}
