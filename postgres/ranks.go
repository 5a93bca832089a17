package postgres

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/bits"
	"slices"

	"github.com/jackc/pgx/v5"
)

// The rank histograms (window_ranks, window_proxy_ranks; migration 0003)
// count the window rows per requests bucket, in total and per proxy: their
// sums are the row counts of the window and of each proxy. A page
// without q reads them to learn how many rows come before the bucket that
// holds its first (or after the one that holds its last) row, and walks the
// index from that bucket's edge: it skips at most the rows of one bucket, not
// every row before the page. Apply moves each row it changes from its old
// bucket to its new one in the same transaction; advancing the window
// recounts them.

// markWindowWriter is the SQL expression a transaction evaluates before it
// changes the window: it tells window_writer_check (migration 0003) that
// this writer keeps the histograms. (A node of an older release has its
// writes refused.)
const markWindowWriter = `set_config('pathstats.window_writer', '3', true)`

// exactRanks is the first requests value that shares a bucket with others:
// below it every value is a bucket of its own.
const exactRanks = 1024

// rankBucket is the first value of the bucket holding v (window_rank_bucket
// in SQL): v below exactRanks, above it v with all but its 7 highest bits
// cleared, so a bucket is at most 1/64 of its values wide.
func rankBucket(v int64) int64 {
	if v < exactRanks {
		return v
	}
	s := rankShift(v)
	return v >> s << s
}

// rankBucketLast is the last value of the bucket starting at b.
func rankBucketLast(b int64) int64 {
	if b < exactRanks {
		return b
	}
	return b + 1<<rankShift(b) - 1
}

// rankShift is how many low bits of v (>= exactRanks) its bucket clears.
func rankShift(v int64) uint { return uint(bits.Len64(uint64(v)) - 7) }

// proxyBucket is a bucket of one proxy's histogram.
type proxyBucket struct {
	proxy  string
	bucket int64
}

// rankMoves collects the bucket changes of the window rows one Apply
// changes, netted per bucket.
type rankMoves struct {
	all     map[int64]int64
	byProxy map[proxyBucket]int64
}

// move records a row of proxy whose requests went from old to new; an
// inserted row has no old bucket (inserted true).
func (m *rankMoves) move(proxy string, old, new int64, inserted bool) {
	if m.all == nil {
		m.all, m.byProxy = map[int64]int64{}, map[proxyBucket]int64{}
	}
	to := rankBucket(new)
	if !inserted {
		from := rankBucket(old)
		if from == to {
			return
		}
		m.all[from]--
		m.byProxy[proxyBucket{proxy, from}]--
	}
	m.all[to]++
	m.byProxy[proxyBucket{proxy, to}]++
}

// write adds the moves to the histograms, each in key order (the lock order
// of every Apply) and without the buckets whose moves cancel out.
func (m *rankMoves) write(ctx context.Context, tx pgx.Tx) error {
	var buckets, paths []int64
	for _, b := range slices.Sorted(maps.Keys(m.all)) {
		if n := m.all[b]; n != 0 {
			buckets, paths = append(buckets, b), append(paths, n)
		}
	}
	if len(buckets) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO window_ranks (bucket, paths)
			SELECT * FROM unnest($1::bigint[], $2::bigint[])
			ON CONFLICT (bucket) DO UPDATE SET paths = window_ranks.paths + excluded.paths`,
			buckets, paths); err != nil {
			return fmt.Errorf("window ranks: %w", err)
		}
	}
	keys := slices.SortedFunc(maps.Keys(m.byProxy), func(a, b proxyBucket) int {
		return cmp.Or(cmp.Compare(a.proxy, b.proxy), cmp.Compare(a.bucket, b.bucket))
	})
	var proxies []string
	buckets, paths = buckets[:0], paths[:0]
	for _, k := range keys {
		if n := m.byProxy[k]; n != 0 {
			proxies, buckets, paths = append(proxies, k.proxy), append(buckets, k.bucket), append(paths, n)
		}
	}
	if len(proxies) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO window_proxy_ranks (proxy_id, bucket, paths)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
		ON CONFLICT (proxy_id, bucket) DO UPDATE SET paths = window_proxy_ranks.paths + excluded.paths`,
		proxies, buckets, paths); err != nil {
		return fmt.Errorf("window proxy ranks: %w", err)
	}
	return nil
}

