package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/pathstats/pathstats"
)

// Row is one archived hourly row as stored in a Parquet part: the hourly
// table's columns, with the hour and the update time as UTC timestamps.
// The hour column is named hour_bucket (as in SQL) so that it does not
// clash with the hour=HH partition column of the layout.
type Row struct {
	HourBucket   time.Time `parquet:"hour_bucket,timestamp(millisecond)"`
	Path         string    `parquet:"path,dict"`
	ProxyID      string    `parquet:"proxy_id,dict"`
	Requests     int64     `parquet:"requests"`
	Errors       int64     `parquet:"errors"`
	ClientErrors int64     `parquet:"client_errors"`
	Status1xx    int64     `parquet:"status_1xx"`
	Status2xx    int64     `parquet:"status_2xx"`
	Status3xx    int64     `parquet:"status_3xx"`
	Status4xx    int64     `parquet:"status_4xx"`
	Status5xx    int64     `parquet:"status_5xx"`
	Lat00        int64     `parquet:"lat_00"`
	Lat01        int64     `parquet:"lat_01"`
	Lat02        int64     `parquet:"lat_02"`
	Lat03        int64     `parquet:"lat_03"`
	Lat04        int64     `parquet:"lat_04"`
	Lat05        int64     `parquet:"lat_05"`
	Lat06        int64     `parquet:"lat_06"`
	Lat07        int64     `parquet:"lat_07"`
	Lat08        int64     `parquet:"lat_08"`
	Lat09        int64     `parquet:"lat_09"`
	Lat10        int64     `parquet:"lat_10"`
	Lat11        int64     `parquet:"lat_11"`
	Lat12        int64     `parquet:"lat_12"`
	Lat13        int64     `parquet:"lat_13"`
	LastSeenMs   int64     `parquet:"last_seen_ms"`
	UpdatedAt    time.Time `parquet:"updated_at,timestamp(millisecond)"`
}

// The Row struct spells out the status classes and latency buckets.
var (
	_ = [1]struct{}{}[pathstats.NumStatusClasses-5]
	_ = [1]struct{}{}[pathstats.NumLatencyBuckets-14]
)

// encodeChunk is the number of rows converted and written at a time.
const encodeChunk = 4096

// toRow fills dst from r.
func toRow(dst *Row, r *pathstats.HourlyRow) {
	c := &r.Counts
	s, l := &c.Status, &c.Latency
	*dst = Row{
		HourBucket: time.Unix(r.Hour, 0).UTC(), Path: r.Path, ProxyID: r.ProxyID,
		Requests: c.Requests(), Errors: c.Errors(), ClientErrors: c.ClientErrors(),
		Status1xx: s[0], Status2xx: s[1], Status3xx: s[2], Status4xx: s[3], Status5xx: s[4],
		Lat00: l[0], Lat01: l[1], Lat02: l[2], Lat03: l[3], Lat04: l[4], Lat05: l[5], Lat06: l[6],
		Lat07: l[7], Lat08: l[8], Lat09: l[9], Lat10: l[10], Lat11: l[11], Lat12: l[12], Lat13: l[13],
		LastSeenMs: c.LastSeenMs, UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// HourlyRow converts a stored row back into an hourly row.
func (x *Row) HourlyRow() pathstats.HourlyRow {
	return pathstats.HourlyRow{
		Key: pathstats.Key{Hour: x.HourBucket.Unix(), Path: x.Path, ProxyID: x.ProxyID},
		Counts: pathstats.Counts{
			Status: [pathstats.NumStatusClasses]int64{x.Status1xx, x.Status2xx, x.Status3xx, x.Status4xx, x.Status5xx},
			Latency: [pathstats.NumLatencyBuckets]int64{x.Lat00, x.Lat01, x.Lat02, x.Lat03, x.Lat04, x.Lat05, x.Lat06,
				x.Lat07, x.Lat08, x.Lat09, x.Lat10, x.Lat11, x.Lat12, x.Lat13},
			LastSeenMs: x.LastSeenMs,
		},
		UpdatedAt: x.UpdatedAt.UTC(),
	}
}

// Totals sums a part's rows.
type Totals struct {
	Rows     int64 `json:"rows"`
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
}

// add counts one row.
func (t *Totals) add(requests, errors int64) {
	t.Rows++
	t.Requests += requests
	t.Errors += errors
}

// totalsOf sums rows.
func totalsOf(rows []pathstats.HourlyRow) Totals {
	var t Totals
	for i := range rows {
		t.add(rows[i].Counts.Requests(), rows[i].Counts.Errors())
	}
	return t
}

// writerOptions are the Parquet writer options of every part. CreatedBy is
// fixed so that the same rows always encode to the same bytes.
func writerOptions() []parquet.WriterOption {
	return []parquet.WriterOption{
		parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault}),
		parquet.CreatedBy("pathstats", "1", ""),
		parquet.KeyValueMetadata("pathstats.format", "hourly/v1"),
	}
}

