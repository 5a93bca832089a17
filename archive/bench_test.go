package archive

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// benchRows is the number of rows of the hour the benchmarks move.
const benchRows = 100_000

// benchHourRows returns benchRows rows of one hour, in key order.
func benchHourRows(hour int64) []pathstats.HourlyRow {
	rows := make([]pathstats.HourlyRow, benchRows)
	for i := range rows {
		r := &rows[i]
		r.Key = pathstats.Key{Hour: hour, Path: fmt.Sprintf("/api/v1/items/%06d/detail", i), ProxyID: pathstats.DefaultProxyID}
		r.Counts.Status[1] = 3 + int64(i%7)
		r.Counts.Status[3] = int64(i % 3)
		r.Counts.Status[4] = int64(i % 2)
		r.Counts.Latency[i%pathstats.NumLatencyBuckets] = r.Counts.Requests()
		r.Counts.LastSeenMs = hour*1000 + int64(i)
	}
	return rows
}

// benchSetup returns a store, a file:// archiver (quiet) and the first
// hour to fill, far before the retention cutoff.
func benchSetup(b *testing.B) (pathstats.ArchiveStore, *Archiver, int64) {
	store, bucket := openStore(b), openFileBucket(b)
	a, err := New(Config{Store: store, Bucket: bucket, Retention: testRetention,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return store, a, pathstats.HourBucket(time.Now().Add(-90 * 24 * time.Hour))
}

// fillHour puts rows of hour into SQL.
func fillHour(b *testing.B, store pathstats.ArchiveStore, hour int64) {
	rows := benchHourRows(hour)
	if _, err := store.RestoreArchived(context.Background(), fmt.Sprintf("bench-fill-%d", hour), rows); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkArchiveHour archives one hour of 100,000 rows (SQLite,
// file://) per iteration: read, encode, upload, verify, delete from SQL,
// commit. Filling the hour is not timed.
func BenchmarkArchiveHour(b *testing.B) {
	ctx := context.Background()
	store, a, first := benchSetup(b)
	var took time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		hour := first + int64(i)*3600
		fillHour(b, store, hour)
		b.StartTimer()
		start := time.Now()
		res, err := a.RunOnce(ctx)
		took += time.Since(start)
		if err != nil || res.Rows != benchRows {
			b.Fatalf("run = %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(b.N*benchRows)/took.Minutes(), "rows/min")
}

// BenchmarkRestoreHour restores one archived hour of 100,000 rows
// (SQLite, file://) per iteration: read, verify, decode, insert, delete
// the part, update the manifest. Filling and archiving are not timed.
func BenchmarkRestoreHour(b *testing.B) {
	ctx := context.Background()
	store, a, first := benchSetup(b)
	var took time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		hour := first + int64(i)*3600
		fillHour(b, store, hour)
		if res, err := a.RunOnce(ctx); err != nil || res.Rows != benchRows {
			b.Fatalf("archive = %+v, %v", res, err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := a.Restore(ctx, hour, hour+3600, time.Hour)
		took += time.Since(start)
		if err != nil || res.Rows != benchRows {
			b.Fatalf("restore = %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(b.N*benchRows)/took.Minutes(), "rows/min")
}
