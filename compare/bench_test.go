package compare_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/compare"
	"github.com/pathstats/pathstats/sqlite"
)

// memSource is an in-memory side holding the same data as seedSQL.
type memSource struct {
	n, hours int
	last     int64
}

func (m memSource) EachPath(_ context.Context, from int64, fn func(compare.PathHours) error) error {
	hs := make([]compare.Hour, 0, m.hours)
	for i := range m.n {
		hs = hs[:0]
		for h := range m.hours {
			b := m.last - int64(m.hours-1-h)*3600
			if b >= from {
				hs = append(hs, compare.Hour{Bucket: b, Requests: int64(1 + i%7), Errors: int64(i % 2)})
			}
		}
		if err := fn(compare.PathHours{Path: benchPath(i), Hours: hs}); err != nil {
			return err
		}
	}
	return nil
}

func benchPath(i int) string { return fmt.Sprintf("/api/v1/items/%07d", i) }

// seedSQL applies n paths x hours hours ending at last to a new store.
func seedSQL(b *testing.B, n, hours int, last int64, now func() time.Time) *sqlite.StatsStore {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Now: now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ds := make([]pathstats.Delta, n)
	for h := range hours {
		hour := last - int64(hours-1-h)*3600
		for i := range ds {
			ds[i] = pathstats.Delta{Key: pathstats.Key{Hour: hour, Path: benchPath(i), ProxyID: "default"}}
			ds[i].Status[1], ds[i].Status[4] = int64(1+i%7)-int64(i%2), int64(i%2)
		}
		if _, err := s.Apply(ctx, pathstats.SplitBatches(fmt.Sprintf("h%d", h), "bench", ds), nil); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkCompare100kSQL runs a full comparison of 100,000 paths x 24 hours
// with the SQL side read from a real SQLite store (the slower side; the
// legacy side's walk is measured by legacy's BenchmarkEachPathHourly100k).
func BenchmarkCompare100kSQL(b *testing.B) {
	const n, hours = 100_000, 24
	now := time.Now()
	clock := func() time.Time { return now }
	last := pathstats.HourBucket(now)
	s := seedSQL(b, n, hours, last, clock)
	o := compare.Options{Legacy: memSource{n, hours, last}, SQL: compare.TripleFunc(s.EachPathHourly), Now: clock}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := compare.Run(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		if rep.TotalPaths != n || rep.DiffsTotal != 0 {
			b.Fatalf("%d paths, %d diffs: %+v", rep.TotalPaths, rep.DiffsTotal, rep.Diffs[:min(3, len(rep.Diffs))])
		}
	}
}
