package sqlite

import (
	"bytes"
	"container/heap"
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// hourRowsSQL reads one hour's rows in path order: a range of the primary
// key (hour_bucket, path, proxy_id), so no sort. The rows of a path's
// proxies are adjacent and summed by walk.
const hourRowsSQL = `SELECT path, requests, errors
FROM path_stats_hourly
WHERE hour_bucket = ?
ORDER BY path, proxy_id`

// nextHourSQL finds the next hour bucket holding rows (an index seek).
const nextHourSQL = `SELECT MIN(hour_bucket) FROM path_stats_hourly WHERE hour_bucket >= ?`

// EachPathHourly calls fn for every path with requests in hour buckets >=
// fromHour, in path order (byte order), with its hours ascending as
// {hourBucket, requests, errors} summed over proxies. It reads one cursor
// per hour bucket from one read transaction (a consistent snapshot) and
// merges them by path, so it needs no sort and its memory is constant in
// the number of paths; hours is reused between calls and valid only during
// fn. An error from fn stops the walk and is returned.
func (s *StatsStore) EachPathHourly(ctx context.Context, fromHour int64, fn func(path string, hours [][3]int64) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("each path hourly: %w", err)
	}
	defer tx.Rollback()
	m, err := openHourCursors(ctx, tx, fromHour)
	defer m.close()
	if err != nil {
		return err
	}
	return m.walk(fn)
}

// hourCursor is one hour bucket's rows, positioned on a row.
type hourCursor struct {
	hour             int64
	rows             *sql.Rows
	path             []byte // the current row's path (owned copy)
	requests, errors int64
}

// next moves to the next row; ok is false at the end.
func (c *hourCursor) next() (ok bool, err error) {
	if !c.rows.Next() {
		return false, c.rows.Err()
	}
	var raw sql.RawBytes
	if err := c.rows.Scan(&raw, &c.requests, &c.errors); err != nil {
		return false, err
	}
	c.path = append(c.path[:0], raw...)
	return true, nil
}

// hourMerge is a min-heap of hour cursors by (path, hour).
type hourMerge []*hourCursor

func (m hourMerge) Len() int { return len(m) }
func (m hourMerge) Less(i, j int) bool {
	if c := bytes.Compare(m[i].path, m[j].path); c != 0 {
		return c < 0
	}
	return m[i].hour < m[j].hour
}
func (m hourMerge) Swap(i, j int) { m[i], m[j] = m[j], m[i] }
func (m *hourMerge) Push(x any)   { *m = append(*m, x.(*hourCursor)) }
func (m *hourMerge) Pop() any {
	old := *m
	x := old[len(old)-1]
	*m = old[:len(old)-1]
	return x
}

// openHourCursors opens a cursor for every hour bucket >= fromHour with rows
// and positions each on its first row.
func openHourCursors(ctx context.Context, tx *sql.Tx, fromHour int64) (*hourMerge, error) {
	m := &hourMerge{}
	for hour := fromHour; ; hour += 3600 {
		var next sql.NullInt64
		if err := tx.QueryRowContext(ctx, nextHourSQL, hour).Scan(&next); err != nil {
			return m, fmt.Errorf("each path hourly: next hour: %w", err)
		}
		if !next.Valid {
			break
		}
		hour = next.Int64
		rows, err := tx.QueryContext(ctx, hourRowsSQL, hour)
		if err != nil {
			return m, fmt.Errorf("each path hourly: hour %d: %w", hour, err)
		}
		c := &hourCursor{hour: hour, rows: rows}
		ok, err := c.next()
		if err != nil {
			rows.Close()
			return m, fmt.Errorf("each path hourly: hour %d: %w", hour, err)
		}
		if !ok {
			rows.Close()
			continue
		}
		*m = append(*m, c)
	}
	heap.Init(m)
	return m, nil
}

// walk pops the cursors in (path, hour) order and calls fn once per path.
func (m *hourMerge) walk(fn func(path string, hours [][3]int64) error) error {
	var (
		path  []byte
		hours [][3]int64
	)
	for m.Len() > 0 {
		c := (*m)[0]
		if len(hours) > 0 && !bytes.Equal(c.path, path) {
			if err := fn(string(path), hours); err != nil {
				return err
			}
			hours = hours[:0]
		}
		if len(hours) == 0 {
			path = append(path[:0], c.path...)
		}
		switch n := len(hours); {
		case c.requests == 0 && c.errors == 0:
		case n > 0 && hours[n-1][0] == c.hour: // another proxy of the hour
			hours[n-1][1] += c.requests
			hours[n-1][2] += c.errors
		default:
			hours = append(hours, [3]int64{c.hour, c.requests, c.errors})
		}
		ok, err := c.next()
		if err != nil {
			return fmt.Errorf("each path hourly: hour %d: %w", c.hour, err)
		}
		if ok {
			heap.Fix(m, 0)
		} else {
			c.rows.Close()
			heap.Pop(m)
		}
	}
	if len(hours) > 0 {
		return fn(string(path), hours)
	}
	return nil
}

// close closes every cursor still open.
func (m *hourMerge) close() {
	var errs []error
	for _, c := range *m {
		errs = append(errs, c.rows.Close())
	}
	_ = errors.Join(errs...) // read-only cursors: nothing to report
	*m = (*m)[:0]
}
