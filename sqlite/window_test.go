package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// testNow is the fixed clock of these tests; the window starts at
// testNow's hour minus 24 hours.
var testNow = time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)

// fixedClock is a settable clock.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// randomBatch returns n valid deltas over paths in hours [from, to).
func randomBatch(rng *rand.Rand, id string, n, paths int, from, to int64) *pathstats.Batch {
	b := &pathstats.Batch{ID: id}
	for range n {
		hour := from + rng.Int64N((to-from)/3600)*3600
		var c pathstats.Counts
		k := 1 + rng.Int64N(4)
		c.Status[rng.IntN(pathstats.NumStatusClasses)] = k
		c.Latency[rng.IntN(pathstats.NumLatencyBuckets)] = k
		c.LastSeenMs = hour*1000 + rng.Int64N(3_600_000)
		p := rng.IntN(paths)
		b.Deltas = append(b.Deltas, pathstats.Delta{
			Key:    pathstats.Key{Hour: hour, Path: fmt.Sprintf("/r/%d/Ä", p), ProxyID: fmt.Sprintf("p%d", p%3)},
			Counts: c,
		})
	}
	return b
}

func windowItems(t *testing.T, s *StatsStore) ([]pathstats.PathItem, int64) {
	t.Helper()
	items, start, err := s.WindowTotals(context.Background())
	if err != nil {
		t.Fatalf("window totals: %v", err)
	}
	return items, start
}

// TestWindowMatchesRebuild applies random batches while the clock moves
// hour by hour (and once by more than rebuildAfter hours); after each step
// the incrementally kept window must equal one rebuilt from the hourly rows.
func TestWindowMatchesRebuild(t *testing.T) {
	ctx := context.Background()
	clk := &fixedClock{t: testNow}
	s := mustOpen(t, filepath.Join(t.TempDir(), "pathstats.db"), Options{Now: clk.Now})
	defer s.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	now := testNow
	for step := range 8 {
		now = now.Add(time.Hour)
		if step == 5 {
			now = now.Add(time.Duration(rebuildAfter+2) * time.Hour)
		}
		clk.Set(now)
		cur := pathstats.HourBucket(now)
		b := randomBatch(rng, fmt.Sprintf("step-%d", step), 250, 100, cur-30*3600, cur+2*3600)
		if _, err := s.Apply(ctx, []*pathstats.Batch{b}, nil); err != nil {
			t.Fatal(err)
		}
		got, start := windowItems(t, s)
		if start != WindowStart(now) {
			t.Fatalf("step %d: window start %d, want %d", step, start, WindowStart(now))
		}
		checkCounts(t, s)
		if err := s.RebuildWindow(ctx); err != nil {
			t.Fatal(err)
		}
		want, start2 := windowItems(t, s)
		checkCounts(t, s)
		if start2 != start || !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: incremental window (%d rows) differs from rebuilt (%d rows)", step, len(got), len(want))
		}
		if len(got) == 0 {
			t.Fatalf("step %d: empty window", step)
		}
	}
}

// checkCounts compares window_counts with a count of the window's rows.
func checkCounts(t *testing.T, s *StatsStore) {
	t.Helper()
	read := func(q string) map[string]int {
		rows, err := s.reader.QueryContext(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var p string
			var n int
			if err := rows.Scan(&p, &n); err != nil {
				t.Fatal(err)
			}
			out[p] = n
		}
		return out
	}
	kept := read(`SELECT proxy_id, paths FROM window_counts`)
	counted := read(`SELECT proxy_id, COUNT(*) FROM path_stats_window GROUP BY proxy_id`)
	if !reflect.DeepEqual(kept, counted) {
		t.Errorf("window_counts %v, want %v", kept, counted)
	}
}

