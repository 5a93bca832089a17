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

// ScanHourlyRow reads one row of an hour as the SQL backends select it for
// the archive: path, proxy_id, the counters (CounterDests), updated_at
// (unix seconds).
func ScanHourlyRow(row RowScanner, hour int64) (HourlyRow, error) {
	r := HourlyRow{Key: Key{Hour: hour}}
	var updated int64
	dests := append([]any{&r.Path, &r.ProxyID}, CounterDests(&r.Counts)...)
	if err := row.Scan(append(dests, &updated)...); err != nil {
		return r, fmt.Errorf("hour rows %d: scan: %w", hour, err)
	}
	r.UpdatedAt = time.Unix(updated, 0).UTC()
	return r, nil
}

// ScanConfigChange reads one migration history row: id, at (unix ms), actor,
// source, reason, before and after (JSON).
func ScanConfigChange(row RowScanner) (ConfigChange, error) {
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
