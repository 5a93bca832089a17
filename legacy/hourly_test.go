package legacy

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func TestEachPathHourly(t *testing.T) {
	ctx := testCtx(t)
	clk := newClock(t0)
	s := openSys(t, t.TempDir(), clk.Now, nil)
	h := pathstats.HourBucket(t0)
	s.Observe("p1", "/b", 200, 0, t0)
	s.Observe("p2", "/b", 503, 0, t0)
	s.Observe("p1", "/b", 404, 0, t0.Add(-time.Hour))
	s.Observe("p1", "/a", 200, 0, t0.Add(-2*time.Hour))
	s.Observe("p1", "/a", 200, 0, t0.Add(-20*time.Hour)) // before fromHour
	s.Observe("p1", "/C", 500, 0, t0)
	s.Observe("p1", "/old", 200, 0, t0.Add(-20*time.Hour)) // no hour in range
	type got struct {
		path  string
		last  int64
		hours [][3]int64
	}
	var all []got
	// No explicit Flush: EachPathHourly flushes the live state first.
	err := s.EachPathHourly(ctx, h-5*3600, func(path string, last int64, hours [][3]int64) error {
		all = append(all, got{path, last, slices.Clone(hours)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []got{
		{"/C", t0.UnixMilli(), [][3]int64{{h, 1, 1}}},
		{"/a", t0.Add(-2 * time.Hour).UnixMilli(), [][3]int64{{h - 7200, 1, 0}}},
		{"/b", t0.UnixMilli(), [][3]int64{{h - 3600, 1, 0}, {h, 2, 1}}},
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", all, want)
	}
	stop := fmt.Errorf("stop")
	n := 0
	if err := s.EachPathHourly(ctx, 0, func(string, int64, [][3]int64) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("stop: err %v after %d calls", err, n)
	}
	if _, err := s.Decommission(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := s.EachPathHourly(ctx, 0, func(string, int64, [][3]int64) error { return nil }); pathstats.ErrorCode(err) != pathstats.EGone {
		t.Fatalf("after decommission: %v", err)
	}
}

// BenchmarkEachPathHourly100k walks 100,000 stored instances x 24 hours.
func BenchmarkEachPathHourly100k(b *testing.B) {
	const n, hours = 100_000, 24
	dir := b.TempDir()
	seedStore(b, dir, n, hours)
	s := benchSys(b, dir)
	from := pathstats.HourBucket(time.Now().Add(-(hours - 1) * time.Hour))
	for b.Loop() {
		var paths, rows int
		err := s.EachPathHourly(b.Context(), from, func(_ string, _ int64, hs [][3]int64) error {
			paths++
			rows += len(hs)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if paths != n || rows != n*hours {
			b.Fatalf("got %d paths, %d rows", paths, rows)
		}
	}
}
