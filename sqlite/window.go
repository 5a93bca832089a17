package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pathstats/pathstats"
	"modernc.org/sqlite"
)

// The window (path_stats_window) holds, per (path, proxyId), the sum of the
// hourly rows with hour_bucket >= window_state.start_hour, for the rows with
// at least one request. Apply adds deltas of window hours to it in its own
// transaction; advancing subtracts the hours that leave it and deletes the
// rows that drop to zero requests.
//
// last_seen_ms is the max seen over the row's lifetime; it is not lowered
// when an hour leaves. An hourly row's last_seen_ms lies inside its hour, and
// a window row is deleted once its remaining hours hold no request, so the
// value equals the max over the window's hours, as a rebuild computes it.

// foldFunc is the SQL name of foldPath, used when the window is rebuilt.
const foldFunc = "pathstats_lower"

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(foldFunc, 1,
		func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			switch v := args[0].(type) {
			case string:
				return foldPath(v), nil
			case []byte:
				return foldPath(string(v)), nil
			}
			return nil, nil
		})
}

// foldPath is the case folding of the q filter: a path matches q when
// foldPath(path) contains foldPath(q).
func foldPath(s string) string { return strings.ToLower(s) }

// storedFold is the path_fold column of path: NULL when folding changes
// nothing.
func storedFold(path string) any {
	if f := foldPath(path); f != path {
		return f
	}
	return nil
}

// WindowStart returns the first hour bucket of the window at now: the
// buckets >= HourBucket(now - 24h), the current hour and the 24 before it.
func WindowStart(now time.Time) int64 { return pathstats.HourBucket(now.Add(-24 * time.Hour)) }

// rebuildAfter is how many hours may leave the window at once before
// advancing rebuilds it from the hourly rows instead of subtracting them:
// with 100,000 rows an hour, subtracting one hour takes about 0.7 s and a
// rebuild of a full window about 4.5 s.
const rebuildAfter = 6

// deleteEmptySQL deletes the window rows left without requests.
const deleteEmptySQL = `DELETE FROM path_stats_window WHERE requests <= 0`

// AdvanceWindow moves the window forward to WindowStart(now): the hours that
// leave are subtracted, in one transaction on the writer. A window that was
// never built, or that moves by more than rebuildAfter hours, is rebuilt
// from the hourly rows instead. The window never moves back. Apply and the
// reads call it themselves when the store's clock passed an hour.
func (s *StatsStore) AdvanceWindow(ctx context.Context, now time.Time) error {
	target := WindowStart(now)
	s.advanceMu.Lock()
	defer s.advanceMu.Unlock()
	if target <= s.windowStart.Load() {
		return nil
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("advance window: begin: %w", err)
	}
	defer tx.Rollback()
	start, err := advanceTx(ctx, tx, target)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("advance window: commit: %w", err)
	}
	s.noteWindowStart(start)
	return nil
}

// RebuildWindow recomputes the window from the hourly rows at its current
// start (or at WindowStart(now) when it was never built). Use it after the
// hourly rows changed behind Apply's back, for example by a restore.
func (s *StatsStore) RebuildWindow(ctx context.Context) error {
	s.advanceMu.Lock()
	defer s.advanceMu.Unlock()
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rebuild window: begin: %w", err)
	}
	defer tx.Rollback()
	start, ok, err := windowState(ctx, tx)
	if err != nil {
		return err
	}
	if !ok {
		start = WindowStart(s.now())
	}
	if err := rebuildWindow(ctx, tx, start); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rebuild window: commit: %w", err)
	}
	s.noteWindowStart(start)
	return nil
}

// maybeAdvance advances the window when the store's clock says the hour moved
// past the start last seen; a read calls it first, so it never answers from a
// window that still holds an hour that left.
func (s *StatsStore) maybeAdvance(ctx context.Context) error {
	now := s.now()
	if WindowStart(now) <= s.windowStart.Load() {
		return nil
	}
	return s.AdvanceWindow(ctx, now)
}

// noteWindowStart raises the cached window start to start.
func (s *StatsStore) noteWindowStart(start int64) {
	for {
		cur := s.windowStart.Load()
		if start <= cur || s.windowStart.CompareAndSwap(cur, start) {
			return
		}
	}
}

