package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pathstats/pathstats"
)

// sumList is "SUM(status_1xx), …, SUM(lat_13)". The stored requests, errors
// and client_errors derive from the status classes, so PathTotals derives
// them too instead of summing three more columns.
var sumList = func() string {
	parts := make([]string, len(storedCounterColumns))
	for i, c := range storedCounterColumns {
		parts[i] = "SUM(" + c + ")"
	}
	return strings.Join(parts, ", ")
}()

var pathTotalsSQL = `SELECT path, proxy_id, ` + sumList + `, MAX(last_seen_ms), MAX(updated_at)
FROM path_stats_hourly
WHERE hour_bucket >= ? AND hour_bucket < ?
GROUP BY path, proxy_id
ORDER BY path, proxy_id`

var hourlySeriesSQL = `SELECT hour_bucket, proxy_id, ` + strings.Join(storedCounterColumns, ", ") + `, last_seen_ms, updated_at
FROM path_stats_hourly
WHERE path = ? AND hour_bucket >= ? AND hour_bucket < ?
ORDER BY hour_bucket, proxy_id`

// PathTotals sums the rows with fromHour <= hour_bucket < toHour per
// (path, proxyId), ordered by path then proxyId.
func (s *StatsStore) PathTotals(ctx context.Context, fromHour, toHour int64) ([]pathstats.PathTotal, error) {
	rows, err := s.reader.QueryContext(ctx, pathTotalsSQL, fromHour, toHour)
	if err != nil {
		return nil, fmt.Errorf("path totals: %w", err)
	}
	defer rows.Close()
	var out []pathstats.PathTotal
	for rows.Next() {
		var t pathstats.PathTotal
		var updated int64
		dests := append([]any{&t.Path, &t.ProxyID}, pathstats.CounterDests(&t.Counts)...)
		if err := rows.Scan(append(dests, &updated)...); err != nil {
			return nil, fmt.Errorf("path totals: scan: %w", err)
		}
		t.Requests, t.Errors, t.ClientErrors = t.Counts.Requests(), t.Counts.Errors(), t.Counts.ClientErrors()
		t.UpdatedAt = time.Unix(updated, 0).UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("path totals: %w", err)
	}
	return out, nil
}

// HourlySeries returns the rows of path (every proxy) with
// fromHour <= hour_bucket < toHour, ordered by hour then proxyId.
func (s *StatsStore) HourlySeries(ctx context.Context, path string, fromHour, toHour int64) ([]pathstats.HourlyRow, error) {
	rows, err := s.reader.QueryContext(ctx, hourlySeriesSQL, path, fromHour, toHour)
	if err != nil {
		return nil, fmt.Errorf("hourly series: %w", err)
	}
	defer rows.Close()
	var out []pathstats.HourlyRow
	for rows.Next() {
		r := pathstats.HourlyRow{Key: pathstats.Key{Path: path}}
		var updated int64
		dests := []any{&r.Hour, &r.ProxyID}
		dests = append(dests, pathstats.CounterDests(&r.Counts)...)
		if err := rows.Scan(append(dests, &updated)...); err != nil {
			return nil, fmt.Errorf("hourly series: scan: %w", err)
		}
		r.UpdatedAt = time.Unix(updated, 0).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hourly series: %w", err)
	}
	return out, nil
}

// DistinctPaths lists the distinct (proxyId, path) with rows at or after
// fromHour, ordered by proxyId then path. Each Key's Hour is the latest hour
// the pair has a row for.
func (s *StatsStore) DistinctPaths(ctx context.Context, fromHour int64) ([]pathstats.Key, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT proxy_id, path, MAX(hour_bucket)
		FROM path_stats_hourly
		WHERE hour_bucket >= ?
		GROUP BY proxy_id, path
		ORDER BY proxy_id, path`, fromHour)
	if err != nil {
		return nil, fmt.Errorf("distinct paths: %w", err)
	}
	defer rows.Close()
	var out []pathstats.Key
	for rows.Next() {
		var k pathstats.Key
		if err := rows.Scan(&k.ProxyID, &k.Path, &k.Hour); err != nil {
			return nil, fmt.Errorf("distinct paths: scan: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("distinct paths: %w", err)
	}
	return out, nil
}

// DeadLetters counts the stored dead letters.
func (s *StatsStore) DeadLetters(ctx context.Context) (int64, error) {
	var n int64
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM dead_letters`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}

// PruneLedger deletes the ledger ids applied before t and returns how many
// it deleted. A pruned id is applied again if its batch comes back, so t must
// lie further in the past than any retry or redelivery horizon (>= 24 h).
func (s *StatsStore) PruneLedger(ctx context.Context, before time.Time) (int64, error) {
	r, err := s.writer.ExecContext(ctx, `DELETE FROM batch_ledger WHERE applied_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune ledger: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune ledger: %w", err)
	}
	return n, nil
}
