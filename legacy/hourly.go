package legacy

import (
	"context"
	"database/sql"
	"fmt"
)

// EachPathHourly flushes the live state, then calls fn for every stored
// instance with hourly requests at or after fromHour, in path order (byte
// order), with its lastAccessed (unix milliseconds of its latest event) and
// its hours ascending as {hourBucket, requests, errors}. It
// reads one row at a time from one read transaction (a consistent
// snapshot), so memory stays constant; hours is reused between calls and
// valid only during fn. An error from fn stops the walk and is returned.
func (s *System) EachPathHourly(ctx context.Context, fromHour int64, fn func(path string, lastAccessedMs int64, hours [][3]int64) error) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.settle(ctx); err != nil {
		return err
	}
	tx, err := s.store.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("legacy hourly: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT path, last_accessed, hourly FROM instances ORDER BY path`)
	if err != nil {
		return fmt.Errorf("legacy hourly: %w", err)
	}
	defer rows.Close()
	var (
		path   string
		last   int64
		hourly sql.RawBytes
		hours  [][3]int64
	)
	for rows.Next() {
		if err := rows.Scan(&path, &last, &hourly); err != nil {
			return fmt.Errorf("legacy hourly: scan: %w", err)
		}
		if hours, err = hoursFrom(hours[:0], hourly, fromHour); err != nil {
			return fmt.Errorf("legacy hourly %s: %w", path, err)
		}
		if len(hours) == 0 {
			continue
		}
		if err := fn(path, last, hours); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("legacy hourly: %w", err)
	}
	return nil
}

// hoursFrom appends the hours >= fromHour with requests of an hourly blob.
func hoursFrom(dst [][3]int64, blob []byte, fromHour int64) ([][3]int64, error) {
	r := newHourlyReader(blob)
	for {
		h, ok := r.next()
		if !ok {
			return dst, r.err
		}
		if h.hour >= fromHour && h.requests > 0 {
			dst = append(dst, [3]int64{h.hour, h.requests, h.errors})
		}
	}
}