// querier is what windowState needs: a *sql.Tx of either pool.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// windowState reads the window start; ok is false when it was never built.
func windowState(ctx context.Context, q querier) (start int64, ok bool, err error) {
	err = q.QueryRowContext(ctx, `SELECT start_hour FROM window_state WHERE id = 1`).Scan(&start)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read window state: %w", err)
	}
	return start, true, nil
}

// advanceTx moves the window in tx to target if it is behind, and returns the
// window start in effect afterwards.
func advanceTx(ctx context.Context, tx *sql.Tx, target int64) (int64, error) {
	start, ok, err := windowState(ctx, tx)
	if err != nil {
		return 0, err
	}
	switch {
	case ok && start >= target:
		return start, nil
	case !ok || target-start > rebuildAfter*3600:
		return target, rebuildWindow(ctx, tx, target)
	}
	for hour := start; hour < target; hour += 3600 {
		if _, err := tx.ExecContext(ctx, subtractHourSQL, hour); err != nil {
			return 0, fmt.Errorf("advance window: subtract hour %d: %w", hour, err)
		}
	}
	if _, err := tx.ExecContext(ctx, deleteEmptySQL); err != nil {
		return 0, fmt.Errorf("advance window: delete empty rows: %w", err)
	}
	if err := dropEmptyCounts(ctx, tx); err != nil {
		return 0, err
	}
	return target, setWindowStart(ctx, tx, target)
}

// rebuildWindow replaces the window by the sums of the hourly rows from start.
func rebuildWindow(ctx context.Context, tx *sql.Tx, start int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM path_stats_window`); err != nil {
		return fmt.Errorf("rebuild window: clear: %w", err)
	}
	if _, err := tx.ExecContext(ctx, rebuildWindowSQL, start); err != nil {
		return fmt.Errorf("rebuild window: %w", err)
	}
	if err := dropEmptyCounts(ctx, tx); err != nil {
		return err
	}
	return setWindowStart(ctx, tx, start)
}

// dropEmptyCounts deletes the per-proxy counts that dropped to zero.
func dropEmptyCounts(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM window_counts WHERE paths <= 0`); err != nil {
		return fmt.Errorf("window counts: %w", err)
	}
	return nil
}

func setWindowStart(ctx context.Context, tx *sql.Tx, start int64) error {
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO window_state (id, start_hour) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET start_hour = excluded.start_hour`, start); err != nil {
		return fmt.Errorf("set window start: %w", err)
	}
	return nil
}

// windowDeltas merges the deltas of window hours (>= start) that carry
// requests per (path, proxyId), sorted in the window's key order.
func windowDeltas(deltas []pathstats.Delta, start int64) []pathstats.Delta {
	var out []pathstats.Delta
	for i := range deltas {
		if deltas[i].Hour >= start && deltas[i].Requests() > 0 {
			d := deltas[i]
			d.Hour = 0
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b pathstats.Delta) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.ProxyID, b.ProxyID))
	})
	merged := out[:0]
	for i := range out {
		if last := len(merged) - 1; last >= 0 && merged[last].Key == out[i].Key {
			merged[last].Counts.Add(&out[i].Counts)
			continue
		}
		merged = append(merged, out[i])
	}
	return merged
}

// upsertWindow adds deltas (from windowDeltas) to the window rows.
func upsertWindow(ctx context.Context, tx *sql.Tx, deltas []pathstats.Delta) error {
	var full *sql.Stmt
	args := make([]any, 0, min(len(deltas), upsertChunk)*len(windowColumns))
	for start := 0; start < len(deltas); start += upsertChunk {
		chunk := deltas[start:min(start+upsertChunk, len(deltas))]
		args = args[:0]
		for i := range chunk {
			d := &chunk[i]
			args = append(args, d.Path, d.ProxyID, storedFold(d.Path))
			args = appendCounters(args, &d.Counts)
			args = append(args, d.LastSeenMs)
		}
		var err error
		if len(chunk) == upsertChunk {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, windowUpsertSQL(upsertChunk)); err != nil {
					return fmt.Errorf("upsert window: prepare: %w", err)
				}
				defer full.Close()
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, windowUpsertSQL(len(chunk)), args...)
		}
		if err != nil {
			return fmt.Errorf("upsert window: %w", err)
		}
	}
	return nil
}
