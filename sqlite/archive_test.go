package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// TestHourSignatureOfRows checks the signature the fast path of
// RemoveArchived compares is the same in SQL and over the rows HourRows
// read, so an unchanged hour takes the single range delete.
func TestHourSignatureOfRows(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, filepath.Join(t.TempDir(), "pathstats.db"), Options{})
	t.Cleanup(func() { s.Close() })
	hour := pathstats.HourBucket(time.Now().Add(-72 * time.Hour))
	var a, b pathstats.Counts
	a.Status = [pathstats.NumStatusClasses]int64{1, 20, 3, 4, 5}
	a.Latency[2], a.Latency[9], a.LastSeenMs = 30, 3, hour*1000+99
	b.Status[1], b.Latency[13], b.LastSeenMs = 2, 2, hour*1000+7
	batch := &pathstats.Batch{ID: "seed", Deltas: []pathstats.Delta{
		{Key: pathstats.Key{Hour: hour, Path: "/a", ProxyID: "p"}, Counts: a},
		{Key: pathstats.Key{Hour: hour, Path: "/b", ProxyID: "q"}, Counts: b},
		{Key: pathstats.Key{Hour: hour, Path: "/z", ProxyID: "p"}, Counts: pathstats.Counts{LastSeenMs: hour*1000 + 1}},
		{Key: pathstats.Key{Hour: hour + 3600, Path: "/a", ProxyID: "p"}, Counts: a},
	}}
	if _, err := s.Apply(ctx, []*pathstats.Batch{batch}, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := s.HourRows(ctx, hour)
	if err != nil || len(rows) != 3 {
		t.Fatalf("hour rows: %d rows, %v", len(rows), err)
	}
	var got pathstats.HourSignature
	if err := s.reader.QueryRowContext(ctx, hourSignatureSQL, hour).Scan(got.Dests()...); err != nil {
		t.Fatal(err)
	}
	want := pathstats.SignatureOf(rows)
	if got != want {
		t.Errorf("signature in SQL %+v, of the rows read %+v", got, want)
	}
	if want.Rows != 3 || want.Requests != a.Requests()+b.Requests() || want.Latency != 35 || want.LastSeenMs != hour*1000+99 {
		t.Errorf("signature %+v: wrong sums", want)
	}
}
