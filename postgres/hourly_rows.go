package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// hourlyCursorSQL declares the cursor of EachPathHourly: per (path, hour),
// the sums over proxies, in path (byte order, "C" collation) then hour order.
// Hours without requests or errors are left out, as in the SQLite store.
const hourlyCursorSQL = `DECLARE path_hourly NO SCROLL CURSOR FOR
SELECT path, hour_bucket, SUM(requests)::bigint, SUM(errors)::bigint
FROM path_stats_hourly
WHERE hour_bucket >= $1
GROUP BY path, hour_bucket
HAVING SUM(requests) > 0 OR SUM(errors) > 0
ORDER BY path, hour_bucket`

// hourlyFetchSize is how many rows each FETCH of the cursor reads.
const hourlyFetchSize = 10_000

// EachPathHourly calls fn for every path with requests in hour buckets >=
// fromHour, in path order (byte order), with its hours ascending as
// {hourBucket, requests, errors} summed over proxies. It reads a server-side
// cursor in batches of hourlyFetchSize rows from one read-only snapshot, so
// its memory is constant in the number of paths; hours is reused between
// calls and valid only during fn. An error from fn stops the walk and is
// returned as is.
func (s *StatsStore) EachPathHourly(ctx context.Context, fromHour int64, fn func(path string, hours [][3]int64) error) error {
	tx, err := s.pool.BeginTx(ctx, readOnly)
	if err != nil {
		return fmt.Errorf("each path hourly: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // read-only: nothing to undo
	// The whole result is read: plan for total time (a scan and a sort),
	// not for the first rows (an index walk with random heap reads).
	if _, err := tx.Exec(ctx, `SET LOCAL cursor_tuple_fraction = 1.0`); err != nil {
		return fmt.Errorf("each path hourly: %w", err)
	}
	if _, err := tx.Exec(ctx, hourlyCursorSQL, fromHour); err != nil {
		return fmt.Errorf("each path hourly: declare: %w", err)
	}
	g := pathGrouper{fn: fn}
	for {
		n, err := g.fetch(ctx, tx)
		if err != nil {
			return err
		}
		if n < hourlyFetchSize {
			return g.flush()
		}
	}
}

// pathGrouper gathers consecutive cursor rows of one path and hands them to
// fn when the path changes.
type pathGrouper struct {
	fn    func(path string, hours [][3]int64) error
	path  string
	hours [][3]int64
}

// fetch reads the next batch of the cursor and returns how many rows it held.
// An error from fn is returned unwrapped.
func (g *pathGrouper) fetch(ctx context.Context, tx pgx.Tx) (int, error) {
	rows, err := tx.Query(ctx, fmt.Sprintf("FETCH FORWARD %d FROM path_hourly", hourlyFetchSize))
	if err != nil {
		return 0, fmt.Errorf("each path hourly: fetch: %w", err)
	}
	defer rows.Close()
	n := 0
	var raw []byte
	var h [3]int64
	for rows.Next() {
		if err := rows.Scan(&raw, &h[0], &h[1], &h[2]); err != nil {
			return n, fmt.Errorf("each path hourly: scan: %w", err)
		}
		n++
		if err := g.add(raw, h); err != nil {
			return n, err
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("each path hourly: fetch: %w", err)
	}
	return n, nil
}

// add appends one (path, hour) row, first flushing the previous path when
// path differs.
func (g *pathGrouper) add(path []byte, h [3]int64) error {
	if len(g.hours) > 0 && string(path) != g.path {
		if err := g.flush(); err != nil {
			return err
		}
	}
	if len(g.hours) == 0 {
		g.path = string(path)
	}
	g.hours = append(g.hours, h)
	return nil
}

// flush calls fn for the path gathered so far, if any.
func (g *pathGrouper) flush() error {
	if len(g.hours) == 0 {
		return nil
	}
	err := g.fn(g.path, g.hours)
	g.hours = g.hours[:0]
	return err
}
