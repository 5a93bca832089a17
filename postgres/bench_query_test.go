package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats"
)

// The read-path data set: queryPaths paths (queryProxies proxies) with a row
// in each of queryHours hours, the whole window. It is built once per
// process in its own schema by COPY straight into the hourly and window
// tables, and the schema is dropped when the tests end.
const (
	queryPaths   = 100_000
	queryProxies = 10
	queryHours   = 24
)

// benchNow is the clock of the read-path benchmarks.
var benchNow = time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)

var (
	queryStoreOnce sync.Once
	queryStore     *StatsStore
	querySchema    string // dropped by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := dropQuerySchema(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// dropQuerySchema closes the shared store and drops its schema, if built.
func dropQuerySchema() error {
	if querySchema == "" {
		return nil
	}
	if queryStore != nil {
		queryStore.Close()
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv(testURLEnv))
	if err != nil {
		return fmt.Errorf("drop schema %s: %w", querySchema, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{querySchema}.Sanitize()+` CASCADE`); err != nil {
		return fmt.Errorf("drop schema %s: %w", querySchema, err)
	}
	return nil
}

// benchPath is path i: half of them have an upper-case segment, so the
// window stores a folded copy for them.
func benchPath(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf("/api/v1/Svc%02d/items/%06d", i%37, i)
	}
	return fmt.Sprintf("/api/v1/svc%02d/items/%06d", i%37, i)
}

// benchProxy is the proxy of path i.
func benchProxy(i int) string { return fmt.Sprintf("proxy-%d", i%queryProxies) }

// benchCounts are the counters of path i in hour h (0-based): many distinct
// totals and some ties.
func benchCounts(i, h int, hour int64) pathstats.Counts {
	c := pathstats.Counts{LastSeenMs: hour*1000 + int64(i%3_600_000)}
	c.Status[1] = 1 + int64((i*7919+h*31)%97)
	c.Status[3] = int64(i % 3)
	c.Status[4] = int64(i%11) / 10
	c.Latency[i%pathstats.NumLatencyBuckets] = c.Requests()
	return c
}

// loadQueryData copies paths x hours hourly rows ending at benchNow's hour
// and their window rows (the window start is Open's, before the first
// hour), then recounts the window per proxy.
func loadQueryData(ctx context.Context, s *StatsStore, paths, hours int) error {
	return loadQueryDataOf(ctx, s, paths, hours, benchCounts)
}

// loadQueryDataOf is loadQueryData with the counters of path i in hour h
// from counts.
func loadQueryDataOf(ctx context.Context, s *StatsStore, paths, hours int, counts func(i, h int, hour int64) pathstats.Counts) error {
	first := pathstats.HourBucket(benchNow) - int64(hours-1)*3600
	sums := make([][numSums]int64, paths)
	lastSeen := make([]int64, paths)
	updated := benchNow.Unix()
	hourlyCols := append([]string{"hour_bucket", "path", "proxy_id"}, sumColumns...)
	hourlyCols = append(hourlyCols, "last_seen_ms", "updated_at")
	h, i := 0, 0
	row := make([]any, 0, len(hourlyCols))
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"path_stats_hourly"}, hourlyCols, pgx.CopyFromFunc(func() ([]any, error) {
		if i == paths {
			h, i = h+1, 0
		}
		if h == hours {
			return nil, nil
		}
		hour := first + int64(h)*3600
		c := counts(i, h, hour)
		v := counterValues(&c)
		row = append(row[:0], hour, benchPath(i), benchProxy(i))
		for k := range v {
			row = append(row, v[k])
			sums[i][k] += v[k]
		}
		row = append(row, c.LastSeenMs, updated)
		lastSeen[i] = max(lastSeen[i], c.LastSeenMs)
		i++
		return row, nil
	}))
	if err != nil {
		return fmt.Errorf("copy hourly: %w", err)
	}
	windowCols := append([]string{"path", "proxy_id", "path_fold"}, sumColumns...)
	windowCols = append(windowCols, "last_seen_ms")
	i = 0
	copyWindowRow := func() ([]any, error) {
		if i == paths {
			return nil, nil
		}
		p := benchPath(i)
		var fold any // NULL when folding leaves the path unchanged
		if f := foldPath(p); f != p {
			fold = f
		}
		row = append(row[:0], p, benchProxy(i), fold)
		for k := range sums[i] {
			row = append(row, sums[i][k])
		}
		row = append(row, lastSeen[i])
		i++
		return row, nil
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT `+markWindowWriter); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"path_stats_window"}, windowCols, pgx.CopyFromFunc(copyWindowRow))
		return err
	})
	if err != nil {
		return fmt.Errorf("copy window: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := recount(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `ANALYZE path_stats_window; ANALYZE window_ranks; ANALYZE window_proxy_ranks`)
		return err
	})
	if err != nil {
		return err
	}
	return settle(ctx, s, pathstats.HourBucket(benchNow))
}

// settle puts the copied tables in the state of a live store: the closed
// hours' rows are vacuumed (autovacuum's insert threshold does that in a
// live store, and marks their pages all-visible), the open hour's rows were
// just updated (their pages are not), and the window, updated by every
// Apply, is not vacuumed at all (autovacuum stays off it, so its pages stay
// not all-visible: the read path's worst case).
func settle(ctx context.Context, s *StatsStore, openHour int64) error {
	if _, err := s.pool.Exec(ctx, `ALTER TABLE path_stats_window SET (autovacuum_enabled = false)`); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `VACUUM (ANALYZE) path_stats_hourly`); err != nil {
		return fmt.Errorf("settle: vacuum: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE path_stats_hourly SET updated_at = updated_at + 1 WHERE hour_bucket = $1`, openHour); err != nil {
		return fmt.Errorf("settle: open hour: %w", err)
	}
	return nil
}

