package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats"
)

// The window (path_stats_window) holds, per (path, proxyId), the sum of the
// hourly rows with hour_bucket >= window_state.start_hour, for the rows with
// at least one request. Apply adds the deltas of window hours while holding
// the window_state row shared; advancing holds it exclusively (after an
// advisory lock, so one node advances at a time), subtracts the hours that
// leave and deletes the rows left without requests. last_seen_ms is the max
// over the row's lifetime, as in the SQLite store.

// advanceLockKey is the advisory lock serialising window moves of all nodes.
const advanceLockKey = 0x70617468_77696e64 // "pathwind"

// foldPath is the case folding of the q filter: a path matches q when
// foldPath(path) contains foldPath(q).
func foldPath(s string) string { return strings.ToLower(s) }

// WindowStart returns the first hour bucket of the window at now: the
// buckets >= HourBucket(now - 24h).
func WindowStart(now time.Time) int64 { return pathstats.HourBucket(now.Add(-24 * time.Hour)) }

// rebuildAfter is how many hours may leave the window at once before
// advancing rebuilds it from the hourly rows instead of subtracting them.
const rebuildAfter = 6

// AdvanceWindow moves the window forward to WindowStart(now) in one
// transaction: the hours that leave are subtracted; a window never built, or
// moving by more than rebuildAfter hours, is rebuilt from the hourly rows.
// The window never moves back. Apply and the reads call it themselves when
// the store's clock passed an hour.
func (s *StatsStore) AdvanceWindow(ctx context.Context, now time.Time) error {
	target := WindowStart(now)
	s.advanceMu.Lock()
	defer s.advanceMu.Unlock()
	if target <= s.windowStart.Load() {
		return nil
	}
	var start int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		start, err = advanceTx(ctx, tx, target)
		return err
	})
	if err != nil {
		return fmt.Errorf("advance window: %w", err)
	}
	s.noteWindowStart(start)
	return nil
}

// maybeAdvance advances the window when the store's clock says the hour moved
// past the start last seen.
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

// advanceTx moves the window in tx to target if it is behind, and returns the
// window start in effect afterwards.
func advanceTx(ctx context.Context, tx pgx.Tx, target int64) (int64, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1), `+markWindowWriter, int64(advanceLockKey)); err != nil {
		return 0, fmt.Errorf("lock: %w", err)
	}
	var start int64
	err := tx.QueryRow(ctx, `SELECT start_hour FROM window_state WHERE id = 1 FOR UPDATE`).Scan(&start)
	ok := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("read window state: %w", err)
	}
	switch {
	case ok && start >= target:
		return start, nil
	case !ok || target-start > rebuildAfter*3600:
		return target, rebuildWindow(ctx, tx, target)
	}
	if _, err := tx.Exec(ctx, subtractHoursSQL, start, target); err != nil {
		return 0, fmt.Errorf("subtract hours: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM path_stats_window WHERE requests <= 0`); err != nil {
		return 0, fmt.Errorf("delete empty rows: %w", err)
	}
	if err := recount(ctx, tx); err != nil {
		return 0, err
	}
	return target, setWindowStart(ctx, tx, target)
}