// TestWindowBuiltOnOpen opens a database whose window tables are missing
// (as after the upgrade from the first schema) and one reopened an hour
// later: Open builds, then advances, the window.
func TestWindowBuiltOnOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pathstats.db")
	clk := &fixedClock{t: testNow}
	s := mustOpen(t, path, Options{Now: clk.Now})
	rng := rand.New(rand.NewPCG(1, 1))
	cur := pathstats.HourBucket(testNow)
	if _, err := s.Apply(ctx, []*pathstats.Batch{randomBatch(rng, "b", 500, 100, cur-26*3600, cur+3600)}, nil); err != nil {
		t.Fatal(err)
	}
	want, _ := windowItems(t, s)
	for _, q := range []string{`DROP TABLE path_stats_window`, `DROP TABLE window_state`, `DROP TABLE window_counts`, `DROP TABLE path_configs`,
		`DELETE FROM schema_migrations WHERE version > 1`} {
		if _, err := s.writer.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, path, Options{Now: clk.Now})
	got, start := windowItems(t, s)
	if start != WindowStart(testNow) || !reflect.DeepEqual(got, want) {
		t.Errorf("window built on open: start %d, %d rows; want %d, %d rows", start, len(got), WindowStart(testNow), len(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	later := testNow.Add(time.Hour)
	s = mustOpen(t, path, Options{Now: func() time.Time { return later }})
	defer s.Close()
	var n int
	if err := s.reader.QueryRowContext(ctx, `SELECT start_hour FROM window_state`).Scan(&n); err != nil || int64(n) != WindowStart(later) {
		t.Errorf("reopened an hour later: start_hour %d, %v; want %d", n, err, WindowStart(later))
	}
	got, _ = windowItems(t, s)
	if err := s.RebuildWindow(ctx); err != nil {
		t.Fatal(err)
	}
	if want, _ := windowItems(t, s); !reflect.DeepEqual(got, want) || len(got) == 0 {
		t.Errorf("window advanced on open (%d rows) differs from rebuilt (%d rows)", len(got), len(want))
	}
}

// TestConcurrentReadsAcrossHour reads from many goroutines while the clock
// moves into the next hour and Apply runs: every read sees the window of
// one start, and all agree with the hourly rows afterwards.
func TestConcurrentReadsAcrossHour(t *testing.T) {
	ctx := context.Background()
	clk := &fixedClock{t: testNow}
	s := mustOpen(t, filepath.Join(t.TempDir(), "pathstats.db"), Options{Now: clk.Now})
	defer s.Close()
	rng := rand.New(rand.NewPCG(2, 2))
	cur := pathstats.HourBucket(testNow)
	if _, err := s.Apply(ctx, []*pathstats.Batch{randomBatch(rng, "seed", 2000, 300, cur-24*3600, cur+3600)}, nil); err != nil {
		t.Fatal(err)
	}
	clk.Set(testNow.Add(time.Hour))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for range 5 {
				page, err := s.QueryPaths(ctx, pathstats.PathQuery{ProxyID: fmt.Sprintf("p%d", w%3), Page: 1, Limit: 20})
				if err != nil {
					t.Errorf("query paths: %v", err)
					return
				}
				if page.Total == 0 || len(page.Items) != 20 {
					t.Errorf("query paths: total %d, %d items", page.Total, len(page.Items))
				}
			}
		})
	}
	wg.Go(func() {
		b := randomBatch(rand.New(rand.NewPCG(3, 3)), "during", 500, 300, cur-23*3600, cur+2*3600)
		if _, err := s.Apply(ctx, []*pathstats.Batch{b}, nil); err != nil {
			t.Errorf("apply: %v", err)
		}
	})
	wg.Wait()
	got, start := windowItems(t, s)
	if start != WindowStart(testNow.Add(time.Hour)) {
		t.Errorf("window start %d, want %d", start, WindowStart(testNow.Add(time.Hour)))
	}
	if err := s.RebuildWindow(ctx); err != nil {
		t.Fatal(err)
	}
	if want, _ := windowItems(t, s); !reflect.DeepEqual(got, want) {
		t.Errorf("window after concurrent reads differs from rebuilt")
	}
}

// queryPlan returns the EXPLAIN QUERY PLAN lines of q.
func queryPlan(t *testing.T, s *StatsStore, q string, args ...any) string {
	t.Helper()
	rows, err := s.writer.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}

// TestQueryPlans checks every read-path query reads an index (never the
// whole table in the wrong order), and the window upkeep drives from the
// leaving hour, on an empty store and on one with data.
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	clk := &fixedClock{t: testNow}
	s := mustOpen(t, filepath.Join(t.TempDir(), "pathstats.db"), Options{Now: clk.Now})
	defer s.Close()
	t.Run("empty", func(t *testing.T) { checkPlans(t, s) })
	cur := pathstats.HourBucket(testNow)
	b := randomBatch(rand.New(rand.NewPCG(4, 4)), "plan", 3000, 1000, cur-24*3600, cur+3600)
	if _, err := s.Apply(ctx, []*pathstats.Batch{b}, nil); err != nil {
		t.Fatal(err)
	}
	t.Run("data", func(t *testing.T) { checkPlans(t, s) })
}

