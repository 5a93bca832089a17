package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

const (
	benchPaths   = 10_000
	historyHours = 24
)

// benchBatches returns the deltas of one flush round: benchPaths distinct
// paths in hour, cut into queue-sized batches.
func benchBatches(id string, hour int64) []*pathstats.Batch {
	ds := make([]pathstats.Delta, benchPaths)
	for i := range ds {
		ds[i].Key = pathstats.Key{Hour: hour, Path: fmt.Sprintf("/api/v1/items/%05d/detail", i), ProxyID: pathstats.DefaultProxyID}
		ds[i].Status[1] = 3
		ds[i].Status[4] = int64(i % 2)
		ds[i].Latency[i%pathstats.NumLatencyBuckets] = 3 + int64(i%2)
		ds[i].LastSeenMs = hour*1000 + int64(i)
	}
	return pathstats.SplitBatches(id, "bench", ds)
}

// openWithHistory opens a store holding historyHours hours of benchPaths rows
// before now's hour, and returns it with now's hour.
func openWithHistory(b *testing.B) (*StatsStore, int64) {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	now := pathstats.HourBucket(time.Now())
	for h := range historyHours {
		hour := now - int64(historyHours-h)*3600
		if _, err := s.Apply(ctx, benchBatches(fmt.Sprintf("history-%d", h), hour), nil); err != nil {
			b.Fatal(err)
		}
	}
	return s, now
}

