package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
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
