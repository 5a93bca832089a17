package archive

import (
	"bytes"
	"testing"

	"github.com/pathstats/pathstats"
)

// hourRows converts deltas into hourly rows.
func hourRows(ds []pathstats.Delta) []pathstats.HourlyRow {
	rows := make([]pathstats.HourlyRow, len(ds))
	for i, d := range ds {
		rows[i] = pathstats.HourlyRow{Key: d.Key, Counts: d.Counts}
	}
	return rows
}

func TestParquetRoundTripDeterministic(t *testing.T) {
	// More rows than one encode chunk, so chunking is exercised.
	rows := hourRows(seedRows(1_700_000_000-1_700_000_000%3600, encodeChunk*2+17, 3))
	var a, b bytes.Buffer
	ta, err := EncodeParquet(&a, rows)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EncodeParquet(&b, rows); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same rows encoded to different bytes: part ids would not be reproducible")
	}
	if want := totalsOf(rows); ta != want {
		t.Fatalf("encode totals %+v, want %+v", ta, want)
	}
	got, td, err := decodeAll(a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if td != ta {
		t.Fatalf("decode totals %+v, want %+v", td, ta)
	}
	if err := sameCounts(got, rows); err != nil {
		t.Fatal(err)
	}
}

func TestParquetEmpty(t *testing.T) {
	var buf bytes.Buffer
	if _, err := EncodeParquet(&buf, nil); err != nil {
		t.Fatal(err)
	}
	rows, tot, err := decodeAll(buf.Bytes())
	if err != nil || len(rows) != 0 || tot != (Totals{}) {
		t.Fatalf("decode empty = %d rows, %+v, %v", len(rows), tot, err)
	}
}

func TestParquetCorrupt(t *testing.T) {
	var buf bytes.Buffer
	if _, err := EncodeParquet(&buf, hourRows(seedRows(3600*500000, 50, 0))); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"truncated": data[:len(data)/2],
		"garbage":   bytes.Repeat([]byte("PAR1"), 10),
	} {
		if _, err := DecodeParquet(bad, nil); err == nil {
			t.Fatalf("%s: decoded without error", name)
		}
	}
}

func FuzzDecodeParquet(f *testing.F) {
	var buf bytes.Buffer
	if _, err := EncodeParquet(&buf, hourRows(seedRows(3600*500000, 5, 0))); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("PAR1PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Must not panic; errors are fine.
		_, _ = DecodeParquet(data, nil)
	})
}

func TestLayoutKeys(t *testing.T) {
	hour := int64(1_767_323_000 - 1_767_323_000%3600) // 2026-01-02 03:00 UTC
	if got, want := ManifestKey(hour), "manifests/date=2026-01-02/hour=03.json"; got != want {
		t.Fatalf("manifest key %s, want %s", got, want)
	}
	if got, want := PartKey(hour, "x"), "hourly/date=2026-01-02/hour=03/part-x.parquet"; got != want {
		t.Fatalf("part key %s, want %s", got, want)
	}
	for _, prefix := range []string{manifestsPrefix, holdsPrefix} {
		key := prefix + hourDir(hour) + ".json"
		if h, ok := parseHourKey(prefix, key); !ok || h != hour {
			t.Fatalf("parse %s = %d, %v", key, h, ok)
		}
	}
	for _, key := range []string{"manifests/date=2026-01-02/hour=03.json.tmp", "manifests/x.json", "holds/date=2026-01-02/hour=03.json"} {
		if _, ok := parseHourKey(manifestsPrefix, key); ok {
			t.Fatalf("parsed %s as a manifest key", key)
		}
	}
}
