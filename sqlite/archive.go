package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/pathstats/pathstats"
)

var _ pathstats.ArchiveStore = (*StatsStore)(nil)

// hoursBeforeSQL lists the hour buckets < ?1 holding rows, ascending: a
// recursive skip scan, one primary-key seek per hour instead of a scan of
// the rows.
const hoursBeforeSQL = `WITH RECURSIVE hours(h) AS (
	SELECT MIN(hour_bucket) FROM path_stats_hourly WHERE hour_bucket < ?1
	UNION ALL
	SELECT (SELECT MIN(hour_bucket) FROM path_stats_hourly
	        WHERE hour_bucket > hours.h AND hour_bucket < ?1)
	FROM hours WHERE hours.h IS NOT NULL
)
SELECT h FROM hours WHERE h IS NOT NULL`

// archiveRowsSQL reads every column of one hour's rows in (path, proxy_id)
// order: a range of the primary key, so no sort.
var archiveRowsSQL = `SELECT path, proxy_id, ` + strings.Join(storedCounterColumns, ", ") + `, last_seen_ms, updated_at
FROM path_stats_hourly
WHERE hour_bucket = ?
ORDER BY path, proxy_id`

// hourSignatureSQL summarises one hour's rows as pathstats.HourSignature does.
var hourSignatureSQL = `SELECT COUNT(*), ifnull(SUM(requests), 0), ifnull(SUM(errors), 0),
	ifnull(SUM(` + strings.Join(storedCounterColumns[pathstats.NumStatusClasses:], " + ") + `), 0),
	ifnull(MAX(last_seen_ms), 0), ifnull(MAX(updated_at), 0)
FROM path_stats_hourly
WHERE hour_bucket = ?`

// deleteDrainedSQL deletes one row left without requests by a subtraction.
const deleteDrainedSQL = `DELETE FROM path_stats_hourly
WHERE hour_bucket = ? AND path = ? AND proxy_id = ? AND requests <= 0`