// recount recomputes both histograms (and so the row counts) from the
// window.
func recount(ctx context.Context, tx pgx.Tx) error {
	for _, stmt := range []string{
		`DELETE FROM window_ranks`,
		`INSERT INTO window_ranks (bucket, paths)
			SELECT window_rank_bucket(requests), COUNT(*) FROM path_stats_window GROUP BY 1`,
		`DELETE FROM window_proxy_ranks`,
		`INSERT INTO window_proxy_ranks (proxy_id, bucket, paths)
			SELECT proxy_id, window_rank_bucket(requests), COUNT(*) FROM path_stats_window GROUP BY 1, 2`,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("recount ranks: %w", err)
		}
	}
	return nil
}

// rankedWalk is where an index walk to a page starts: the order to read the
// index in, a bound on requests that starts it at a bucket's edge (requests
// <= bound forwards, >= bound backwards), and the rows to skip from there.
type rankedWalk struct {
	order string
	bound int64
	skip  int
}

// rankedSkipMin is the shallowest walk (rows skipped) worth reading the
// histogram for.
const rankedSkipMin = 2000

// bucketsAroundSQL returns, of the buckets holding rows $1 and $2 (0-based,
// in windowOrder) of the window or of proxy $3's rows, the bucket and the
// rows before it, one row per bucket.
func bucketsAroundSQL(proxy bool) string {
	from, args := `window_ranks`, `$1::bigint, $2::bigint`
	if proxy {
		from = `window_proxy_ranks WHERE proxy_id = $3`
	}
	return `SELECT bucket, above, paths FROM (
    SELECT bucket, paths, SUM(paths) OVER (ORDER BY bucket DESC ROWS UNBOUNDED PRECEDING) - paths AS above
    FROM ` + from + `) AS r
WHERE paths > 0 AND EXISTS (SELECT FROM unnest(ARRAY[` + args + `]) AS i(row)
                            WHERE r.above <= i.row AND i.row < r.above + r.paths)`
}

// rankedPage returns the cheaper start of the walk to rows [first, last]
// (0-based, in windowOrder) of the window, or of proxy's rows: forwards from
// the top of the bucket holding first, or backwards from the bottom of the
// bucket holding last. ok is false when the histogram holds neither row
// (it is recounted while the window moves; the plain walk still answers).
func rankedPage(ctx context.Context, tx pgx.Tx, proxy string, first, last int) (w rankedWalk, ok bool, err error) {
	args := []any{first, last}
	if proxy != "" {
		args = append(args, proxy)
	}
	rows, err := tx.Query(ctx, bucketsAroundSQL(proxy != ""), args...)
	if err != nil {
		return rankedWalk{}, false, fmt.Errorf("rank buckets: %w", err)
	}
	var bucket, above, paths int64
	_, err = pgx.ForEachRow(rows, []any{&bucket, &above, &paths}, func() error {
		if above <= int64(first) && int64(first) < above+paths {
			if skip := first - int(above); !ok || skip < w.skip {
				w, ok = rankedWalk{keysForward, rankBucketLast(bucket), skip}, true
			}
		}
		if above <= int64(last) && int64(last) < above+paths {
			if skip := int(above+paths) - 1 - last; !ok || skip < w.skip {
				w, ok = rankedWalk{keysBack, bucket, skip}, true
			}
		}
		return nil
	})
	if err != nil {
		return rankedWalk{}, false, fmt.Errorf("rank buckets: %w", err)
	}
	return w, ok, nil
}

// cond returns the WHERE clause of the walk after the filter cond (its
// bound the next parameter after nargs).
func (w rankedWalk) cond(cond string, nargs int) string {
	op := "<="
	if w.order == keysBack {
		op = ">="
	}
	bound := fmt.Sprintf("requests %s $%d", op, nargs+1)
	if cond == "" {
		return " WHERE " + bound
	}
	return cond + " AND " + bound
}
