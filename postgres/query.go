package postgres

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
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

// filter returns the WHERE clause of q on the window's columns (empty
// without filters) and its arguments.
func filter(q pathstats.PathQuery) (string, []any) {
	var where []string
	var args []any
	if q.ProxyID != "" {
		args = append(args, q.ProxyID)
		where = append(where, fmt.Sprintf("proxy_id = $%d", len(args)))
	}
	if q.Q != "" {
		args = append(args, foldPath(q.Q))
		where = append(where, fmt.Sprintf(qMatch, len(args)))
	}
	if len(where) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// Orders of the window's keys: windowOrder's columns forwards (the
// indexes' order, within one proxy for the proxy index) and backwards.
const (
	keysForward = windowOrder
	keysBack    = "ORDER BY requests ASC, path DESC, proxy_id DESC"
)

// wItemColumns are itemColumns of the window row aliased w.
var wItemColumns = "w." + strings.ReplaceAll(itemColumns, ", ", ", w.")

// keysPageSQL reads one page's keys from an index in order (an index-only
// scan where the pages are all-visible: a deep page skips index entries, not
// rows), then joins the rows back and sorts them in windowOrder. Its LIMIT
// and OFFSET are the two parameters after the filter's.
func keysPageSQL(cond, order string, nargs int) string {
	return fmt.Sprintf(`SELECT %s
FROM (SELECT path, proxy_id FROM path_stats_window%s %s LIMIT $%d OFFSET $%d) AS k
JOIN path_stats_window AS w ON w.path = k.path AND w.proxy_id = k.proxy_id
ORDER BY w.requests DESC, w.path, w.proxy_id`, wItemColumns, cond, order, nargs+1, nargs+2)
}

// countedPageSQL answers a q filter in one scan: the matching keys are
// gathered once and counted; the page's keys are sorted out of them from the
// nearer end (a sort bounded by the page's distance to that end: pageWindow
// in SQL, the other branch gated off) and joined back to their rows, one
// index lookup each (OFFSET 0 keeps the planner, which cannot estimate the
// page's size, from hashing the whole window instead). Every result row
// carries the total in its first column; when the page is empty, one row
// holds the total and NULLs. Its LIMIT and OFFSET are the two parameters
// after the filter's, at most maxPageArg.
func countedPageSQL(cond string, nargs int) string {
	lim, off := fmt.Sprintf("$%d::bigint", nargs+1), fmt.Sprintf("$%d::bigint", nargs+2)
	return `WITH m AS MATERIALIZED (
    SELECT path, proxy_id, requests FROM path_stats_window` + cond + `
), c AS (
    SELECT n, ` + off + ` <= n - least(` + off + ` + ` + lim + `, n) AS forward,
           greatest(least(` + lim + `, n - ` + off + `), 0) AS back_limit,
           greatest(n - ` + off + ` - ` + lim + `, 0) AS back_offset
    FROM (SELECT COUNT(*) AS n FROM m) AS counted
), k AS (
    (SELECT path, proxy_id FROM m WHERE (SELECT forward FROM c)
     ` + keysForward + ` LIMIT ` + lim + ` OFFSET ` + off + `)
    UNION ALL
    (SELECT path, proxy_id FROM m WHERE NOT (SELECT forward FROM c)
     ` + keysBack + ` LIMIT (SELECT back_limit FROM c) OFFSET (SELECT back_offset FROM c))
)
SELECT (SELECT n FROM c), p.*
FROM (SELECT) AS one
LEFT JOIN (SELECT w.* FROM k CROSS JOIN LATERAL (
               SELECT ` + itemColumns + `, requests FROM path_stats_window
               WHERE path = k.path AND proxy_id = k.proxy_id OFFSET 0) AS w) AS p ON true
ORDER BY p.requests DESC, p.path, p.proxy_id`
}

// maxPageArg bounds the LIMIT and OFFSET of countedPageSQL, so its sums
// cannot overflow: no window holds that many rows.
const maxPageArg = 1 << 40

// pageWindow returns, for rows [offset, offset+limit) of total (offset <
// total), the order to read the index in with its LIMIT and OFFSET: pages
// past the middle are read from the index's end, so no page skips more than
// half the matches.
func pageWindow(offset, limit, total int) (order string, n, skip int) {
	end := offset + min(limit, total-offset)
	if offset <= total-end {
		return keysForward, end - offset, offset
	}
	return keysBack, end - offset, total - end
}

// Measured costs of a q page on PostgreSQL 15, in nanoseconds per window
// row: scanning the window with the q filter, gathering a match into
// countedPageSQL's sort, and walking an index entry with its row (the page
// walk's cost, the pages not being all-visible).
const (
	scanCost   = 200
	gatherCost = 400
	walkCost   = 500
)

// walkIsCheaper tells whether walking the index past skip+n matches of
// total, spread over rows window rows, costs less than gathering and
// sorting all matches (countedPageSQL).
func walkIsCheaper(skip, n, total, rows int) bool {
	walked := float64(skip+n) * float64(rows) / float64(total)
	return walked*walkCost < float64(rows)*scanCost+float64(total)*gatherCost
}

// QueryPaths answers one page of the window: Q is a case-insensitive literal
// substring of the path (strings.ToLower of both), ProxyID an exact match.
// Items are in ComparePathItems order; Total counts every matching row. The
// count and the page are read in one snapshot: the count first (from
// the rank histograms without q, by a scan with q), then the page from the nearer
// end of an index, or, for a q whose matches are too sparse for that walk,
// by gathering and sorting the matches (countedPageSQL). Without q, a deep
// page starts its walk at the edge of its requests bucket (rankedPage), so it
// skips at most part of one bucket's rows.
func (s *StatsStore) QueryPaths(ctx context.Context, q pathstats.PathQuery) (pathstats.PathPage, error) {
	if q.Page < 1 || q.Limit < 1 {
		return pathstats.PathPage{}, pathstats.Errorf(pathstats.EInvalidParameter, "page and limit must be >= 1")
	}
	if err := s.maybeAdvance(ctx); err != nil {
		return pathstats.PathPage{}, err
	}
	offset := math.MaxInt // a page too deep to compute is past the end
	if q.Page-1 <= math.MaxInt/q.Limit {
		offset = q.Offset()
	}
	cond, args := filter(q)
	page := pathstats.PathPage{Items: []pathstats.PathItem{}}
	err := pgx.BeginTxFunc(ctx, s.pool, readOnly, func(tx pgx.Tx) error {
		if q.Q != "" {
			walk, estimate, err := walkLooksCheaper(ctx, tx, q, cond, args, offset)
			if err != nil {
				return fmt.Errorf("probe: %w", err)
			}
			if !walk {
				return readCounted(ctx, tx, &page, cond, append(args, min(q.Limit, maxPageArg), min(offset, maxPageArg)))
			}
			if offset >= besideWalkMin && offset+q.Limit <= estimate/2 && s.hourlyConns(2) > 1 {
				return s.countBesideWalk(ctx, tx, &page, q, cond, args, offset)
			}
		}
		total, err := countMatches(ctx, tx, q, cond, args)
		if err != nil {
			return fmt.Errorf("count: %w", err)
		}
		page.Total = total
		if offset >= total {
			return nil
		}
		order, n, skip := pageWindow(offset, q.Limit, total)
		if q.Q == "" && skip >= rankedSkipMin {
			w, ok, err := rankedPage(ctx, tx, q.ProxyID, offset, offset+n-1)
			if err != nil {
				return err
			}
			if ok && w.skip < skip {
				args = append(args, w.bound)
				return readPage(ctx, tx, &page, keysPageSQL(w.cond(cond, len(args)-1), w.order, len(args)), append(args, n, w.skip))
			}
		}
		return readPage(ctx, tx, &page, keysPageSQL(cond, order, len(args)), append(args, n, skip))
	})
	if err != nil {
		return pathstats.PathPage{}, fmt.Errorf("query paths: %w", err)
	}
	return page, nil
}

// probeRows is how many of the top index entries walkLooksCheaper tests
// against q to estimate how dense its matches are.
const probeRows = 1000

// countedRowsSQL is the number of window rows (of proxy $1 when proxy).
func countedRowsSQL(proxy bool) string {
	if proxy {
		return `SELECT coalesce(SUM(paths), 0)::bigint FROM window_proxy_ranks WHERE proxy_id = $1`
	}
	return `SELECT coalesce(SUM(paths), 0)::bigint FROM window_ranks`
}

// walkLooksCheaper estimates, from the share of the top probeRows index
// entries that match q, whether counting the matches and walking the index
// to the page (from its nearer end) costs less than countedPageSQL. A wrong
// guess costs time, not correctness.
func walkLooksCheaper(ctx context.Context, tx pgx.Tx, q pathstats.PathQuery, cond string, args []any, offset int) (walk bool, estimate int, err error) {
	probe := `SELECT (SELECT COUNT(*) FROM (SELECT path, proxy_id, path_fold FROM path_stats_window` + proxyCond(q) +
		` ` + keysForward + ` LIMIT ` + strconv.Itoa(probeRows) + `) AS top` + cond +
		`), (` + countedRowsSQL(q.ProxyID != "") + `)`
	var hits, rows int64
	if err := tx.QueryRow(ctx, probe, args...).Scan(&hits, &rows); err != nil {
		return false, 0, err
	}
	if hits == 0 || rows == 0 {
		return false, 0, nil
	}
	total := max(1, int(float64(rows)*float64(hits)/float64(min(rows, probeRows))))
	if offset >= total {
		return false, total, nil
	}
	_, n, skip := pageWindow(offset, q.Limit, total)
	return walkIsCheaper(skip, n, total, int(rows)), total, nil
}

// besideWalkMin is the shallowest page (matches skipped) worth a second
// connection: shallower walks cost less than joining a snapshot.
const besideWalkMin = 1000

// countBesideWalk answers a q page in the first half of its (estimated)
// matches: the page is walked forwards from the top of the index on a
// second connection sharing tx's snapshot while tx counts the matches, so
// the answer takes the longer of the two instead of their sum. A forward
// walk needs no total: a wrong estimate only costs time.
func (s *StatsStore) countBesideWalk(ctx context.Context, tx pgx.Tx, page *pathstats.PathPage, q pathstats.PathQuery, cond string, args []any, offset int) error {
	more, err := s.joinSnapshot(ctx, tx)
	if err != nil {
		return err
	}
	defer func() { _ = more.Rollback(context.WithoutCancel(ctx)) }() // read-only
	walked := pathstats.PathPage{Items: []pathstats.PathItem{}}
	done := make(chan error, 1)
	pageArgs := append(slices.Clone(args), q.Limit, offset)
	go func() { done <- readPage(ctx, more, &walked, keysPageSQL(cond, keysForward, len(args)), pageArgs) }()
	total, countErr := countMatches(ctx, tx, q, cond, args)
	if err := <-done; err != nil {
		return fmt.Errorf("page: %w", err)
	}
	if countErr != nil {
		return fmt.Errorf("count: %w", countErr)
	}
	page.Total, page.Items = total, walked.Items
	return nil
}

// proxyCond is the proxy filter of q alone ($1), or nothing.
func proxyCond(q pathstats.PathQuery) string {
	if q.ProxyID == "" {
		return ""
	}
	return " WHERE proxy_id = $1"
}

// countMatches returns the rows matching q: without q from the histograms,
// with q by a scan.
func countMatches(ctx context.Context, tx pgx.Tx, q pathstats.PathQuery, cond string, args []any) (int, error) {
	count := countedRowsSQL(q.ProxyID != "")
	if q.Q != "" {
		count = `SELECT COUNT(*) FROM path_stats_window` + cond
	}
	var total int64
	if err := tx.QueryRow(ctx, count, args...).Scan(&total); err != nil {
		return 0, err
	}
	return int(total), nil
}

// readPage appends the rows of a page query to page.
func readPage(ctx context.Context, tx pgx.Tx, page *pathstats.PathPage, sql string, args []any) error {
	rows, err := tx.Query(ctx, sql, args...)
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
}

// readCounted reads the total and the page of countedPageSQL into page.
func readCounted(ctx context.Context, tx pgx.Tx, page *pathstats.PathPage, cond string, args []any) error {
	rows, err := tx.Query(ctx, countedPageSQL(cond, len(args)-2), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var total, requests int64
	var it pathstats.PathItem
	dests := append(append([]any{&total}, scanItem(&it)...), &requests)
	nulls := make([]any, len(dests)) // the empty page's row: the total only
	nulls[0] = &total
	for rows.Next() {
		if rows.RawValues()[1] == nil {
			if err := rows.Scan(nulls...); err != nil {
				return err
			}
			continue
		}
		if err := rows.Scan(dests...); err != nil {
			return err
		}
		finishItem(&it)
		page.Items = append(page.Items, it)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	page.Total = int(total)
	return nil
}
