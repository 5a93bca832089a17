package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats"
)

var _ pathstats.ArchiveStore = (*StatsStore)(nil)

// hoursBeforeSQL lists the hour buckets < $1 holding rows, ascending: a
// recursive skip scan, one primary-key seek per hour instead of a scan of
// the rows.
const hoursBeforeSQL = `WITH RECURSIVE hours(h) AS (
	SELECT MIN(hour_bucket) FROM path_stats_hourly WHERE hour_bucket < $1
	UNION ALL
	SELECT (SELECT MIN(hour_bucket) FROM path_stats_hourly
	        WHERE hour_bucket > hours.h AND hour_bucket < $1)
	FROM hours WHERE hours.h IS NOT NULL
)
SELECT h FROM hours WHERE h IS NOT NULL`

// archiveRowsSQL reads every column of one hour's rows in (path, proxy_id)
// order (byte order, "C" collation): a range of the primary key.
var archiveRowsSQL = `SELECT path, proxy_id, ` + strings.Join(storedCounterColumns, ", ") + `, last_seen_ms, updated_at
FROM path_stats_hourly
WHERE hour_bucket = $1
ORDER BY path, proxy_id`

// signatureList is the select list of an pathstats.HourSignature over rows named h.
var signatureList = `COUNT(*), COALESCE(SUM(h.requests), 0)::bigint, COALESCE(SUM(h.errors), 0)::bigint,
	COALESCE(SUM(` + "h." + strings.Join(storedCounterColumns[pathstats.NumStatusClasses:], " + h.") + `), 0)::bigint,
	COALESCE(MAX(h.last_seen_ms), 0)::bigint, COALESCE(MAX(h.updated_at), 0)::bigint`

// hourSignatureSQL summarises one hour's rows as pathstats.HourSignature does.
var hourSignatureSQL = `SELECT ` + signatureList + ` FROM path_stats_hourly AS h WHERE h.hour_bucket = $1`

// deleteHourSQL deletes one hour's rows, locked first in key order (the
// order Apply locks rows in), and returns the signature of the rows it
// deleted, so a change since hourSignatureSQL read them is seen.
var deleteHourSQL = `WITH locked AS MATERIALIZED (
	SELECT path, proxy_id FROM path_stats_hourly
	WHERE hour_bucket = $1 ORDER BY path, proxy_id FOR UPDATE
), gone AS (
	DELETE FROM path_stats_hourly AS d USING locked AS l
	WHERE d.hour_bucket = $1 AND d.path = l.path AND d.proxy_id = l.proxy_id
	RETURNING d.*
)
SELECT ` + signatureList + ` FROM gone AS h`

// deleteDrainedSQL deletes the given rows of hour $1 left without requests
// (rows the transaction already holds locked).
const deleteDrainedSQL = `DELETE FROM path_stats_hourly AS h
USING unnest($2::text[], $3::text[]) AS u(path, proxy_id)
WHERE h.hour_bucket = $1 AND h.path = u.path AND h.proxy_id = u.proxy_id AND h.requests <= 0`