// EncodeParquet writes rows as one zstd-compressed Parquet file to w,
// converting them a chunk at a time, and returns their totals.
func EncodeParquet(w io.Writer, rows []pathstats.HourlyRow) (Totals, error) {
	pw := parquet.NewGenericWriter[Row](w, writerOptions()...)
	buf := make([]Row, min(len(rows), encodeChunk))
	var t Totals
	for start := 0; start < len(rows); start += len(buf) {
		n := min(len(buf), len(rows)-start)
		for i := range n {
			toRow(&buf[i], &rows[start+i])
			t.add(buf[i].Requests, buf[i].Errors)
		}
		if _, err := pw.Write(buf[:n]); err != nil {
			return Totals{}, fmt.Errorf("encode parquet: %w", err)
		}
	}
	if err := pw.Close(); err != nil {
		return Totals{}, fmt.Errorf("encode parquet: close: %w", err)
	}
	return t, nil
}

// DecodeParquet reads every row of a Parquet part, calling fn for each
// chunk of rows in file order, and returns their totals. A file that is not
// a valid part gives an error.
func DecodeParquet(data []byte, fn func(rows []pathstats.HourlyRow) error) (t Totals, err error) {
	defer func() {
		// parquet-go panics on some malformed inputs; a bad part must be an error.
		if p := recover(); p != nil {
			t, err = Totals{}, fmt.Errorf("decode parquet: %v", p)
		}
	}()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return Totals{}, fmt.Errorf("decode parquet: open: %w", err)
	}
	r := parquet.NewGenericReader[Row](f)
	defer r.Close()
	buf := make([]Row, min(int(f.NumRows()), encodeChunk))
	out := make([]pathstats.HourlyRow, len(buf))
	for len(buf) > 0 {
		n, err := r.Read(buf)
		for i := range n {
			out[i] = buf[i].HourlyRow()
			t.add(buf[i].Requests, buf[i].Errors)
			if buf[i].Requests != out[i].Counts.Requests() || buf[i].Errors != out[i].Counts.Errors() {
				return Totals{}, fmt.Errorf("decode parquet: row %s: requests/errors columns disagree with status columns", buf[i].Path)
			}
		}
		if n > 0 && fn != nil {
			if ferr := fn(out[:n]); ferr != nil {
				return Totals{}, ferr
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Totals{}, fmt.Errorf("decode parquet: read: %w", err)
		}
	}
	if t.Rows != f.NumRows() {
		return Totals{}, fmt.Errorf("decode parquet: read %d rows, file has %d", t.Rows, f.NumRows())
	}
	return t, nil
}

// decodeAll reads every row of a Parquet part.
func decodeAll(data []byte) ([]pathstats.HourlyRow, Totals, error) {
	var rows []pathstats.HourlyRow
	t, err := DecodeParquet(data, func(chunk []pathstats.HourlyRow) error {
		if rows == nil {
			rows = make([]pathstats.HourlyRow, 0, len(chunk))
		}
		rows = append(rows, chunk...)
		return nil
	})
	if err != nil {
		return nil, Totals{}, err
	}
	return rows, t, nil
}
