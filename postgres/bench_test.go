package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
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

// openWithHistory opens a store on a fresh schema holding historyHours hours
// of benchPaths rows before now's hour, and returns it with now's hour.
func openWithHistory(b *testing.B) (*StatsStore, int64) {
	b.Helper()
	ctx := context.Background()
	s := openTest(b, testURL(b), nil)
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
// 10,000 paths). "new-hour" moves to the next hour each round (all inserts
// into the hourly rows); "same-hour" applies every round to the current hour
// (all updates). Every round also updates the 10,000 window rows.
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

// BenchmarkApplyConcurrent applies from three stores on one schema at once
// (three nodes): each round, every store applies 5,000 deltas of random
// requests to random paths of 30,000, so the Applies contend on shared
// window rows and rank buckets.
func BenchmarkApplyConcurrent(b *testing.B) {
	const nodes, paths, perRound = 3, 30_000, 5_000
	ctx := context.Background()
	url := testURL(b)
	schema := freshSchema(b, url)
	stores := make([]*StatsStore, nodes)
	for n := range stores {
		s, err := Open(ctx, url, Options{Schema: schema})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		stores[n] = s
	}
	hour := pathstats.HourBucket(time.Now())
	rows := 0
	round := 0
	for b.Loop() {
		errs := make(chan error, nodes)
		for n, s := range stores {
			go func() {
				r := rand.New(rand.NewPCG(uint64(round), uint64(n)))
				ds := make([]pathstats.Delta, 0, perRound)
				for _, i := range r.Perm(paths)[:perRound] {
					var d pathstats.Delta
					d.Key = pathstats.Key{Hour: hour, Path: fmt.Sprintf("/api/v1/items/%05d", i), ProxyID: fmt.Sprintf("proxy-%d", i%4)}
					d.Status[1] = 1 + r.Int64N(2000)
					d.LastSeenMs = hour * 1000
					ds = append(ds, d)
				}
				_, err := s.Apply(ctx, pathstats.SplitBatches(fmt.Sprintf("r%d-n%d", round, n), "bench", ds), nil)
				errs <- err
			}()
		}
		for range nodes {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		rows += nodes * perRound
		round++
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
