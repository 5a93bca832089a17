package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pathstats/pathstats/internal/hourmerge"
)

// hourRowsSQL reads one hour's rows in path order: a range of the primary
// key (hour_bucket, path, proxy_id), so no sort. The rows of a path's
// proxies are adjacent and summed by walk.
const hourRowsSQL = `SELECT path, requests, errors, last_seen_ms
FROM path_stats_hourly
WHERE hour_bucket = ?
ORDER BY path, proxy_id`

// nextHourSQL finds the next hour bucket holding rows (an index seek).
const nextHourSQL = `SELECT MIN(hour_bucket) FROM path_stats_hourly WHERE hour_bucket >= ?`

// EachPathHourly calls fn for every path with requests in hour buckets >=
// fromHour, in path order (byte order), with its hours ascending as
// {hourBucket, requests, errors} summed over proxies and lastSeenMs the
// latest event of those hours (unix milliseconds). It reads one cursor
// per hour bucket from one read transaction (a consistent snapshot) and
// merges them by path, so it needs no sort and its memory is constant in
// the number of paths; hours is reused between calls and valid only during
// fn. An error from fn stops the walk and is returned.
func (s *StatsStore) EachPathHourly(ctx context.Context, fromHour int64, fn func(path string, lastSeenMs int64, hours [][3]int64) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("each path hourly: %w", err)
	}
	defer tx.Rollback()
	hours, err := openHourCursors(ctx, tx, fromHour)
	defer closeHourCursors(hours)
	if err != nil {
		return err
	}
	return hourmerge.Walk(hours, fn)
}

// hourCursor is one hour bucket's rows (a hourmerge.Cursor).
type hourCursor struct {
	hour                         int64
	rows                         *sql.Rows
	path                         []byte // the current row's path (owned copy)
	requests, errors, lastSeenMs int64
}

// Next moves to the next row; false at the end.
func (c *hourCursor) Next() (bool, error) {
	if !c.rows.Next() {
		if err := c.rows.Err(); err != nil {
			return false, fmt.Errorf("each path hourly: hour %d: %w", c.hour, err)
		}
		return false, nil
	}
	var raw sql.RawBytes
	if err := c.rows.Scan(&raw, &c.requests, &c.errors, &c.lastSeenMs); err != nil {
		return false, fmt.Errorf("each path hourly: hour %d: %w", c.hour, err)
	}
	c.path = append(c.path[:0], raw...)
	return true, nil
}

// Row returns the current row.
func (c *hourCursor) Row() ([]byte, int64, int64, int64) {
	return c.path, c.requests, c.errors, c.lastSeenMs
}

// openHourCursors opens a cursor for every hour bucket >= fromHour with
// rows, in hour order.
func openHourCursors(ctx context.Context, tx *sql.Tx, fromHour int64) ([]hourmerge.Hour, error) {
	var out []hourmerge.Hour
	for hour := fromHour; ; hour += 3600 {
		var next sql.NullInt64
		if err := tx.QueryRowContext(ctx, nextHourSQL, hour).Scan(&next); err != nil {
			return out, fmt.Errorf("each path hourly: next hour: %w", err)
		}
		if !next.Valid {
			return out, nil
		}
		hour = next.Int64
		rows, err := tx.QueryContext(ctx, hourRowsSQL, hour)
		if err != nil {
			return out, fmt.Errorf("each path hourly: hour %d: %w", hour, err)
		}
		out = append(out, hourmerge.Hour{Bucket: hour, Cursor: &hourCursor{hour: hour, rows: rows}})
	}
}

// closeHourCursors closes the cursors (read-only: nothing to report).
func closeHourCursors(hours []hourmerge.Hour) {
	for _, h := range hours {
		_ = h.Cursor.(*hourCursor).rows.Close()
	}
}
