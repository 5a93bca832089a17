package recorder

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// benchPaths are 10,000 distinct raw paths, a third with ids inside.
func benchPaths() []string {
	paths := make([]string, 10_000)
	for i := range paths {
		switch i % 3 {
		case 0:
			paths[i] = fmt.Sprintf("/api/v1/resource%d/items", i)
		case 1:
			paths[i] = fmt.Sprintf("/api/v1/users%d/%d", i, 1000+i)
		default:
			paths[i] = fmt.Sprintf("/static/page%d.html", i)
		}
	}
	return paths
}

// BenchmarkRecord records one event for a known path (normalise, look up,
// status class, latency bucket, hour); compare with
// BenchmarkPrometheusCounterVec in the same run.
func BenchmarkRecord(b *testing.B) {
	r := New(Config{Logger: quiet}, &memPublisher{})
	paths := benchPaths()
	now := time.Now()
	for _, p := range paths {
		r.Record("default", p, 200, time.Millisecond, now)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			r.Record("default", paths[i%len(paths)], 200+(i&3)*100, time.Duration(i&63)*time.Millisecond, now)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(7919))
			for pb.Next() {
				r.Record("default", paths[i%len(paths)], 200+(i&3)*100, time.Duration(i&63)*time.Millisecond, now)
				i++
			}
		})
	})
}

// BenchmarkPrometheusCounterVec is the reference the recording cost is held
// against: one CounterVec.WithLabelValues(path, class).Inc().
func BenchmarkPrometheusCounterVec(b *testing.B) {
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"path", "class"})
	paths := benchPaths()
	classes := []string{"2xx", "3xx", "4xx", "5xx"}
	for _, p := range paths {
		for _, c := range classes {
			cv.WithLabelValues(p, c).Inc()
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			cv.WithLabelValues(paths[i%len(paths)], classes[i&3]).Inc()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(7919))
			for pb.Next() {
				cv.WithLabelValues(paths[i%len(paths)], classes[i&3]).Inc()
				i++
			}
		})
	})
}
