package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pathstats/pathstats"
)

// TestRankBucketMatchesSQL checks Go's rankBucket against the schema's
// window_rank_bucket, and that every value lies in its bucket.
func TestRankBucketMatchesSQL(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, testURL(t), nil)
	t.Cleanup(func() { s.Close() })
	vals := []int64{math.MinInt64, -1, 0, 1, 2, 1023, 1024, 1025, 1039, 1040, 2047, 2048, 4095, 4096, math.MaxInt64, math.MaxInt64 - 1}
	for e := 10; e < 63; e++ {
		vals = append(vals, int64(1)<<e-1, int64(1)<<e, int64(1)<<e+1, int64(1)<<e+int64(1)<<(e-1))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		vals = append(vals, r.Int64N(1<<uint(r.IntN(63))+1))
	}
	rows, err := s.pool.Query(ctx, `SELECT v, window_rank_bucket(v) FROM unnest($1::bigint[]) AS u(v)`, vals)
	if err != nil {
		t.Fatal(err)
	}
	var v, b int64
	n := 0
	if _, err := pgx.ForEachRow(rows, []any{&v, &b}, func() error {
		n++
		if got := rankBucket(v); got != b {
			return fmt.Errorf("rankBucket(%d) = %d, SQL says %d", v, got, b)
		}
		if v < b || v > rankBucketLast(b) {
			return fmt.Errorf("%d outside its bucket [%d, %d]", v, b, rankBucketLast(b))
		}
		if v >= exactRanks && rankBucketLast(b)-b > b/64 {
			return fmt.Errorf("bucket [%d, %d] wider than 1/64 of its values", b, rankBucketLast(b))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(vals) {
		t.Fatalf("%d values checked, want %d", n, len(vals))
	}
	if rankBucketLast(1023)+1 != 1024 || rankBucketLast(1024)+1 != 1040 || rankBucketLast(rankBucket(math.MaxInt64)) != math.MaxInt64 {
		t.Fatal("bucket ends do not meet the next bucket")
	}
}

// rankPath is path i of the rank tests: two proxies, a 3:1 split.
func rankPath(i int) (string, string) {
	proxy := "proxy-a"
	if i%4 == 3 {
		proxy = "proxy-b"
	}
	return fmt.Sprintf("/r/%05d", (i*7919)%100_000), proxy
}

// rankRequests is the requests of path i's first delta: a large tie at 1,
// then exact values, then values spread over many shared buckets.
func rankRequests(r *rand.Rand, i int) int64 {
	switch {
	case i%3 == 0:
		return 1
	case i%3 == 1:
		return 2 + r.Int64N(exactRanks-2)
	default:
		return exactRanks + r.Int64N(300_000)
	}
}

// rankDeltas returns one delta per path of ids with requests from reqs.
func rankDeltas(hour int64, ids []int, reqs func(i int) int64) []pathstats.Delta {
	ds := make([]pathstats.Delta, len(ids))
	for k, i := range ids {
		path, proxy := rankPath(i)
		ds[k].Key = pathstats.Key{Hour: hour, Path: path, ProxyID: proxy}
		ds[k].Status[1] = reqs(i)
		ds[k].LastSeenMs = hour*1000 + int64(i)
	}
	return ds
}

// checkRanks fails unless both rank histograms equal the counts of the
// window's rows per bucket.
func checkRanks(t *testing.T, s *StatsStore) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`SELECT '', bucket, paths FROM window_ranks WHERE paths <> 0
		 EXCEPT ALL SELECT '', window_rank_bucket(requests), COUNT(*) FROM path_stats_window GROUP BY 2`,
		`SELECT '', window_rank_bucket(requests), COUNT(*) FROM path_stats_window GROUP BY 2
		 EXCEPT ALL SELECT '', bucket, paths FROM window_ranks WHERE paths <> 0`,
		`SELECT proxy_id, bucket, paths FROM window_proxy_ranks WHERE paths <> 0
		 EXCEPT ALL SELECT proxy_id, window_rank_bucket(requests), COUNT(*) FROM path_stats_window GROUP BY 1, 2`,
		`SELECT proxy_id, window_rank_bucket(requests), COUNT(*) FROM path_stats_window GROUP BY 1, 2
		 EXCEPT ALL SELECT proxy_id, bucket, paths FROM window_proxy_ranks WHERE paths <> 0`,
	} {
		rows, err := s.pool.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var proxy string
		var bucket, paths int64
		var diff []string
		if _, err := pgx.ForEachRow(rows, []any{&proxy, &bucket, &paths}, func() error {
			diff = append(diff, fmt.Sprintf("%s/%d=%d", proxy, bucket, paths))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(diff) > 0 {
			t.Fatalf("rank histogram differs from the window (%d buckets): %v\n%s", len(diff), diff[:min(len(diff), 10)], q)
		}
	}
}

// rankedStore opens a store and applies rankedPaths paths, then more
// requests to a third of them (moving them to other buckets).
func rankedStore(t *testing.T) (*StatsStore, *rand.Rand) {
	const paths = 12_000
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	s := openTest(t, testURL(t), func() time.Time { return now })
	t.Cleanup(func() { s.Close() })
	r := rand.New(rand.NewPCG(7, 8))
	hour := pathstats.HourBucket(now)
	all := make([]int, paths)
	for i := range all {
		all[i] = i
	}
	first := rankDeltas(hour-3600, all, func(i int) int64 { return rankRequests(r, i) })
	if _, err := s.Apply(ctx, pathstats.SplitBatches("first", "test", first), nil); err != nil {
		t.Fatal(err)
	}
	some := r.Perm(paths)[:paths/3]
	more := rankDeltas(hour, some, func(int) int64 { return 1 + r.Int64N(5000) })
	if _, err := s.Apply(ctx, pathstats.SplitBatches("more", "test", more), nil); err != nil {
		t.Fatal(err)
	}
	return s, r
}

// TestRankedPages compares every page of the window, and of one proxy, with
// the window read whole and sorted in Go; deep pages start from the rank
// histogram.
func TestRankedPages(t *testing.T) {
	ctx := context.Background()
	s, r := rankedStore(t)
	checkRanks(t, s)
	all, _, err := s.WindowTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byProxy := map[string][]pathstats.PathItem{}
	for _, it := range all {
		byProxy[it.ProxyID] = append(byProxy[it.ProxyID], it)
	}
	for _, proxy := range []string{"", "proxy-a", "proxy-b"} {
		want := all
		if proxy != "" {
			want = byProxy[proxy]
		}
		limits := []int{50, 1000}
		for range 3 {
			limits = append(limits, 1+r.IntN(400))
		}
		for _, limit := range limits {
			for page := 1; (page-1)*limit <= len(want); page++ {
				q := pathstats.PathQuery{ProxyID: proxy, Page: page, Limit: limit}
				got, err := s.QueryPaths(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				from, to := min(q.Offset(), len(want)), min(q.Offset()+limit, len(want))
				if got.Total != len(want) || !slices.Equal(got.Items, want[from:to]) {
					t.Fatalf("proxy %q page %d limit %d: total %d, %d items; want total %d, items [%d, %d)",
						proxy, page, limit, got.Total, len(got.Items), len(want), from, to)
				}
			}
		}
	}
	// The deep pages do use the histogram, and skip less than a walk from
	// the nearer end.
	err = pgx.BeginTxFunc(ctx, s.pool, readOnly, func(tx pgx.Tx) error {
		for _, proxy := range []string{"", "proxy-a"} {
			n := len(all)
			if proxy != "" {
				n = len(byProxy[proxy])
			}
			for _, first := range []int{n / 3, n / 2, 2 * n / 3} {
				w, ok, err := rankedPage(ctx, tx, proxy, first, first+49)
				if err != nil {
					return err
				}
				if !ok || w.skip >= min(first, n-first-50) {
					return fmt.Errorf("proxy %q rows %d+50 of %d: walk %+v (ok %v)", proxy, first, n, w, ok)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRanksFollowApplyAndAdvance applies overlapping batches from several
// goroutines (every Apply moves rows between buckets), then moves the
// window, and checks the histograms against the window after each step.
func TestRanksFollowApplyAndAdvance(t *testing.T) {
	ctx := context.Background()
	s, _ := rankedStore(t)
	hour := pathstats.HourBucket(s.now())
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 99))
			for round := range 5 {
				ids := r.Perm(12_500)[:3000] // some new paths too
				ds := rankDeltas(hour, ids, func(int) int64 { return 1 + r.Int64N(3000) })
				if _, err := s.Apply(ctx, pathstats.SplitBatches(fmt.Sprintf("g%d-%d", g, round), "test", ds), nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkRanks(t, s)
	if err := s.AdvanceWindow(ctx, time.Unix(hour, 0).Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var rows int64
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM path_stats_window`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows == 0 || rows >= 12_500 {
		t.Fatalf("%d window rows after the first hour left, want some but not all", rows)
	}
	checkRanks(t, s)
}

// TestOlderWriterRefused checks that a write to the window without the
// writer mark (an older release's Apply) is refused with its SQLSTATE, and
// that a release older than the database's schema does not start.
func TestOlderWriterRefused(t *testing.T) {
	ctx := context.Background()
	url := testURL(t)
	s := openTest(t, url, nil)
	t.Cleanup(func() { s.Close() })
	hour := pathstats.HourBucket(s.now())
	ds := rankDeltas(hour, []int{1, 2, 3}, func(i int) int64 { return int64(i) })
	if _, err := s.Apply(ctx, pathstats.SplitBatches("marked", "test", ds), nil); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE path_stats_window SET requests = requests + 1`,
		`INSERT INTO path_stats_window (path, proxy_id, requests) VALUES ('/x', 'p', 1)`,
		`DELETE FROM path_stats_window`,
		`TRUNCATE path_stats_window`,
	} {
		_, err := s.pool.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55000" || !strings.Contains(pgErr.Message, "upgrade") {
			t.Fatalf("%s: %v, want SQLSTATE 55000 asking for an upgrade", stmt, err)
		}
	}
	var rows, ranked int64
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM path_stats_window), (SELECT SUM(paths) FROM window_ranks)`).Scan(&rows, &ranked); err != nil {
		t.Fatal(err)
	}
	if rows != 3 || ranked != 3 {
		t.Fatalf("window %d rows, histogram %d; want 3 and 3", rows, ranked)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if again, err := Open(ctx, url, Options{Schema: schema}); err == nil || !strings.Contains(err.Error(), "schema version 9999") {
		if again != nil {
			again.Close()
		}
		t.Fatalf("open on a newer schema: %v, want a refusal", err)
	}
}
