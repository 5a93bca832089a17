package sqlite

import (
	"fmt"
	"strings"

	"github.com/pathstats/pathstats"
)

// sumColumns are the additive counters of path_stats_hourly, in the order
// counterValues and scanCounts use.
var sumColumns = func() []string {
	cols := []string{"requests", "errors", "client_errors"}
	for i := range pathstats.NumStatusClasses {
		cols = append(cols, fmt.Sprintf("status_%dxx", i+1))
	}
	for i := range pathstats.NumLatencyBuckets {
		cols = append(cols, fmt.Sprintf("lat_%02d", i))
	}
	return cols
}()

// upsertColumns are the columns one upserted row binds, in order.
var upsertColumns = func() []string {
	cols := []string{"hour_bucket", "path", "proxy_id"}
	cols = append(cols, sumColumns...)
	return append(cols, "last_seen_ms", "updated_at")
}()

// appendCounters appends the additive counters of c in sumColumns order.
func appendCounters(args []any, c *pathstats.Counts) []any {
	args = append(args, c.Requests(), c.Errors(), c.ClientErrors())
	for _, v := range c.Status {
		args = append(args, v)
	}
	for _, v := range c.Latency {
		args = append(args, v)
	}
	return args
}

// storedCounterColumns are the stored status and latency columns, in
// counterDests order (without last_seen_ms).
var storedCounterColumns = sumColumns[3:]

// upsertSQL builds a multi-row upsert of n rows into path_stats_hourly.
func upsertSQL(n int) string {
	return multiRowUpsert("path_stats_hourly", upsertColumns, n, "hour_bucket, path, proxy_id",
		"updated_at = excluded.updated_at")
}

// windowColumns are the columns one upserted window row binds, in order.
var windowColumns = func() []string {
	cols := []string{"path", "proxy_id", "path_fold"}
	cols = append(cols, sumColumns...)
	return append(cols, "last_seen_ms")
}()

// windowUpsertSQL builds a multi-row upsert of n rows into path_stats_window.
func windowUpsertSQL(n int) string {
	return multiRowUpsert("path_stats_window", windowColumns, n, "path, proxy_id", "")
}

// multiRowUpsert builds an INSERT of n rows of cols into table that, on a
// conflict on key, adds the sumColumns, keeps the max last_seen_ms and
// applies extra (an assignment list, may be empty).
func multiRowUpsert(table string, cols []string, n int, key, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, strings.Join(cols, ", "))
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	fmt.Fprintf(&b, " ON CONFLICT (%s) DO UPDATE SET ", key)
	for _, c := range sumColumns {
		fmt.Fprintf(&b, "%s = %s.%s + excluded.%s, ", c, table, c, c)
	}
	fmt.Fprintf(&b, "last_seen_ms = max(%s.last_seen_ms, excluded.last_seen_ms)", table)
	if extra != "" {
		b.WriteString(", " + extra)
	}
	return b.String()
}

// subtractHourSQL subtracts one hour's hourly rows from the window rows.
var subtractHourSQL = func() string {
	sets := make([]string, len(sumColumns))
	for i, c := range sumColumns {
		sets[i] = fmt.Sprintf("%s = w.%s - h.%s", c, c, c)
	}
	return `UPDATE path_stats_window AS w SET ` + strings.Join(sets, ", ") + `
FROM path_stats_hourly AS h
WHERE h.hour_bucket = ? AND w.path = h.path AND w.proxy_id = h.proxy_id`
}()

// rebuildWindowSQL fills the (empty) window with the sums of the hourly rows
// with hour_bucket >= ?.
var rebuildWindowSQL = func() string {
	sums := make([]string, len(sumColumns))
	for i, c := range sumColumns {
		sums[i] = "SUM(" + c + ")"
	}
	return `INSERT INTO path_stats_window (` + strings.Join(windowColumns, ", ") + `)
SELECT path, proxy_id, nullif(` + foldFunc + `(path), path), ` + strings.Join(sums, ", ") + `, MAX(last_seen_ms)
FROM path_stats_hourly
WHERE hour_bucket >= ?
GROUP BY path, proxy_id
HAVING SUM(requests) > 0
ORDER BY path, proxy_id`
}()
