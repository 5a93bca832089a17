package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

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
	err := s.EachPathHourly(context.Background(), fromHour, func(path string, hours [][3]int64) error {
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
	if got := collectHourly(t, s, h+3600); len(got) != 0 {
		t.Fatalf("after the last hour: got %v", got)
	}

	stop := errors.New("stop")
	n := 0
	err := s.EachPathHourly(ctx, 0, func(string, [][3]int64) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("stop: err %v after %d calls", err, n)
	}
	// The store stays usable after an early stop.
	if got := collectHourly(t, s, 0); len(got) != 5 {
		t.Fatalf("after early stop: %d paths, want 5", len(got))
	}
}

// TestEachPathHourlyBatches walks more rows than one cursor fetch, with a
// path whose hours straddle the fetch boundary.
func TestEachPathHourlyBatches(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)
	s := openTest(t, testURL(t), func() time.Time { return now })
	t.Cleanup(func() { s.Close() })
	h := pathstats.HourBucket(now)
	const hours = 3
	paths := hourlyFetchSize/hours + 2 // row hourlyFetchSize is mid-path
	ds := make([]pathstats.Delta, 0, paths*hours)
	for i := range paths {
		for k := range hours {
			ds = append(ds, hourlyDelta(h-int64(k)*3600, fmt.Sprintf("/p/%05d", i), "p1", int64(i+k+1), int64(k)))
		}
	}
	if _, err := s.Apply(ctx, pathstats.SplitBatches("big", "test", ds), nil); err != nil {
		t.Fatal(err)
	}
	got := collectHourly(t, s, h-(hours-1)*3600)
	if len(got) != paths {
		t.Fatalf("%d paths, want %d", len(got), paths)
	}
	for i, p := range got {
		want := pathHours{path: fmt.Sprintf("/p/%05d", i)}
		for k := hours - 1; k >= 0; k-- {
			want.hours = append(want.hours, [3]int64{h - int64(k)*3600, int64(i+k+1) + int64(k), int64(k)})
		}
		if fmt.Sprint(p) != fmt.Sprint(want) {
			t.Fatalf("path %d: got %v, want %v", i, p, want)
		}
	}
}
