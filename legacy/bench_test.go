package legacy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// benchSys opens a system for benchmarks with the default mailbox and flush
// interval, and actors that stay awake for the whole run.
func benchSys(b *testing.B, dir string) *System {
	b.Helper()
	s, err := Open(context.Background(), Config{Dir: dir, IdleTimeout: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func benchPaths(n int) []string {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("/api/v1/resource-%d/items/:id", i)
	}
	return paths
}

// BenchmarkObserve is the dual-write cost on the request path: an existing,
// awake actor, one path or 10,000 paths in rotation, serial and parallel.
// dropped/op reports increments the actors could not take in time.
func BenchmarkObserve(b *testing.B) {
	s := benchSys(b, b.TempDir())
	paths := benchPaths(10_000)
	now := time.Now()
	for _, p := range paths {
		s.Observe("default", p, 200, time.Millisecond, now)
	}
	run := func(b *testing.B, f func(b *testing.B)) {
		drop := s.dropped.Load()
		b.ReportAllocs()
		f(b)
		b.ReportMetric(float64(s.dropped.Load()-drop)/float64(b.N), "dropped/op")
		if a := s.awake.Load(); a != int64(len(paths)) {
			b.Fatalf("awake actors %d, want %d", a, len(paths))
		}
	}
	b.Run("serial/1-path", func(b *testing.B) {
		run(b, func(b *testing.B) {
			for b.Loop() {
				s.Observe("default", paths[0], 200, time.Millisecond, now)
			}
		})
	})
	b.Run("serial/10k-paths", func(b *testing.B) {
		run(b, func(b *testing.B) {
			i := 0
			for b.Loop() {
				s.Observe("default", paths[i], 200, time.Millisecond, now)
				if i++; i == len(paths) {
					i = 0
				}
			}
		})
	})
	b.Run("parallel/10k-paths", func(b *testing.B) {
		var seq atomic.Int64
		run(b, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(1)) * 7919 % len(paths)
				for pb.Next() {
					s.Observe("default", paths[i], 503, time.Millisecond, now)
					if i++; i == len(paths) {
						i = 0
					}
				}
			})
		})
	})
}

// seedStore writes n instances with hours of traffic straight to storage.
func seedStore(b *testing.B, dir string, n, hours int) {
	b.Helper()
	ctx := context.Background()
	st, err := openStore(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	now := time.Now()
	paths := benchPaths(n)
	batch := make([]snapshot, 0, 10_000)
	for i, p := range paths {
		sn := snapshot{name: Name(p), path: p, state: state{proxyID: "default", lastAccessed: now.UnixMilli()}}
		for h := range hours {
			hc := hourCount{hour: pathstats.HourBucket(now.Add(-time.Duration(hours-1-h) * time.Hour)), requests: int64(1 + (i+h)%100), errors: int64(h % 2)}
			sn.hourly = append(sn.hourly, hc)
			sn.requests += hc.requests
			sn.errors += hc.errors
		}
		if batch = append(batch, sn); len(batch) == cap(batch) || i == n-1 {
			if err := st.write(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkExport streams 100,000 stored instances (3 hours each) as JSON
// and NDJSON; instances/s is the rate. After the timed runs, one more export
// measures the live heap (after a GC) every 10 pages: live-heap-KB is its
// largest growth over the heap before the export (flat = constant memory).
func BenchmarkExport(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	seedStore(b, dir, n, 3)
	s := benchSys(b, dir)
	for _, format := range []string{FormatJSON, FormatNDJSON} {
		b.Run(format, func(b *testing.B) {
			check := func(done, total int) {
				if total != n {
					b.Fatalf("total %d, want %d", total, n)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Export(context.Background(), io.Discard, format, check); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "instances/s")
			b.StopTimer()
			b.ReportMetric(exportHeapGrowth(b, s, format)/(1<<10), "live-heap-KB")
		})
	}
}

// exportHeapGrowth exports once and returns the largest live heap growth
// seen between pages.
func exportHeapGrowth(b *testing.B, s *System, format string) float64 {
	var ms runtime.MemStats
	live := func() int64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	base, peak := live(), int64(0)
	pages := 0
	progress := func(done, total int) {
		if pages++; pages%10 == 0 {
			peak = max(peak, live()-base)
		}
	}
	if err := s.Export(context.Background(), io.Discard, format, progress); err != nil {
		b.Fatal(err)
	}
	return float64(peak)
}

// BenchmarkFanOutPaths is the legacy /paths read (page 1, no filter) over
// 10,000 and 100,000 instances: "awake" actors each answer through their
// mailbox (the live system), "asleep" ones are answered from memory under
// their lock; cold-ms is the first read after a restart, which loads every
// state from storage. p50/p99 are over the benchmark's calls.
func BenchmarkFanOutPaths(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("awake/%dk", n/1000), func(b *testing.B) {
			s := benchSys(b, b.TempDir())
			now := time.Now()
			for i, p := range benchPaths(n) {
				for j := range 1 + i%3 {
					s.Observe("default", p, 200+100*(j%4), 0, now.Add(-time.Duration(j)*time.Hour))
				}
			}
			if a := s.awake.Load(); a != int64(n) {
				b.Fatalf("awake %d, want %d", a, n)
			}
			fanOutBench(b, s, n)
		})
		b.Run(fmt.Sprintf("asleep/%dk", n/1000), func(b *testing.B) {
			dir := b.TempDir()
			seedStore(b, dir, n, 3)
			s := benchSys(b, dir)
			start := time.Now()
			readPage(b, s, n)
			cold := time.Since(start)
			fanOutBench(b, s, n)
			b.ReportMetric(float64(cold.Microseconds())/1000, "cold-ms")
		})
	}
}

func fanOutBench(b *testing.B, s *System, n int) {
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		readPage(b, s, n)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	ms := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}

func readPage(b *testing.B, s *System, n int) {
	page, err := s.Paths(context.Background(), pathstats.PathQuery{Page: 1, Limit: 50})
	if err != nil || page.Total != n || len(page.Items) != 50 {
		b.Fatalf("paths: total %d items %d err %v", page.Total, len(page.Items), err)
	}
}
