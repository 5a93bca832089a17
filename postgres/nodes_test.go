package postgres

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// openSchema opens a store on an existing schema (another node).
func openSchema(t *testing.T, url, schema string, now func() time.Time) *StatsStore {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Now: now, Schema: schema})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMigrationsConcurrentOpen opens one schema from several nodes at once,
// then again: every migration is recorded once and the tables exist.
func TestMigrationsConcurrentOpen(t *testing.T) {
	url := testURL(t)
	schema := freshSchema(t, url)
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("migrations: %v (%d)", err, len(ms))
	}
	var wg sync.WaitGroup
	stores := make([]*StatsStore, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = Open(context.Background(), url, Options{Schema: schema})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	s := openSchema(t, url, schema, nil)
	ctx := context.Background()
	var n, maxV int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || maxV != ms[len(ms)-1].version {
		t.Errorf("%d migrations recorded, max %d; want %d, max %d", n, maxV, len(ms), ms[len(ms)-1].version)
	}
	for _, table := range []string{"path_stats_hourly", "batch_ledger", "dead_letters", "path_stats_window",
		"window_state", "window_ranks", "window_proxy_ranks", "path_configs", "migration_history"} {
		var found bool
		if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema+"."+table).Scan(&found); err != nil || !found {
			t.Errorf("table %s: found %v, %v", table, found, err)
		}
	}
}

// TestNodesExactlyOnce has three nodes on one schema apply the same batches
// concurrently (every batch delivered to every node) while the clock moves
// the window: each batch counts once, and the window and its per-proxy
// counts agree with the hourly rows.
func TestNodesExactlyOnce(t *testing.T) {
	url := testURL(t)
	schema := freshSchema(t, url)
	hour := pathstats.HourBucket(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	now := time.Unix(hour+24*3600+60, 0).UTC()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	nodes := []*StatsStore{openSchema(t, url, schema, clock), openSchema(t, url, schema, clock), openSchema(t, url, schema, clock)}

	const rounds, paths = 12, 40
	batchOf := func(r int) *pathstats.Batch {
		b := &pathstats.Batch{ID: fmt.Sprintf("b-%d", r)}
		for p := range paths {
			var c pathstats.Counts
			c.Status[1], c.Latency[p%pathstats.NumLatencyBuckets] = 1, 1
			h := hour + int64(r%3)*3600
			c.LastSeenMs = h*1000 + int64(r)
			b.Deltas = append(b.Deltas, pathstats.Delta{Key: pathstats.Key{Hour: h, Path: fmt.Sprintf("/n/%d", (p*7+r)%paths), ProxyID: fmt.Sprintf("p%d", p%3)}, Counts: c})
		}
		return b
	}
	var applied [rounds]int
	var wg sync.WaitGroup
	var moveOnce sync.Once
	for i, n := range nodes {
		wg.Go(func() {
			for r := range rounds {
				r = (r + i*5) % rounds // nodes start at different rounds
				if r == rounds/2 {
					moveOnce.Do(func() {
						mu.Lock()
						now = now.Add(time.Hour) // hour+0 leaves the window
						mu.Unlock()
					})
				}
				res, err := n.Apply(context.Background(), []*pathstats.Batch{batchOf(r)}, nil)
				if err != nil {
					t.Errorf("node %d apply %d: %v", i, r, err)
					return
				}
				mu.Lock()
				applied[r] += res.Applied
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for r, n := range applied {
		if n != 1 {
			t.Errorf("batch %d applied %d times, want once", r, n)
		}
	}
	s := nodes[0]
	ctx := context.Background()
	totals, err := s.PathTotals(ctx, hour, hour+3*3600)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, pt := range totals {
		sum += pt.Requests
	}
	if sum != rounds*paths {
		t.Errorf("requests %d, want %d", sum, rounds*paths)
	}
	items, start, err := s.WindowTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) == 0 {
		t.Errorf("empty window")
	}
	if want := hour + 3600; start != want {
		t.Errorf("window start %d, want %d", start, want)
	}
	ref, err := s.PathTotals(ctx, start, start+100*3600)
	if err != nil {
		t.Fatal(err)
	}
	want := map[pathstats.Key]int64{}
	perProxy := map[string]int{}
	for _, pt := range ref {
		if pt.Requests > 0 {
			want[pathstats.Key{Path: pt.Path, ProxyID: pt.ProxyID}] = pt.Requests
			perProxy[pt.ProxyID]++
		}
	}
	got := map[pathstats.Key]int64{}
	for _, it := range items {
		got[pathstats.Key{Path: it.Path, ProxyID: it.ProxyID}] = it.Requests
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("window disagrees with the hourly rows:\n got %v\nwant %v", got, want)
	}
	for proxy, n := range perProxy {
		page, err := s.QueryPaths(ctx, pathstats.PathQuery{ProxyID: proxy, Page: 1, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != n {
			t.Errorf("proxy %s: total %d, want %d", proxy, page.Total, n)
		}
	}
}

func TestConfigHistoryPaging(t *testing.T) {
	url := testURL(t)
	ctx := context.Background()
	clock := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openTest(t, url, func() time.Time { return clock })
	t.Cleanup(func() { s.Close() })
	if got, total, err := s.ConfigChanges(ctx, 0, 10); err != nil || len(got) != 0 || total != 0 {
		t.Fatalf("empty history: %v, %d, %v", got, total, err)
	}
	var want []pathstats.ConfigChange
	for i := range 4 {
		c := pathstats.ConfigChange{
			At: time.Date(2025, 3, 1, 10, i, 0, 123e6, time.UTC), Actor: "admin", Source: "manual", Reason: "step",
			Before: pathstats.MigrationConfig{NewAPIPercentage: float64(i), ForceNewAPIIPs: []string{}, ForceOldAPIIPs: []string{}, Version: uint64(i)},
			After: pathstats.MigrationConfig{NewAPIPercentage: float64(i + 1), ForceNewAPIIPs: []string{"10.0.0.1"},
				ForceOldAPIIPs: []string{"192.168.0.0/16"}, EnableComparison: true, Version: uint64(i + 1)},
		}
		if i == 3 {
			c.At = time.Time{} // takes the store's clock
		}
		id, err := s.AppendConfigChange(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		c.ID = id
		if c.At.IsZero() {
			c.At = clock
		}
		want = append(want, c)
	}
	page, total, err := s.ConfigChanges(ctx, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if total != 4 || !reflect.DeepEqual(page, []pathstats.ConfigChange{want[3], want[2]}) {
		t.Fatalf("first page (total %d):\n got %+v\nwant %+v", total, page, want[2:])
	}
	page, _, err = s.ConfigChanges(ctx, want[2].ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(page, []pathstats.ConfigChange{want[1], want[0]}) {
		t.Fatalf("second page:\n got %+v\nwant %+v", page, want[:2])
	}
}
