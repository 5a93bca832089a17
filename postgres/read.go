package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats"
)

// sumList is "SUM(status_1xx)::bigint, …" over the stored counters: the
// totals derive from the status classes.
var sumList = func() string {
	parts := make([]string, len(storedCounterColumns))
	for i, c := range storedCounterColumns {
		parts[i] = "SUM(" + c + ")::bigint"
	}
	return strings.Join(parts, ", ")
}()

var pathTotalsSQL = `SELECT path, proxy_id, ` + sumList + `, MAX(last_seen_ms), MAX(updated_at)
FROM path_stats_hourly
WHERE hour_bucket >= $1 AND hour_bucket < $2
GROUP BY path, proxy_id
ORDER BY path, proxy_id`

var hourlySeriesSQL = `SELECT hour_bucket, proxy_id, ` + strings.Join(storedCounterColumns, ", ") + `, last_seen_ms, updated_at
FROM path_stats_hourly
WHERE path = $1 AND hour_bucket >= $2 AND hour_bucket < $3
ORDER BY hour_bucket, proxy_id`

// PathTotals sums the rows with fromHour <= hour_bucket < toHour per
// (path, proxyId), ordered by path then proxyId.
func (s *StatsStore) PathTotals(ctx context.Context, fromHour, toHour int64) ([]pathstats.PathTotal, error) {
	rows, err := s.pool.Query(ctx, pathTotalsSQL, fromHour, toHour)
	if err != nil {
		return nil, fmt.Errorf("path totals: %w", err)
	}
	var out []pathstats.PathTotal
	var t pathstats.PathTotal
	var updated int64
	dests := append([]any{&t.Path, &t.ProxyID}, pathstats.CounterDests(&t.Counts)...)
	_, err = pgx.ForEachRow(rows, append(dests, &updated), func() error {
		t.Requests, t.Errors, t.ClientErrors = t.Counts.Requests(), t.Counts.Errors(), t.Counts.ClientErrors()
		t.UpdatedAt = time.Unix(updated, 0).UTC()
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("path totals: %w", err)
	}
	return out, nil
}

// HourlySeries returns the rows of path (every proxy) with
// fromHour <= hour_bucket < toHour, ordered by hour then proxyId.
func (s *StatsStore) HourlySeries(ctx context.Context, path string, fromHour, toHour int64) ([]pathstats.HourlyRow, error) {
	rows, err := s.pool.Query(ctx, hourlySeriesSQL, path, fromHour, toHour)
	if err != nil {
		return nil, fmt.Errorf("hourly series: %w", err)
	}
	var out []pathstats.HourlyRow
	r := pathstats.HourlyRow{Key: pathstats.Key{Path: path}}
	var updated int64
	dests := append([]any{&r.Hour, &r.ProxyID}, pathstats.CounterDests(&r.Counts)...)
	_, err = pgx.ForEachRow(rows, append(dests, &updated), func() error {
		r.UpdatedAt = time.Unix(updated, 0).UTC()
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hourly series: %w", err)
	}
	return out, nil
}

// DistinctPaths lists the distinct (proxyId, path) with rows at or after
// fromHour, ordered by proxyId then path. Each Key's Hour is the latest hour
// the pair has a row for.
func (s *StatsStore) DistinctPaths(ctx context.Context, fromHour int64) ([]pathstats.Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT proxy_id, path, MAX(hour_bucket)
		FROM path_stats_hourly
		WHERE hour_bucket >= $1
		GROUP BY proxy_id, path
		ORDER BY proxy_id, path`, fromHour)
	if err != nil {
		return nil, fmt.Errorf("distinct paths: %w", err)
	}
	var out []pathstats.Key
	var k pathstats.Key
	_, err = pgx.ForEachRow(rows, []any{&k.ProxyID, &k.Path, &k.Hour}, func() error {
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("distinct paths: %w", err)
	}
	return out, nil
}

// DeadLetters counts the stored dead letters.
func (s *StatsStore) DeadLetters(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM dead_letters`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}

// PruneLedger deletes the ledger ids applied before t and returns how many
// it deleted. A pruned id is applied again if its batch comes back, so t must
// lie further in the past than any retry or redelivery horizon (>= 24 h).
func (s *StatsStore) PruneLedger(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM batch_ledger WHERE applied_at < $1`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune ledger: %w", err)
	}
	return tag.RowsAffected(), nil
}