// HoursBefore lists the hour buckets < beforeHour that hold rows, ascending.
func (s *StatsStore) HoursBefore(ctx context.Context, beforeHour int64) ([]int64, error) {
	rows, err := s.reader.QueryContext(ctx, hoursBeforeSQL, beforeHour)
	if err != nil {
		return nil, fmt.Errorf("hours before %d: %w", beforeHour, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("hours before %d: scan: %w", beforeHour, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hours before %d: %w", beforeHour, err)
	}
	return out, nil
}

// HourRows returns every row of one hour bucket in (path, proxyId) order,
// with all counters, LastSeenMs and UpdatedAt (to the second).
func (s *StatsStore) HourRows(ctx context.Context, hour int64) ([]pathstats.HourlyRow, error) {
	rows, err := s.reader.QueryContext(ctx, archiveRowsSQL, hour)
	if err != nil {
		return nil, fmt.Errorf("hour rows %d: %w", hour, err)
	}
	defer rows.Close()
	return pathstats.ScanHourRows(rows, hour)
}

// LedgerHas reports whether id (a batch or part id) is in the ledger.
func (s *StatsStore) LedgerHas(ctx context.Context, id string) (bool, error) {
	var ok bool
	if err := s.reader.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM batch_ledger WHERE batch_id = ?)`, id).Scan(&ok); err != nil {
		return false, fmt.Errorf("ledger has %s: %w", id, err)
	}
	return ok, nil
}

// RemoveArchived subtracts rows (one hour's, as read by HourRows) from the
// hourly table in one writer transaction that records partID in the ledger.
// When the hour still holds exactly the rows given (same row count, sums and
// latest update), the hour is deleted with one range delete; otherwise each
// row's counters are subtracted, LastSeenMs is kept, and the given rows left
// without requests are deleted, so growth since the read stays. Rows of an
// hour inside the window are refused with pathstats.ErrHourInWindow; no rows
// only records partID. applied is false when partID was already in the
// ledger (nothing done).
func (s *StatsStore) RemoveArchived(ctx context.Context, partID string, rows []pathstats.HourlyRow) (bool, error) {
	return s.archiveTx(ctx, "remove archived", partID, rows, removeRows)
}

// RestoreArchived adds rows (one hour's) to the hourly table, counters added
// and LastSeenMs the max, in one writer transaction that records partID in
// the ledger. Rows of an hour inside the window are refused with
// pathstats.ErrHourInWindow. applied is false when partID was already in the
// ledger (nothing done).
func (s *StatsStore) RestoreArchived(ctx context.Context, partID string, rows []pathstats.HourlyRow) (bool, error) {
	return s.archiveTx(ctx, "restore archived", partID, rows, restoreRows)
}

// archiveWork changes one hour's rows inside an archive transaction.
type archiveWork func(ctx context.Context, tx *sql.Tx, hour int64, rows []pathstats.HourlyRow, now time.Time) error

// archiveTx runs work in one writer transaction after recording partID in
// the ledger (a duplicate id commits nothing and returns false) and checking
// the rows' hour is before the window.
func (s *StatsStore) archiveTx(ctx context.Context, op, partID string, rows []pathstats.HourlyRow, work archiveWork) (bool, error) {
	hour, err := pathstats.OneHour(rows)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", op, partID, err)
	}
	if err := s.maybeAdvance(ctx); err != nil {
		return false, fmt.Errorf("%s %s: %w", op, partID, err)
	}
	now := s.now()
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("%s %s: begin: %w", op, partID, err)
	}
	defer tx.Rollback()
	fresh, err := recordBatches(ctx, tx, []*pathstats.Batch{{ID: partID}}, now)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", op, partID, err)
	}
	if len(fresh) == 0 {
		return false, nil
	}
	if len(rows) > 0 {
		if err := refuseWindowHour(ctx, tx, hour, now); err != nil {
			return false, fmt.Errorf("%s %s: %w", op, partID, err)
		}
		if err := work(ctx, tx, hour, rows, now); err != nil {
			return false, fmt.Errorf("%s %s: %w", op, partID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("%s %s: commit: %w", op, partID, err)
	}
	return true, nil
}

// refuseWindowHour returns an error matching pathstats.ErrHourInWindow when
// hour is at or after the window start stored in tx (the clock's window
// start when the window was never built).
func refuseWindowHour(ctx context.Context, tx *sql.Tx, hour int64, now time.Time) error {
	start, ok, err := windowState(ctx, tx)
	if err != nil {
		return err
	}
	if !ok {
		start = WindowStart(now)
	}
	if hour >= start {
		return fmt.Errorf("hour %d (window starts at %d): %w", hour, start, pathstats.ErrHourInWindow)
	}
	return nil
}

// removeRows deletes the hour at once when it holds exactly rows, and
// subtracts rows from it otherwise.
func removeRows(ctx context.Context, tx *sql.Tx, hour int64, rows []pathstats.HourlyRow, now time.Time) error {
	var got pathstats.HourSignature
	if err := tx.QueryRowContext(ctx, hourSignatureSQL, hour).Scan(got.Dests()...); err != nil {
		return fmt.Errorf("hour signature: %w", err)
	}
	if got == pathstats.SignatureOf(rows) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM path_stats_hourly WHERE hour_bucket = ?`, hour); err != nil {
			return fmt.Errorf("delete hour: %w", err)
		}
		return nil
	}
	return subtractRows(ctx, tx, hour, rows, now)
}

// subtractRows upserts the negated rows (LastSeenMs kept by the max), then
// deletes the given rows left without requests.
func subtractRows(ctx context.Context, tx *sql.Tx, hour int64, rows []pathstats.HourlyRow, now time.Time) error {
	deltas := pathstats.RowDeltas(rows, true)
	if err := upsertHourly(ctx, tx, deltas, now); err != nil {
		return fmt.Errorf("subtract: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, deleteDrainedSQL)
	if err != nil {
		return fmt.Errorf("delete drained rows: prepare: %w", err)
	}
	defer stmt.Close()
	for i := range deltas {
		if _, err := stmt.ExecContext(ctx, hour, deltas[i].Path, deltas[i].ProxyID); err != nil {
			return fmt.Errorf("delete drained rows: %w", err)
		}
	}
	return nil
}

// restoreRows adds rows to the hourly table.
func restoreRows(ctx context.Context, tx *sql.Tx, _ int64, rows []pathstats.HourlyRow, now time.Time) error {
	return upsertHourly(ctx, tx, pathstats.RowDeltas(rows, false), now)
}