// rebuildWindow replaces the window by the sums of the hourly rows from
// start, then stores the folded paths (computed in Go, as the q filter
// folds).
func rebuildWindow(ctx context.Context, tx pgx.Tx, start int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM path_stats_window`); err != nil {
		return fmt.Errorf("rebuild: clear: %w", err)
	}
	if _, err := tx.Exec(ctx, rebuildWindowSQL, start); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := foldWindowPaths(ctx, tx); err != nil {
		return err
	}
	if err := recount(ctx, tx); err != nil {
		return err
	}
	return setWindowStart(ctx, tx, start)
}

// foldWindowPaths sets path_fold on the window rows whose path changes when
// folded.
func foldWindowPaths(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT DISTINCT path FROM path_stats_window`)
	if err != nil {
		return fmt.Errorf("rebuild: read paths: %w", err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("rebuild: read paths: %w", err)
	}
	var paths, folds []string
	for _, p := range all {
		if f := foldPath(p); f != p {
			paths, folds = append(paths, p), append(folds, f)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE path_stats_window AS w SET path_fold = f.fold
		FROM unnest($1::text[], $2::text[]) AS f(path, fold) WHERE w.path = f.path`, paths, folds); err != nil {
		return fmt.Errorf("rebuild: fold paths: %w", err)
	}
	return nil
}

func setWindowStart(ctx context.Context, tx pgx.Tx, start int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO window_state (id, start_hour) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET start_hour = excluded.start_hour`, start); err != nil {
		return fmt.Errorf("set window start: %w", err)
	}
	return nil
}

// sumsOf is "SUM(c)::bigint, …" over sumColumns.
func sumsOf() string {
	sums := make([]string, len(sumColumns))
	for i, c := range sumColumns {
		sums[i] = "SUM(" + c + ")::bigint"
	}
	return strings.Join(sums, ", ")
}

// subtractHoursSQL subtracts the hourly rows with $1 <= hour_bucket < $2
// from the window rows.
var subtractHoursSQL = func() string {
	sets := make([]string, len(sumColumns))
	for i, c := range sumColumns {
		sets[i] = fmt.Sprintf("%s = w.%s - h.%s", c, c, c)
	}
	return `UPDATE path_stats_window AS w SET ` + strings.Join(sets, ", ") + `
FROM (SELECT path, proxy_id, ` + sumsOf() + `
      FROM path_stats_hourly WHERE hour_bucket >= $1 AND hour_bucket < $2
      GROUP BY path, proxy_id) AS h(path, proxy_id, ` + strings.Join(sumColumns, ", ") + `)
WHERE w.path = h.path AND w.proxy_id = h.proxy_id`
}()

// rebuildWindowSQL fills the (empty) window with the sums of the hourly rows
// with hour_bucket >= $1.
var rebuildWindowSQL = `INSERT INTO path_stats_window (path, proxy_id, ` + strings.Join(sumColumns, ", ") + `, last_seen_ms)
SELECT path, proxy_id, ` + sumsOf() + `, MAX(last_seen_ms)
FROM path_stats_hourly
WHERE hour_bucket >= $1
GROUP BY path, proxy_id
HAVING SUM(requests) > 0`

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
	slices.SortFunc(out, func(a, b pathstats.Delta) int { return compareWindowKey(a, b.Key) })
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

// upsertWindow adds deltas (from windowDeltas) to the window rows, then
// moves the rows it changed (or inserted) to their new rank buckets.
func upsertWindow(ctx context.Context, tx pgx.Tx, deltas []pathstats.Delta) error {
	if len(deltas) == 0 {
		return nil
	}
	var c columnar
	for i := range deltas {
		c.add(&deltas[i], false)
	}
	rows, err := tx.Query(ctx, windowUpsertSQL, c.args(false, 0)...)
	if err != nil {
		return fmt.Errorf("upsert window: %w", err)
	}
	var moves rankMoves
	var path, proxy string
	var requests int64
	var inserted bool
	_, err = pgx.ForEachRow(rows, []any{&path, &proxy, &requests, &inserted}, func() error {
		i, found := slices.BinarySearchFunc(deltas, pathstats.Key{Path: path, ProxyID: proxy}, compareWindowKey)
		if !found {
			return fmt.Errorf("row %q of proxy %q was not in the batch", path, proxy)
		}
		moves.move(proxy, requests-deltas[i].Requests(), requests, inserted)
		return nil
	})
	if err != nil {
		return fmt.Errorf("upsert window: %w", err)
	}
	return moves.write(ctx, tx)
}

// compareWindowKey orders window deltas by (path, proxyId), as windowDeltas
// sorts them.
func compareWindowKey(d pathstats.Delta, k pathstats.Key) int {
	return cmp.Or(strings.Compare(d.Path, k.Path), strings.Compare(d.ProxyID, k.ProxyID))
}
