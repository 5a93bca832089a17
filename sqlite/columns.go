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

// counterDests returns scan destinations for the status and latency columns
// of c (sumColumns without the three derived totals), then LastSeenMs.
func counterDests(c *pathstats.Counts) []any {
	dests := make([]any, 0, pathstats.NumStatusClasses+pathstats.NumLatencyBuckets+1)
	for i := range c.Status {
		dests = append(dests, &c.Status[i])
	}
	for i := range c.Latency {
		dests = append(dests, &c.Latency[i])
	}
	return append(dests, &c.LastSeenMs)
}

// storedCounterColumns are the stored status and latency columns, in
// counterDests order (without last_seen_ms).
var storedCounterColumns = sumColumns[3:]

// upsertSQL builds a multi-row upsert of n rows into path_stats_hourly.
func upsertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO path_stats_hourly (")
	b.WriteString(strings.Join(upsertColumns, ", "))
	b.WriteString(") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(upsertColumns)), ",") + ")"
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	b.WriteString(" ON CONFLICT (hour_bucket, path, proxy_id) DO UPDATE SET ")
	for _, c := range sumColumns {
		fmt.Fprintf(&b, "%s = path_stats_hourly.%s + excluded.%s, ", c, c, c)
	}
	b.WriteString("last_seen_ms = max(path_stats_hourly.last_seen_ms, excluded.last_seen_ms), ")
	b.WriteString("updated_at = excluded.updated_at")
	return b.String()
}
