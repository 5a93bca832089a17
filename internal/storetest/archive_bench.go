package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// archiveBenchRows is the number of rows of the hour the archive benchmarks
// move: a large hour (100,000 distinct paths).
const archiveBenchRows = 100_000

// benchArchiveRows returns archiveBenchRows rows of one hour, in key order.
func benchArchiveRows(hour int64) []pathstats.HourlyRow {
	rows := make([]pathstats.HourlyRow, archiveBenchRows)
	for i := range rows {
		r := &rows[i]
		r.Key = pathstats.Key{Hour: hour, Path: fmt.Sprintf("/api/v1/items/%06d/detail", i), ProxyID: pathstats.DefaultProxyID}
		r.Counts.Status[1] = 3 + int64(i%7)
		r.Counts.Status[4] = int64(i % 2)
		r.Counts.Latency[i%pathstats.NumLatencyBuckets] = r.Counts.Requests()
		r.Counts.LastSeenMs = hour*1000 + int64(i)
	}
	return rows
}

// setHour moves rows to hour.
func setHour(rows []pathstats.HourlyRow, hour int64) {
	for i := range rows {
		rows[i].Hour = hour
	}
}

// ArchiveBenchStore is what the archive benchmarks need of a backend.
type ArchiveBenchStore interface {
	pathstats.ArchiveStore
	Apply(ctx context.Context, batches []*pathstats.Batch, dead []pathstats.DeadLetter) (pathstats.ApplyResult, error)
}

// benchHour is an hour far before any window.
func benchHour() int64 { return pathstats.HourBucket(time.Now().Add(-60 * 24 * time.Hour)) }

// reportRowsPerMin reports rows moved per minute of the timed work.
func reportRowsPerMin(b *testing.B, rows int, took time.Duration) {
	b.ReportMetric(float64(rows)/took.Minutes(), "rows/min")
}

// BenchRestoreArchived restores an hour of 100,000 rows into an empty hour
// of the hourly table, one part per iteration, on an empty store from open
// (real clock).
func BenchRestoreArchived(b *testing.B, open func(b *testing.B) ArchiveBenchStore) {
	ctx := context.Background()
	s, hour := open(b), benchHour()
	rows := benchArchiveRows(hour)
	var took time.Duration
	b.ResetTimer()
	for i := range b.N {
		setHour(rows, hour+int64(i)*3600)
		start := time.Now()
		applied, err := s.RestoreArchived(ctx, fmt.Sprintf("restore-%d", i), rows)
		took += time.Since(start)
		if err != nil || !applied {
			b.Fatalf("restore archived: applied %v, %v", applied, err)
		}
	}
	reportRowsPerMin(b, b.N*len(rows), took)
}

// BenchRemoveArchived removes an hour of 100,000 rows as read by HourRows.
// "full-hour" removes an unchanged hour (one range delete); "grown" first
// applies a late delta to one row, so every row is subtracted. Restoring
// and reading the hour are not timed.
func BenchRemoveArchived(b *testing.B, open func(b *testing.B) ArchiveBenchStore) {
	for _, mode := range []struct {
		name  string
		grown bool
	}{{"full-hour", false}, {"grown", true}} {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			s, hour := open(b), benchHour()
			rows := benchArchiveRows(hour)
			var took time.Duration
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				h := hour + int64(i)*3600
				read := prepareRemove(b, s, rows, h, mode.grown)
				b.StartTimer()
				start := time.Now()
				applied, err := s.RemoveArchived(ctx, fmt.Sprintf("remove-%d", i), read)
				took += time.Since(start)
				if err != nil || !applied {
					b.Fatalf("remove archived: applied %v, %v", applied, err)
				}
			}
			reportRowsPerMin(b, b.N*len(rows), took)
		})
	}
}

// prepareRemove fills hour with rows and returns them as HourRows reads
// them; grown then adds a late delta to one row.
func prepareRemove(b *testing.B, s ArchiveBenchStore, rows []pathstats.HourlyRow, hour int64, grown bool) []pathstats.HourlyRow {
	b.Helper()
	ctx := context.Background()
	setHour(rows, hour)
	if _, err := s.RestoreArchived(ctx, fmt.Sprintf("fill-%d", hour), rows); err != nil {
		b.Fatal(err)
	}
	read, err := s.HourRows(ctx, hour)
	if err != nil || len(read) != len(rows) {
		b.Fatalf("hour rows: %d rows, %v", len(read), err)
	}
	if grown {
		late := pathstats.Delta{Key: rows[len(rows)/2].Key}
		late.Status[1], late.Latency[0], late.LastSeenMs = 1, 1, hour*1000+3_599_000
		if _, err := s.Apply(ctx, []*pathstats.Batch{{ID: fmt.Sprintf("late-%d", hour), Deltas: []pathstats.Delta{late}}}, nil); err != nil {
			b.Fatal(err)
		}
	}
	return read
}