// sharedQueryStore returns the process-wide read-path store.
func sharedQueryStore(b *testing.B) *StatsStore {
	queryStoreOnce.Do(func() {
		url := testURL(b)
		var r [8]byte
		if _, err := rand.Read(r[:]); err != nil {
			b.Fatal(err)
		}
		querySchema = "pathstats_bench_" + hex.EncodeToString(r[:])
		ctx := context.Background()
		s, err := Open(ctx, url, Options{Now: func() time.Time { return benchNow }, Schema: querySchema})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := loadQueryData(ctx, s, queryPaths, queryHours); err != nil {
			s.Close()
			b.Fatal(err)
		}
		b.Logf("loaded %d paths x %d hours in %v", queryPaths, queryHours, time.Since(start))
		queryStore = s
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
		if (q.ProxyID == "" || q.ProxyID == benchProxy(i)) &&
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
		{"unfiltered/middle-page", pathstats.PathQuery{Page: 1000, Limit: 50}, queryPaths},
		{"unfiltered/last-page-limit200", pathstats.PathQuery{Page: 500, Limit: 200}, queryPaths},
		{"proxyId/page1", pathstats.PathQuery{ProxyID: "proxy-3", Page: 1, Limit: 50}, queryPaths / queryProxies},
		{"proxyId/page100", pathstats.PathQuery{ProxyID: "proxy-3", Page: 100, Limit: 50}, queryPaths / queryProxies},
		{"proxyId/page200", pathstats.PathQuery{ProxyID: "proxy-3", Page: 200, Limit: 50}, queryPaths / queryProxies},
		{"proxyId/unknown", pathstats.PathQuery{ProxyID: "nope", Page: 1, Limit: 50}, 0},
		{"q/narrow", pathstats.PathQuery{Q: "ITEMS/0123", Page: 1, Limit: 50}, -1},
		{"q/broad", pathstats.PathQuery{Q: "svc1", Page: 1, Limit: 50}, -1},
		{"q/broad-page100", pathstats.PathQuery{Q: "svc1", Page: 100, Limit: 50}, -1},
		{"q/broad-last-page", pathstats.PathQuery{Q: "svc1", Page: 541, Limit: 50}, -1},
		{"q/none", pathstats.PathQuery{Q: "no-such-path", Page: 1, Limit: 50}, 0},
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
				if err := checkPage(page, bc.q, bc.total); err != nil {
					b.Fatal(err)
				}
			}
			reportLatency(b, ds)
		})
	}
}

// checkPage checks a page of q has the total, as many items as the page
// holds, in ComparePathItems order.
func checkPage(page pathstats.PathPage, q pathstats.PathQuery, total int) error {
	want := max(0, min(q.Limit, total-q.Offset()))
	if page.Total != total || len(page.Items) != want {
		return fmt.Errorf("total %d, %d items; want total %d, %d items", page.Total, len(page.Items), total, want)
	}
	for i := 1; i < len(page.Items); i++ {
		if pathstats.ComparePathItems(&page.Items[i-1], &page.Items[i]) >= 0 {
			return fmt.Errorf("items %d and %d out of order", i-1, i)
		}
	}
	return nil
}

