package pathstats

import (
	"encoding/json"
	"fmt"
	"time"
)

// RowScanner is a SQL result row of either driver (database/sql, pgx).
type RowScanner interface {
	Scan(dest ...any) error
}

// Rows is a SQL result set of either driver, positioned by Next.
type Rows interface {
	RowScanner
	Next() bool
	Err() error
}

// collectRows reads every row of rows with scan (never nil); an error of the
// result set is wrapped with what.
func collectRows[T any](rows Rows, what string, scan func(RowScanner) (T, error)) ([]T, error) {
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// CounterDests returns scan destinations for the stored status and latency
// columns of c (in that order), then LastSeenMs: the column order both SQL
// backends store counters in.
func CounterDests(c *Counts) []any {
	dests := make([]any, 0, NumStatusClasses+NumLatencyBuckets+1)
	for i := range c.Status {
		dests = append(dests, &c.Status[i])
	}
	for i := range c.Latency {
		dests = append(dests, &c.Latency[i])
	}
	return append(dests, &c.LastSeenMs)
}

// ScanHourRows reads every row of one hour as the SQL backends select it for
// the archive: path, proxy_id, the counters (CounterDests), updated_at
// (unix seconds).
func ScanHourRows(rows Rows, hour int64) ([]HourlyRow, error) {
	return collectRows(rows, fmt.Sprintf("hour rows %d", hour), func(r RowScanner) (HourlyRow, error) {
		return scanHourlyRow(r, hour)
	})
}

// scanHourlyRow reads one row of ScanHourRows.
func scanHourlyRow(row RowScanner, hour int64) (HourlyRow, error) {
	r := HourlyRow{Key: Key{Hour: hour}}
	var updated int64
	dests := append([]any{&r.Path, &r.ProxyID}, CounterDests(&r.Counts)...)
	if err := row.Scan(append(dests, &updated)...); err != nil {
		return r, fmt.Errorf("hour rows %d: scan: %w", hour, err)
	}
	r.UpdatedAt = time.Unix(updated, 0).UTC()
	return r, nil
}

// ScanConfigChanges reads every migration history row of rows: id, at
// (unix ms), actor, source, reason, before and after (JSON).
func ScanConfigChanges(rows Rows) ([]ConfigChange, error) {
	return collectRows(rows, "config changes", scanConfigChange)
}

// scanConfigChange reads one row of ScanConfigChanges.
func scanConfigChange(row RowScanner) (ConfigChange, error) {
	var c ConfigChange
	var atMs int64
	var before, after string
	if err := row.Scan(&c.ID, &atMs, &c.Actor, &c.Source, &c.Reason, &before, &after); err != nil {
		return c, fmt.Errorf("config changes: scan: %w", err)
	}
	c.At = time.UnixMilli(atMs).UTC()
	if err := json.Unmarshal([]byte(before), &c.Before); err != nil {
		return c, fmt.Errorf("config changes: decode before of %d: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(after), &c.After); err != nil {
		return c, fmt.Errorf("config changes: decode after of %d: %w", c.ID, err)
	}
	return c, nil
}