func checkPlans(t *testing.T, s *StatsStore) {
	cur := pathstats.HourBucket(testNow)
	for _, tc := range []struct {
		name  string
		pq    pageQuery
		args  []any
		index string
	}{
		{"unfiltered", queryAll, nil, "path_stats_window_top"},
		{"q", queryQ, []any{"x"}, "path_stats_window_top"},
		{"proxyId", queryProxy, []any{"p1"}, "path_stats_window_proxy"},
		{"proxyId and q", queryProxyAndQ, []any{"p1", "x"}, "path_stats_window_proxy"},
	} {
		count := queryPlan(t, s, tc.pq.count, tc.args...)
		if !strings.Contains(count, "USING COVERING INDEX") && !strings.Contains(count, "window_counts") {
			t.Errorf("%s: count reads neither window_counts nor an index only:\n%s", tc.name, count)
		}
		for _, q := range []string{tc.pq.page, tc.pq.pageBack} {
			page := queryPlan(t, s, q, append(tc.args, 10, 20)...)
			want := []string{"USING COVERING INDEX " + tc.index, "SCAN k", "SEARCH w USING PRIMARY KEY (path=? AND proxy_id=?)"}
			for _, w := range want {
				if !strings.Contains(page, w) {
					t.Errorf("%s: page plan lacks %q:\n%s", tc.name, w, page)
				}
			}
			if strings.Count(page, "TEMP B-TREE") > 1 {
				t.Errorf("%s: page plan sorts more than the page:\n%s", tc.name, page)
			}
		}
	}
	if p := queryPlan(t, s, windowAllSQL); p != "SCAN path_stats_window" {
		t.Errorf("window totals do not scan the table alone:\n%s", p)
	}
	sub := queryPlan(t, s, subtractHourSQL, cur)
	if !strings.Contains(sub, "SEARCH h USING PRIMARY KEY (hour_bucket=?)") ||
		!strings.Contains(sub, "SEARCH w USING PRIMARY KEY (path=? AND proxy_id=?)") ||
		strings.Index(sub, "SEARCH h") > strings.Index(sub, "SEARCH w") {
		t.Errorf("subtracting an hour does not drive from that hour's rows:\n%s", sub)
	}
	if p := queryPlan(t, s, deleteEmptySQL); !strings.Contains(p, "USING INDEX path_stats_window_top (requests<?)") {
		t.Errorf("deleting empty rows scans:\n%s", p)
	}
}

func TestPageArgs(t *testing.T) {
	pq := pageQuery{page: "fwd", pageBack: "back"}
	for _, tc := range []struct {
		offset, limit, total int
		query                string
		wantLimit, wantOff   int
	}{
		{0, 10, 100, "fwd", 10, 0},
		{40, 10, 100, "fwd", 10, 40},
		{45, 10, 100, "fwd", 10, 45},
		{46, 10, 100, "back", 10, 44},
		{90, 10, 100, "back", 10, 0},
		{95, 10, 100, "back", 5, 0},
		{3, 5, 7, "back", 4, 0},
		{0, 50, 7, "fwd", 50, 0},
	} {
		q, l, o := pageArgs(pq, tc.offset, tc.limit, tc.total)
		if q != tc.query || l != tc.wantLimit || o != tc.wantOff {
			t.Errorf("pageArgs(%d, %d, %d) = %s %d %d; want %s %d %d", tc.offset, tc.limit, tc.total, q, l, o, tc.query, tc.wantLimit, tc.wantOff)
		}
	}
}

func TestUnpackCounters(t *testing.T) {
	var it pathstats.PathItem
	good := "1,2,3,4,5,0,0,0,0,0,0,0,0,0,0,0,0,0,9223372036854775807,1767225600123"
	if err := unpackCounters([]byte(good), &it); err != nil {
		t.Fatal(err)
	}
	if it.Status != [5]int64{1, 2, 3, 4, 5} || it.Latency[13] != 9223372036854775807 || it.LastAccessedMs != 1767225600123 {
		t.Errorf("unpacked %+v", it)
	}
	if err := unpackCounters([]byte("-1"+good[1:]), &it); err != nil || it.Status[0] != -1 {
		t.Errorf("negative: %v %d", err, it.Status[0])
	}
	for _, bad := range []string{"", "1", good + ",1", good[:len(good)-1] + ",", "1,,2", "a" + good[1:], "--1" + good[1:],
		"1-" + good[1:], "99999999999999999999" + good[1:]} {
		if err := unpackCounters([]byte(bad), &it); err == nil {
			t.Errorf("unpack %q: no error", bad)
		}
	}
}