// BenchmarkEachPathHourly100k walks the shared data set: 100,000 paths x 24
// hours.
func BenchmarkEachPathHourly100k(b *testing.B) {
	s := sharedQueryStore(b)
	ctx := context.Background()
	from := pathstats.HourBucket(benchNow) - (queryHours-1)*3600
	for b.Loop() {
		paths := 0
		err := s.EachPathHourly(ctx, from, func(_ string, _ int64, hs [][3]int64) error {
			if len(hs) != queryHours {
				return fmt.Errorf("%d hours, want %d", len(hs), queryHours)
			}
			paths++
			return nil
		})
		if err != nil || paths != queryPaths {
			b.Fatalf("each path hourly: %d paths, %v", paths, err)
		}
	}
	b.ReportMetric(float64(queryPaths)*float64(b.N)/b.Elapsed().Seconds(), "paths/s")
}

// TestQueryDataConsistent checks the copied window (a small data set) equals
// the window rebuilt from its hourly rows, counts included.
func TestQueryDataConsistent(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, testURL(t), func() time.Time { return benchNow })
	t.Cleanup(func() { s.Close() })
	if err := loadQueryData(ctx, s, 1000, queryHours); err != nil {
		t.Fatal(err)
	}
	read := func() ([]pathstats.PathItem, int64, string) {
		items, start, err := s.WindowTotals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.pool.Query(ctx, `SELECT proxy_id, paths, (SELECT COUNT(*) FROM path_stats_window WHERE path_fold IS NOT NULL)
			FROM (SELECT proxy_id, SUM(paths) AS paths FROM window_proxy_ranks GROUP BY proxy_id) AS counts ORDER BY proxy_id`)
		if err != nil {
			t.Fatal(err)
		}
		var counts strings.Builder
		var proxy string
		var paths, folded int64
		if _, err := pgx.ForEachRow(rows, []any{&proxy, &paths, &folded}, func() error {
			fmt.Fprintf(&counts, "%s=%d/%d ", proxy, paths, folded)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return items, start, counts.String()
	}
	copied, copiedStart, copiedCounts := read()
	if len(copied) != 1000 || copiedStart != WindowStart(benchNow) {
		t.Fatalf("copied window: %d rows from %d", len(copied), copiedStart)
	}
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT `+markWindowWriter); err != nil {
			return err
		}
		return rebuildWindow(ctx, tx, copiedStart)
	}); err != nil {
		t.Fatal(err)
	}
	rebuilt, _, rebuiltCounts := read()
	if fmt.Sprint(copied) != fmt.Sprint(rebuilt) || copiedCounts != rebuiltCounts {
		t.Fatalf("copied window differs from the rebuilt one:\n%v\n%v", copiedCounts, rebuiltCounts)
	}
}

// BenchmarkQueryPathsTie measures the pages of a window where 60,000 of the
// 100,000 paths tie (one request in each of the 24 hours): a page inside
// the tie starts at the tie's edge (one bucket) and skips rows within it.
// The middle of the tie (row 70,000) is the deepest page of this data set.
func BenchmarkQueryPathsTie(b *testing.B) {
	ctx := context.Background()
	url := testURL(b)
	s, err := Open(ctx, url, Options{Now: func() time.Time { return benchNow }, Schema: freshSchema(b, url)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	tied := func(i, h int, hour int64) pathstats.Counts {
		if i%5 >= 3 {
			return benchCounts(i, h, hour)
		}
		c := pathstats.Counts{LastSeenMs: hour * 1000}
		c.Status[1] = 1
		return c
	}
	if err := loadQueryDataOf(ctx, s, queryPaths, queryHours, tied); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		q    pathstats.PathQuery
	}{
		{"middle-page", pathstats.PathQuery{Page: 1000, Limit: 50}},
		{"tie-middle-page", pathstats.PathQuery{Page: 1401, Limit: 50}},
		{"proxyId/all-tied-middle-page", pathstats.PathQuery{ProxyID: "proxy-1", Page: 101, Limit: 50}},
	} {
		total := queryPaths
		if bc.q.ProxyID != "" {
			total = queryPaths / queryProxies
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
				if err := checkPage(page, bc.q, total); err != nil {
					b.Fatal(err)
				}
			}
			reportLatency(b, ds)
		})
	}
}