// HoursBefore lists the hour buckets < beforeHour that hold rows, ascending.
func (s *StatsStore) HoursBefore(ctx context.Context, beforeHour int64) ([]int64, error) {
	rows, err := s.pool.Query(ctx, hoursBeforeSQL, beforeHour)
	if err != nil {
		return nil, fmt.Errorf("hours before %d: %w", beforeHour, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("hours before %d: %w", beforeHour, err)
	}
	return out, nil
}

// HourRows returns every row of one hour bucket in (path, proxyId) order,
// with all counters, LastSeenMs and UpdatedAt (to the second).
func (s *StatsStore) HourRows(ctx context.Context, hour int64) ([]pathstats.HourlyRow, error) {
	rows, err := s.pool.Query(ctx, archiveRowsSQL, hour)
	if err != nil {
		return nil, fmt.Errorf("hour rows %d: %w", hour, err)
	}
	defer rows.Close()
	return pathstats.ScanHourRows(rows, hour)
}

// LedgerHas reports whether id (a batch or part id) is in the ledger.
func (s *StatsStore) LedgerHas(ctx context.Context, id string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM batch_ledger WHERE batch_id = $1)`, id).Scan(&ok); err != nil {
		return false, fmt.Errorf("ledger has %s: %w", id, err)
	}
	return ok, nil
}

// RemoveArchived subtracts rows (one hour's, as read by HourRows) from the
// hourly table in one transaction that records partID in the ledger. When
// the hour still holds exactly the rows given (same row count, sums and
// latest update), its rows are deleted with one statement, which checks the
// rows it deleted and falls back when an Apply changed them meanwhile;
// otherwise each row's counters are subtracted, LastSeenMs is kept, and the
// given rows left without requests are deleted, so growth since the read
// stays. Rows are locked in key order, as Apply locks them. Rows of an hour
// inside the window are refused with pathstats.ErrHourInWindow; no rows only
// records partID. applied is false when partID was already in the ledger
// (nothing done).
func (s *StatsStore) RemoveArchived(ctx context.Context, partID string, rows []pathstats.HourlyRow) (bool, error) {
	return s.archiveTx(ctx, "remove archived", partID, rows, removeRows)
}

// RestoreArchived adds rows (one hour's) to the hourly table, counters added
// and LastSeenMs the max, in one transaction that records partID in the
// ledger. Rows of an hour inside the window are refused with
// pathstats.ErrHourInWindow. applied is false when partID was already in the
// ledger (nothing done).
func (s *StatsStore) RestoreArchived(ctx context.Context, partID string, rows []pathstats.HourlyRow) (bool, error) {
	return s.archiveTx(ctx, "restore archived", partID, rows, restoreRows)
}

// archiveWork changes one hour's rows inside an archive transaction.
type archiveWork func(ctx context.Context, tx pgx.Tx, hour int64, rows []pathstats.HourlyRow, now time.Time) error

// archiveTx runs work in one transaction after recording partID in the
// ledger (a duplicate id commits nothing and returns false) and checking the
// rows' hour is before the window. The window start is read without a lock:
// the window only moves forward, so an hour before it stays before it, and
// Apply never touches the window for such an hour.
func (s *StatsStore) archiveTx(ctx context.Context, op, partID string, rows []pathstats.HourlyRow, work archiveWork) (bool, error) {
	hour, err := pathstats.OneHour(rows)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", op, partID, err)
	}
	if err := s.maybeAdvance(ctx); err != nil {
		return false, fmt.Errorf("%s %s: %w", op, partID, err)
	}
	now := s.now()
	applied := false
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		fresh, err := recordBatches(ctx, tx, []*pathstats.Batch{{ID: partID}}, now)
		if err != nil {
			return err
		}
		if len(fresh) == 0 {
			return nil // a repeat: the ledger insert did nothing
		}
		if len(rows) > 0 {
			if err := refuseWindowHour(ctx, tx, hour, now); err != nil {
				return err
			}
			if err := work(ctx, tx, hour, rows, now); err != nil {
				return err
			}
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", op, partID, err)
	}
	return applied, nil
}

// refuseWindowHour returns an error matching pathstats.ErrHourInWindow when
// hour is at or after the stored window start (the clock's window start when
// the window was never built).
func refuseWindowHour(ctx context.Context, tx pgx.Tx, hour int64, now time.Time) error {
	var start int64
	err := tx.QueryRow(ctx, `SELECT start_hour FROM window_state WHERE id = 1`).Scan(&start)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		start = WindowStart(now)
	case err != nil:
		return fmt.Errorf("read window state: %w", err)
	}
	if hour >= start {
		return fmt.Errorf("hour %d (window starts at %d): %w", hour, start, pathstats.ErrHourInWindow)
	}
	return nil
}

// removeRows deletes the hour's rows at once when it holds exactly rows, and
// subtracts rows from it otherwise (also when the delete finds rows changed
// since the check: it is rolled back to a savepoint).
func removeRows(ctx context.Context, tx pgx.Tx, hour int64, rows []pathstats.HourlyRow, now time.Time) error {
	want := pathstats.SignatureOf(rows)
	var got pathstats.HourSignature
	if err := tx.QueryRow(ctx, hourSignatureSQL, hour).Scan(got.Dests()...); err != nil {
		return fmt.Errorf("hour signature: %w", err)
	}
	if got == want {
		done, err := deleteHour(ctx, tx, hour, want)
		if err != nil || done {
			return err
		}
	}
	return subtractRows(ctx, tx, hour, rows, now)
}

// deleteHour deletes the hour's rows inside a savepoint and keeps the delete
// only if the rows deleted have the signature want.
func deleteHour(ctx context.Context, tx pgx.Tx, hour int64, want pathstats.HourSignature) (bool, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("delete hour: savepoint: %w", err)
	}
	var got pathstats.HourSignature
	if err := sp.QueryRow(ctx, deleteHourSQL, hour).Scan(got.Dests()...); err != nil {
		_ = sp.Rollback(ctx) // the outer transaction fails with err anyway
		return false, fmt.Errorf("delete hour: %w", err)
	}
	if got != want {
		if err := sp.Rollback(ctx); err != nil {
			return false, fmt.Errorf("delete hour: rollback to savepoint: %w", err)
		}
		return false, nil
	}
	if err := sp.Commit(ctx); err != nil {
		return false, fmt.Errorf("delete hour: release savepoint: %w", err)
	}
	return true, nil
}

// subtractRows upserts the negated rows (LastSeenMs kept by the max), then
// deletes the given rows left without requests.
func subtractRows(ctx context.Context, tx pgx.Tx, hour int64, rows []pathstats.HourlyRow, now time.Time) error {
	deltas := pathstats.RowDeltas(rows, true)
	if err := upsertRows(ctx, tx, deltas, now); err != nil {
		return fmt.Errorf("subtract: %w", err)
	}
	paths := make([]string, len(deltas))
	proxies := make([]string, len(deltas))
	for i := range deltas {
		paths[i], proxies[i] = deltas[i].Path, deltas[i].ProxyID
	}
	if _, err := tx.Exec(ctx, deleteDrainedSQL, hour, paths, proxies); err != nil {
		return fmt.Errorf("delete drained rows: %w", err)
	}
	return nil
}

// restoreRows adds rows to the hourly table.
func restoreRows(ctx context.Context, tx pgx.Tx, _ int64, rows []pathstats.HourlyRow, now time.Time) error {
	return upsertRows(ctx, tx, pathstats.RowDeltas(rows, false), now)
}

// copyMinRows is the number of rows from which upsertRows copies them into a
// temporary table first: COPY and one INSERT ... SELECT take about half the
// time of Apply's unnest upsert for a large hour (100,000 rows: 1 s instead
// of 2 s), while small parts are not worth a temporary table.
const copyMinRows = 5_000

// copyColumns are the columns of restoreStagingTable that COPY fills.
var copyColumns = func() []string {
	cols := append([]string{"hour_bucket", "path", "proxy_id"}, sumColumns...)
	return append(cols, "last_seen_ms", "updated_at")
}()

// restoreStagingTable is the temporary table upsertRows copies rows into;
// it is dropped at the end of the transaction.
const restoreStagingTable = "archive_staging"

// copyUpsertSQL adds the staged rows to path_stats_hourly in key order (the
// order Apply locks rows in), as hourlyUpsertSQL adds deltas.
var copyUpsertSQL = `INSERT INTO path_stats_hourly (` + strings.Join(copyColumns, ", ") + `)
SELECT ` + strings.Join(copyColumns, ", ") + ` FROM ` + restoreStagingTable + `
ORDER BY hour_bucket, path, proxy_id
ON CONFLICT (hour_bucket, path, proxy_id) DO UPDATE SET ` + onConflictAdd("path_stats_hourly") +
	`, updated_at = excluded.updated_at`

// upsertRows adds deltas (unique keys, sorted) to the hourly rows: through
// Apply's upsertHourly for a few rows, through COPY into a temporary table
// and one INSERT ... SELECT for many.
func upsertRows(ctx context.Context, tx pgx.Tx, deltas []pathstats.Delta, now time.Time) error {
	if len(deltas) < copyMinRows {
		return upsertHourly(ctx, tx, deltas, now)
	}
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE `+restoreStagingTable+
		` (LIKE path_stats_hourly INCLUDING DEFAULTS) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("upsert hourly: staging table: %w", err)
	}
	updated := now.Unix()
	vals := make([]any, len(copyColumns))
	src := pgx.CopyFromSlice(len(deltas), func(i int) ([]any, error) {
		d := &deltas[i]
		vals[0], vals[1], vals[2] = d.Hour, d.Path, d.ProxyID
		for j, v := range counterValues(&d.Counts) {
			vals[3+j] = v
		}
		vals[3+numSums], vals[4+numSums] = d.LastSeenMs, updated
		return vals, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{restoreStagingTable}, copyColumns, src); err != nil {
		return fmt.Errorf("upsert hourly: copy: %w", err)
	}
	if _, err := tx.Exec(ctx, copyUpsertSQL); err != nil {
		return fmt.Errorf("upsert hourly: %w", err)
	}
	return nil
}
