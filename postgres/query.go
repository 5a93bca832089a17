package postgres

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats"
)

// itemColumns are the window columns a PathItem is read from, in scanItem
// order; requests, errors and client errors derive from the status classes.
var itemColumns = "path, proxy_id, " + strings.Join(storedCounterColumns, ", ") + ", last_seen_ms"

// windowOrder is the one order of every data source (ComparePathItems);
// the columns' "C" collation makes it Go's byte order.
const windowOrder = "ORDER BY requests DESC, path, proxy_id"

// qMatch is the q filter ($n is the folded q): strpos has no wildcards, so
// %, _ and \ match only themselves.
const qMatch = "strpos(coalesce(path_fold, path), $%d) > 0"

// scanItem returns scan destinations for itemColumns into it.
func scanItem(it *pathstats.PathItem) []any {
	dests := make([]any, 0, 3+pathstats.NumStatusClasses+pathstats.NumLatencyBuckets)
	dests = append(dests, &it.Path, &it.ProxyID)
	for i := range it.Status {
		dests = append(dests, &it.Status[i])
	}
	for i := range it.Latency {
		dests = append(dests, &it.Latency[i])
	}
	return append(dests, &it.LastAccessedMs)
}

// finishItem derives the totals of a scanned item.
func finishItem(it *pathstats.PathItem) {
	c := pathstats.Counts{Status: it.Status}
	it.Requests, it.Errors, it.ClientErrors = c.Requests(), c.Errors(), c.ClientErrors()
}

// readOnly is the transaction of the reads: one snapshot for the count (or
// window start) and the rows.
var readOnly = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// WindowTotals returns every row of the window in ComparePathItems order,
// and the window's first hour bucket, read in one snapshot.
func (s *StatsStore) WindowTotals(ctx context.Context) ([]pathstats.PathItem, int64, error) {
	if err := s.maybeAdvance(ctx); err != nil {
		return nil, 0, err
	}
	var items []pathstats.PathItem
	var start int64
	err := pgx.BeginTxFunc(ctx, s.pool, readOnly, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT start_hour FROM window_state WHERE id = 1`).Scan(&start); err != nil {
			return fmt.Errorf("read window state: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT `+itemColumns+` FROM path_stats_window`)
		if err != nil {
			return err
		}
		var it pathstats.PathItem
		_, err = pgx.ForEachRow(rows, scanItem(&it), func() error {
			finishItem(&it)
			items = append(items, it)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("window totals: %w", err)
	}
	slices.SortFunc(items, func(a, b pathstats.PathItem) int { return pathstats.ComparePathItems(&a, &b) })
	return items, start, nil
}

// shape returns the count query, the page query (its LIMIT and OFFSET are
// the last two parameters) and the filter arguments for q. Totals without q
// come from window_counts; with q they count the matching rows.
func shape(q pathstats.PathQuery) (count, page string, args []any) {
	var where []string
	if q.ProxyID != "" {
		args = append(args, q.ProxyID)
		where = append(where, fmt.Sprintf("proxy_id = $%d", len(args)))
	}
	if q.Q != "" {
		args = append(args, foldPath(q.Q))
		where = append(where, fmt.Sprintf(qMatch, len(args)))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	switch {
	case q.Q != "":
		count = `SELECT COUNT(*) FROM path_stats_window` + cond
	default:
		count = `SELECT coalesce(SUM(paths), 0)::bigint FROM window_counts` + cond
	}
	page = fmt.Sprintf(`SELECT %s FROM path_stats_window%s %s LIMIT $%d OFFSET $%d`,
		itemColumns, cond, windowOrder, len(args)+1, len(args)+2)
	return count, page, args
}

// QueryPaths answers one page of the window: Q is a case-insensitive literal
// substring of the path (strings.ToLower of both), ProxyID an exact match.
// Items are in ComparePathItems order; Total counts every matching row. The
// count and the page are read in one snapshot.
func (s *StatsStore) QueryPaths(ctx context.Context, q pathstats.PathQuery) (pathstats.PathPage, error) {
	if q.Page < 1 || q.Limit < 1 {
		return pathstats.PathPage{}, pathstats.Errorf(pathstats.EInvalidParameter, "page and limit must be >= 1")
	}
	if err := s.maybeAdvance(ctx); err != nil {
		return pathstats.PathPage{}, err
	}
	count, pageSQL, args := shape(q)
	page := pathstats.PathPage{Items: []pathstats.PathItem{}}
	err := pgx.BeginTxFunc(ctx, s.pool, readOnly, func(tx pgx.Tx) error {
		var total int64
		if err := tx.QueryRow(ctx, count, args...).Scan(&total); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		page.Total = int(total)
		offset := math.MaxInt // a page too deep to compute is past the end
		if q.Page-1 <= math.MaxInt/q.Limit {
			offset = q.Offset()
		}
		if offset >= page.Total {
			return nil
		}
		rows, err := tx.Query(ctx, pageSQL, append(args, q.Limit, offset)...)
		if err != nil {
			return err
		}
		var it pathstats.PathItem
		_, err = pgx.ForEachRow(rows, scanItem(&it), func() error {
			finishItem(&it)
			page.Items = append(page.Items, it)
			return nil
		})
		return err
	})
	if err != nil {
		return pathstats.PathPage{}, fmt.Errorf("query paths: %w", err)
	}
	return page, nil
}
