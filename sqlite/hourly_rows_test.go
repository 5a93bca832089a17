package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func hourlyDelta(hour int64, path, proxy string, ok, fail int64) pathstats.Delta {
	d := pathstats.Delta{Key: pathstats.Key{Hour: hour, Path: path, ProxyID: proxy}}
	d.Status[1], d.Status[4] = ok, fail
	d.LastSeenMs = hour * 1000
	return d
}

func TestEachPathHourly(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"), Options{Now: func() time.Time { return now }})
	h := pathstats.HourBucket(now)
	ds := []pathstats.Delta{
		hourlyDelta(h, "/b", "p1", 2, 1),
		hourlyDelta(h, "/b", "p2", 3, 0),
		hourlyDelta(h-3600, "/b", "p1", 1, 1),
		hourlyDelta(h-7200, "/a", "p1", 4, 0),
		hourlyDelta(h-10*3600, "/a", "p1", 9, 9), // before fromHour
		hourlyDelta(h, "/C", "p1", 1, 0),
	}
	ds[1].LastSeenMs += 1234         // the latest of /b's rows, in another proxy's row
	ds[4].LastSeenMs = h*1000 + 9999 // a row before fromHour is not read at all
	if _, err := s.Apply(ctx, pathstats.SplitBatches("b1", "test", ds), nil); err != nil {
		t.Fatal(err)
	}
	type got struct {
		path  string
		last  int64
		hours [][3]int64
	}
	var all []got
	err := s.EachPathHourly(ctx, h-5*3600, func(path string, last int64, hours [][3]int64) error {
		all = append(all, got{path, last, slices.Clone(hours)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []got{
		{"/C", h * 1000, [][3]int64{{h, 1, 0}}},
		{"/a", (h - 7200) * 1000, [][3]int64{{h - 7200, 4, 0}}},
		{"/b", h*1000 + 1234, [][3]int64{{h - 3600, 2, 1}, {h, 6, 1}}}, // requests = ok + fail
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", all, want)
	}
	stop := fmt.Errorf("stop")
	n := 0
	err = s.EachPathHourly(ctx, 0, func(string, int64, [][3]int64) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("stop: err %v after %d calls", err, n)
	}
}

// BenchmarkEachPathHourly100k walks 100,000 paths x 24 hours.
func BenchmarkEachPathHourly100k(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	now := pathstats.HourBucket(time.Now())
	const paths, hours = 100_000, 24
	for hr := range hours {
		hour := now - int64(hours-1-hr)*3600
		ds := make([]pathstats.Delta, paths)
		for i := range ds {
			ds[i] = hourlyDelta(hour, benchPath(i), pathstats.DefaultProxyID, int64(1+i%7), int64(i%2))
		}
		if _, err := s.Apply(ctx, pathstats.SplitBatches(fmt.Sprintf("h%d", hr), "bench", ds), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		var n, rows int
		err := s.EachPathHourly(ctx, now-(hours-1)*3600, func(_ string, _ int64, hs [][3]int64) error {
			n++
			rows += len(hs)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if n != paths || rows != paths*hours {
			b.Fatalf("got %d paths, %d rows", n, rows)
		}
	}
}
