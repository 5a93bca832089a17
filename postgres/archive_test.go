package postgres

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// archiveTestRows applies three rows (one without requests) to hour and
// returns them as HourRows reads them.
func archiveTestRows(t *testing.T, s *StatsStore, hour int64) []pathstats.HourlyRow {
	t.Helper()
	ctx := context.Background()
	var a, b pathstats.Counts
	a.Status = [pathstats.NumStatusClasses]int64{1, 20, 3, 4, 5}
	a.Latency[2], a.Latency[9], a.LastSeenMs = 30, 3, hour*1000+99
	b.Status[1], b.Latency[0], b.LastSeenMs = 2, 2, hour*1000+7
	zero := pathstats.Counts{LastSeenMs: hour*1000 + 1}
	batch := &pathstats.Batch{ID: "seed", Deltas: []pathstats.Delta{
		{Key: pathstats.Key{Hour: hour, Path: "/a", ProxyID: "p"}, Counts: a},
		{Key: pathstats.Key{Hour: hour, Path: "/b", ProxyID: "p"}, Counts: b},
		{Key: pathstats.Key{Hour: hour, Path: "/z", ProxyID: "p"}, Counts: zero},
	}}
	if _, err := s.Apply(ctx, []*pathstats.Batch{batch}, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := s.HourRows(ctx, hour)
	if err != nil || len(rows) != 3 {
		t.Fatalf("hour rows: %d rows, %v", len(rows), err)
	}
	return rows
}

// TestRemoveSeesChangeAfterCheck lets an Apply commit between the
// signature check and the delete of the fast path: the delete sees the
// changed row, is rolled back to its savepoint, and the subtraction keeps
// the late counts.
func TestRemoveSeesChangeAfterCheck(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, testURL(t), nil)
	t.Cleanup(func() { s.Close() })
	hour := pathstats.HourBucket(time.Now().Add(-72 * time.Hour))
	rows := archiveTestRows(t, s, hour)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	want := pathstats.SignatureOf(rows)
	var got pathstats.HourSignature
	if err := tx.QueryRow(ctx, hourSignatureSQL, hour).Scan(got.Dests()...); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("signature in SQL %+v, of the rows read %+v", got, want)
	}

	var late pathstats.Counts
	late.Status[1], late.Latency[1], late.LastSeenMs = 5, 5, hour*1000+500
	lateKey := pathstats.Key{Hour: hour, Path: "/b", ProxyID: "p"}
	if _, err := s.Apply(ctx, []*pathstats.Batch{{ID: "late", Deltas: []pathstats.Delta{{Key: lateKey, Counts: late}}}}, nil); err != nil {
		t.Fatal(err)
	}
	done, err := deleteHour(ctx, tx, hour, want)
	if err != nil {
		t.Fatal(err)
	}
	if done {
		t.Fatal("delete hour kept a delete of a changed hour")
	}
	if err := subtractRows(ctx, tx, hour, rows, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := s.HourRows(ctx, hour)
	if err != nil {
		t.Fatal(err)
	}
	for i := range left {
		left[i].UpdatedAt = time.Time{}
	}
	if wantLeft := []pathstats.HourlyRow{{Key: lateKey, Counts: late}}; !reflect.DeepEqual(left, wantLeft) {
		t.Errorf("hour after removal:\n got %+v\nwant %+v", left, wantLeft)
	}
}

// TestDeleteHourUnchanged deletes an unchanged hour in one statement.
func TestDeleteHourUnchanged(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, testURL(t), nil)
	t.Cleanup(func() { s.Close() })
	hour := pathstats.HourBucket(time.Now().Add(-72 * time.Hour))
	rows := archiveTestRows(t, s, hour)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	done, err := deleteHour(ctx, tx, hour, pathstats.SignatureOf(rows))
	if err != nil || !done {
		t.Fatalf("delete hour: done %v, %v; want done", done, err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM path_stats_hourly WHERE hour_bucket = $1`, hour).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d rows left in the hour", n)
	}
}
