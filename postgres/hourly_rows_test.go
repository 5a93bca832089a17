package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats"
)

// hourlyDelta is a delta of ok 2xx and fail 5xx responses.
func hourlyDelta(hour int64, path, proxy string, ok, fail int64) pathstats.Delta {
	d := pathstats.Delta{Key: pathstats.Key{Hour: hour, Path: path, ProxyID: proxy}}
	d.Status[1], d.Status[4] = ok, fail
	d.LastSeenMs = hour * 1000
	return d
}

// pathHours is one call of the EachPathHourly callback.
type pathHours struct {
	path  string
	hours [][3]int64
}

// collectHourly returns every call of EachPathHourly from fromHour.
func collectHourly(t *testing.T, s *StatsStore, fromHour int64) []pathHours {
	t.Helper()
	var all []pathHours
	err := s.EachPathHourly(context.Background(), fromHour, func(path string, _ int64, hours [][3]int64) error {
		all = append(all, pathHours{path, slices.Clone(hours)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func TestEachPathHourly(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)
	s := openTest(t, testURL(t), func() time.Time { return now })
	t.Cleanup(func() { s.Close() })
	h := pathstats.HourBucket(now)
	ds := []pathstats.Delta{
		hourlyDelta(h, "/b", "p1", 2, 1),
		hourlyDelta(h, "/b", "p2", 3, 0),
		hourlyDelta(h, "/b", "p3", 0, 4),
		hourlyDelta(h-3600, "/b", "p1", 1, 1),
		hourlyDelta(h-7200, "/a", "p1", 4, 0),
		hourlyDelta(h-10*3600, "/a", "p1", 9, 9),   // before fromHour
		hourlyDelta(h-10*3600, "/old", "p1", 5, 0), // only before fromHour
		hourlyDelta(h, "/C", "p1", 1, 0),
		hourlyDelta(h-3600, "/\u00e9t\u00e9", "p2", 7, 0), // after "/b" in byte order
		hourlyDelta(h-5*3600, "/a", "p2", 0, 2),           // exactly fromHour
	}
	ds[1].LastSeenMs += 1234         // the latest of /b's rows, in another proxy's row
	ds[5].LastSeenMs = h*1000 + 9999 // a row before fromHour is not read at all
	if _, err := s.Apply(ctx, pathstats.SplitBatches("b1", "test", ds), nil); err != nil {
		t.Fatal(err)
	}
	got := collectHourly(t, s, h-5*3600)
	want := []pathHours{
		{"/C", [][3]int64{{h, 1, 0}}},
		{"/a", [][3]int64{{h - 5*3600, 2, 2}, {h - 7200, 4, 0}}},
		{"/b", [][3]int64{{h - 3600, 2, 1}, {h, 10, 5}}}, // requests = ok + fail
		{"/\u00e9t\u00e9", [][3]int64{{h - 3600, 7, 0}}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	lasts := map[string]int64{}
	if err := s.EachPathHourly(ctx, h-5*3600, func(path string, last int64, _ [][3]int64) error {
		lasts[path] = last
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantLasts := map[string]int64{"/C": h * 1000, "/a": (h - 7200) * 1000, "/b": h*1000 + 1234, "/\u00e9t\u00e9": (h - 3600) * 1000}
	if fmt.Sprint(lasts) != fmt.Sprint(wantLasts) {
		t.Fatalf("lastSeenMs %v, want %v", lasts, wantLasts)
	}
	if got := collectHourly(t, s, h+3600); len(got) != 0 {
		t.Fatalf("after the last hour: got %v", got)
	}

	stop := errors.New("stop")
	n := 0
	err := s.EachPathHourly(ctx, 0, func(string, int64, [][3]int64) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("stop: err %v after %d calls", err, n)
	}
	// The store stays usable after an early stop.
	if got := collectHourly(t, s, 0); len(got) != 5 {
		t.Fatalf("after early stop: %d paths, want 5", len(got))
	}
}

// TestEachPathHourlyBatches walks hour cursors in fetches of 10 rows: the
// rows of a path's proxies straddle fetch boundaries, one hour holds an
// exact multiple of the fetch size, and hours hold different paths.
func TestEachPathHourlyBatches(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)
	s := openTest(t, testURL(t), func() time.Time { return now })
	t.Cleanup(func() { s.Close() })
	oldRows, oldMin := hourlyBufferedRows, hourlyMinFetch
	hourlyBufferedRows, hourlyMinFetch = 30, 10 // 3 hours: 10 rows a fetch
	t.Cleanup(func() { hourlyBufferedRows, hourlyMinFetch = oldRows, oldMin })
	h := pathstats.HourBucket(now)
	const paths = 13
	var ds []pathstats.Delta
	want := make([]pathHours, paths)
	for i := range paths {
		p := fmt.Sprintf("/p/%02d", i)
		want[i].path = p
		for k := 2; k >= 0; k-- {
			hour := h - int64(k)*3600
			proxies := 1 + (i+k)%3 // hour h-1h: 26 rows
			switch {
			case k == 0 && i >= 10:
				continue // hour h: 20 rows, two full fetches
			case k != 1:
				proxies = 2 // hour h-2h: 26 rows
			}
			var sum [3]int64
			sum[0] = hour
			for q := range proxies {
				d := hourlyDelta(hour, p, fmt.Sprintf("px%d", q), int64(i+q+1), int64(k))
				ds = append(ds, d)
				sum[1] += d.Requests()
				sum[2] += d.Errors()
			}
			want[i].hours = append(want[i].hours, sum)
		}
	}
	if _, err := s.Apply(ctx, pathstats.SplitBatches("big", "test", ds), nil); err != nil {
		t.Fatal(err)
	}
	var rows [3]int
	for _, d := range ds {
		rows[(h-d.Hour)/3600]++
	}
	if rows[0]%10 != 0 || rows[1]%10 == 0 || rows[2]%10 == 0 {
		t.Fatalf("rows per hour %v: want one hour a multiple of the fetch size, the others not", rows)
	}
	got := collectHourly(t, s, h-2*3600)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

// TestEachPathHourlySnapshot applies rows while a walk runs, to hours read
// by either connection: the walk sees none of them.
func TestEachPathHourlySnapshot(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)
	s := openTest(t, testURL(t), func() time.Time { return now })
	t.Cleanup(func() { s.Close() })
	h := pathstats.HourBucket(now)
	var ds []pathstats.Delta
	for k := range 4 {
		ds = append(ds, hourlyDelta(h-int64(k)*3600, "/a", "p1", 1, 0), hourlyDelta(h-int64(k)*3600, "/m", "p1", 2, 0))
	}
	if _, err := s.Apply(ctx, pathstats.SplitBatches("before", "test", ds), nil); err != nil {
		t.Fatal(err)
	}
	var got []pathHours
	err := s.EachPathHourly(ctx, h-3*3600, func(path string, _ int64, hours [][3]int64) error {
		if len(got) == 0 {
			var late []pathstats.Delta
			for k := range 4 {
				hour := h - int64(k)*3600
				late = append(late, hourlyDelta(hour, "/m", "p2", 5, 5), hourlyDelta(hour, "/z", "p1", 1, 0))
			}
			if _, err := s.Apply(ctx, pathstats.SplitBatches("during", "test", late), nil); err != nil {
				return err
			}
		}
		got = append(got, pathHours{path, slices.Clone(hours)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []pathHours
	for _, p := range []struct {
		path string
		n    int64
	}{{"/a", 1}, {"/m", 2}} {
		ph := pathHours{path: p.path}
		for k := 3; k >= 0; k-- {
			ph.hours = append(ph.hours, [3]int64{h - int64(k)*3600, p.n, 0})
		}
		want = append(want, ph)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	if after := collectHourly(t, s, h-3*3600); len(after) != 3 {
		t.Fatalf("after the walk: %v, want 3 paths", after)
	}
}

// TestEachPathHourlySmallPool walks with a pool of two connections: the
// walk reads on one rather than wait for a second that Apply may hold.
func TestEachPathHourlySmallPool(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)
	url := testURL(t)
	schema := freshSchema(t, url)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s, err := Open(context.Background(), url+sep+"pool_max_conns=2", Options{Now: func() time.Time { return now }, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h := pathstats.HourBucket(now)
	ds := []pathstats.Delta{hourlyDelta(h, "/a", "p1", 1, 0), hourlyDelta(h-3600, "/a", "p1", 2, 0)}
	if _, err := s.Apply(context.Background(), pathstats.SplitBatches("b", "test", ds), nil); err != nil {
		t.Fatal(err)
	}
	if got := s.hourlyConns(2); got != 1 {
		t.Fatalf("hourlyConns with 2 pooled connections: %d, want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []pathHours
	err = s.EachPathHourly(ctx, h-3600, func(path string, _ int64, hours [][3]int64) error {
		// Hold the pool's other connection while the walk runs.
		return pgx.BeginFunc(ctx, s.pool, func(pgx.Tx) error {
			got = append(got, pathHours{path, slices.Clone(hours)})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []pathHours{{"/a", [][3]int64{{h - 3600, 2, 0}, {h, 1, 0}}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