// BenchmarkApply applies rounds of 10,000 deltas (10,000 distinct paths, 20
// batches of 500) to a store that already holds a day of history (24 hours x
// 10,000 paths). "new-hour" moves to the next hour each round (all inserts);
// "same-hour" applies every round to the current hour (all updates).
func BenchmarkApply(b *testing.B) {
	for _, mode := range []struct {
		name    string
		newHour bool
	}{{"new-hour", true}, {"same-hour", false}} {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			s, hour := openWithHistory(b)
			rows, i := 0, 0
			for b.Loop() {
				h := hour
				if mode.newHour {
					h += int64(i) * 3600
				}
				res, err := s.Apply(ctx, benchBatches(fmt.Sprintf("round-%d", i), h), nil)
				if err != nil {
					b.Fatal(err)
				}
				rows += res.Rows
				i++
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkReads measures the read queries over a day of history
// (24 hours x 10,000 paths).
func BenchmarkReads(b *testing.B) {
	ctx := context.Background()
	s, now := openWithHistory(b)
	from := now - historyHours*3600
	b.Run("PathTotals-24h", func(b *testing.B) {
		for b.Loop() {
			ts, err := s.PathTotals(ctx, from, now)
			if err != nil || len(ts) != benchPaths {
				b.Fatalf("path totals: %d rows, %v", len(ts), err)
			}
		}
	})
	b.Run("HourlySeries-24h", func(b *testing.B) {
		for b.Loop() {
			rs, err := s.HourlySeries(ctx, "/api/v1/items/04242/detail", from, now)
			if err != nil || len(rs) != historyHours {
				b.Fatalf("hourly series: %d rows, %v", len(rs), err)
			}
		}
	})
	b.Run("DistinctPaths-24h", func(b *testing.B) {
		for b.Loop() {
			ks, err := s.DistinctPaths(ctx, from)
			if err != nil || len(ks) != benchPaths {
				b.Fatalf("distinct paths: %d rows, %v", len(ks), err)
			}
		}
	})
}

// The read-path data set: queryPaths paths (queryProxies proxies) with a row
// in each of queryHours hours, the whole window. It is built once per
// process, by multi-row inserts straight into the hourly table and a window
// rebuild.
const (
	queryPaths   = 100_000
	queryProxies = 10
	queryHours   = 24
)

// benchNow is the clock of the read-path benchmarks.
var benchNow = time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)

var benchDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchPath is path i: half of them have an upper-case segment, so the
// window stores a folded copy for them.
func benchPath(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf("/api/v1/Svc%02d/items/%06d", i%37, i)
	}
	return fmt.Sprintf("/api/v1/svc%02d/items/%06d", i%37, i)
}

// loadHourly writes paths rows for each of hours hours from first, with
// counts that give many distinct totals and some ties.
func loadHourly(tb testing.TB, s *StatsStore, paths, hours int, first int64) {
	tb.Helper()
	ctx := context.Background()
	ds := make([]pathstats.Delta, paths)
	for h := range hours {
		hour := first + int64(h)*3600
		for i := range ds {
			c := pathstats.Counts{LastSeenMs: hour*1000 + int64(i%3_600_000)}
			c.Status[1] = 1 + int64((i*7919+h*31)%97)
			c.Status[3] = int64(i % 3)
			c.Status[4] = int64(i%11) / 10
			c.Latency[i%pathstats.NumLatencyBuckets] = c.Requests()
			ds[i] = pathstats.Delta{Key: pathstats.Key{Hour: hour, Path: benchPath(i), ProxyID: fmt.Sprintf("proxy-%d", i%queryProxies)}, Counts: c}
		}
		pathstats.SortDeltas(ds)
		tx, err := s.writer.BeginTx(ctx, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if err := upsertHourly(ctx, tx, ds, benchNow); err != nil {
			tb.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

// openLoaded opens a store on a fresh database holding paths x hours rows
// ending at benchNow's hour, with the window rebuilt.
func openLoaded(tb testing.TB, dir string, paths, hours int) *StatsStore {
	tb.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(dir, "bench.db"), Options{Now: func() time.Time { return benchNow }})
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	loadHourly(tb, s, paths, hours, pathstats.HourBucket(benchNow)-int64(hours-1)*3600)
	loaded := time.Since(start)
	start = time.Now()
	if err := s.RebuildWindow(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("loaded %d paths x %d hours in %v, window rebuilt in %v", paths, hours, loaded, time.Since(start))
	return s
}

var (
	queryStoreOnce sync.Once
	queryStore     *StatsStore
)

// sharedQueryStore returns the process-wide read-path store.
func sharedQueryStore(b *testing.B) *StatsStore {
	queryStoreOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pathstats-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = dir
		queryStore = openLoaded(b, dir, queryPaths, queryHours)
	})
	if queryStore == nil {
		b.Fatal("read-path data set failed to load")
	}
	return queryStore
}

// reportLatency reports the p50 and p99 of the timed operations.
func reportLatency(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(ds[(len(ds)*99)/100].Nanoseconds()), "p99-ns")
}

// benchMatches counts the data set's paths matching q.
func benchMatches(q pathstats.PathQuery) int {
	n := 0
	fq := strings.ToLower(q.Q)
	for i := range queryPaths {
		if (q.ProxyID == "" || q.ProxyID == fmt.Sprintf("proxy-%d", i%queryProxies)) &&
			strings.Contains(strings.ToLower(benchPath(i)), fq) {
			n++
		}
	}
	return n
}

// BenchmarkQueryPaths measures the SQL fallback over the rolling window with
// 100,000 paths x 24 hours of hourly rows (10 proxies of 10,000 paths).
func BenchmarkQueryPaths(b *testing.B) {
	s := sharedQueryStore(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name  string
		q     pathstats.PathQuery
		total int
	}{
		{"unfiltered/page1", pathstats.PathQuery{Page: 1, Limit: 50}, queryPaths},
		{"unfiltered/page500", pathstats.PathQuery{Page: 500, Limit: 50}, queryPaths},
		{"unfiltered/last-page-limit200", pathstats.PathQuery{Page: 500, Limit: 200}, queryPaths},
		{"proxyId/page1", pathstats.PathQuery{ProxyID: "proxy-3", Page: 1, Limit: 50}, queryPaths / queryProxies},
		{"proxyId/page200", pathstats.PathQuery{ProxyID: "proxy-3", Page: 200, Limit: 50}, queryPaths / queryProxies},
		{"proxyId/unknown", pathstats.PathQuery{ProxyID: "nope", Page: 1, Limit: 50}, 0},
		{"q/narrow", pathstats.PathQuery{Q: "ITEMS/0123", Page: 1, Limit: 50}, -1},
		{"q/broad", pathstats.PathQuery{Q: "svc1", Page: 1, Limit: 50}, -1},
		{"q/broad-page100", pathstats.PathQuery{Q: "svc1", Page: 100, Limit: 50}, -1},
		{"q/none", pathstats.PathQuery{Q: "no-such-path", Page: 1, Limit: 50}, 0},
		{"q/percent", pathstats.PathQuery{Q: "%", Page: 1, Limit: 50}, 0},
		{"q+proxyId", pathstats.PathQuery{Q: "svc1", ProxyID: "proxy-3", Page: 1, Limit: 50}, -1},
	} {
		if bc.total < 0 {
			bc.total = benchMatches(bc.q)
		}
		b.Run(bc.name, func(b *testing.B) {
			ds := make([]time.Duration, 0, 1024)
			for b.Loop() {
				start := time.Now()
				page, err := s.QueryPaths(ctx, bc.q)
				ds = append(ds, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if page.Total != bc.total || (bc.total > bc.q.Offset() && len(page.Items) == 0) {
					b.Fatalf("total %d, %d items; want total %d", page.Total, len(page.Items), bc.total)
				}
			}
			reportLatency(b, ds)
		})
	}
}

// BenchmarkWindowTotals reads the whole window (what the snapshotter does):
// 100,000 rows from the shared data set, and 1,000,000 rows (one hour each,
// built on first use).
func BenchmarkWindowTotals(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, s *StatsStore, want int) {
		for b.Loop() {
			items, _, err := s.WindowTotals(ctx)
			if err != nil || len(items) != want {
				b.Fatalf("window totals: %d rows, %v", len(items), err)
			}
		}
		b.ReportMetric(float64(want)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	}
	b.Run("100k", func(b *testing.B) { run(b, sharedQueryStore(b), queryPaths) })
	b.Run("1M", func(b *testing.B) {
		s := openLoaded(b, b.TempDir(), 1_000_000, 1)
		defer s.Close()
		run(b, s, 1_000_000)
	})
}

// BenchmarkAdvanceWindow moves the window by one hour per operation, each
// subtracting an hour of 100,000 rows (the data holds 12 hours, so at most
// 11 operations: run with -benchtime=Nx, N <= 11).
func BenchmarkAdvanceWindow(b *testing.B) {
	const hours = 12
	ctx := context.Background()
	s := openLoaded(b, b.TempDir(), queryPaths, hours)
	defer s.Close()
	now := benchNow.Add(-(hours - 1) * time.Hour).Add(24 * time.Hour) // window = the data
	if err := s.AdvanceWindow(ctx, now); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		if n++; n >= hours {
			b.Fatalf("only %d hours of data: use -benchtime=%dx", hours, hours-1)
		}
		if err := s.AdvanceWindow(ctx, now.Add(time.Duration(n)*time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}
