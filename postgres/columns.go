package postgres

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pathstats/pathstats"
)

// sumColumns are the additive counters, in appendCounters order.
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

// numSums is len(sumColumns).
const numSums = 3 + pathstats.NumStatusClasses + pathstats.NumLatencyBuckets

// storedCounterColumns are the status and latency columns, in counterDests
// order (without last_seen_ms).
var storedCounterColumns = sumColumns[3:]

// counterValues returns the additive counters of c in sumColumns order.
func counterValues(c *pathstats.Counts) [3 + pathstats.NumStatusClasses + pathstats.NumLatencyBuckets]int64 {
	var v [3 + pathstats.NumStatusClasses + pathstats.NumLatencyBuckets]int64
	v[0], v[1], v[2] = c.Requests(), c.Errors(), c.ClientErrors()
	copy(v[3:], c.Status[:])
	copy(v[3+pathstats.NumStatusClasses:], c.Latency[:])
	return v
}

// columnar holds rows as one slice per column, bound as arrays to an
// INSERT ... SELECT FROM unnest(...): one statement and one plan for any
// number of rows.
type columnar struct {
	hours    []int64 // hourly rows only
	paths    []string
	proxies  []string
	folds    []string // window rows only; "" = NULL
	counters [numSums][]int64
	lastSeen []int64
}

// add appends one delta.
func (c *columnar) add(d *pathstats.Delta, hourly bool) {
	if hourly {
		c.hours = append(c.hours, d.Hour)
	} else {
		f := foldPath(d.Path)
		if f == d.Path {
			f = ""
		}
		c.folds = append(c.folds, f)
	}
	c.paths = append(c.paths, d.Path)
	c.proxies = append(c.proxies, d.ProxyID)
	v := counterValues(&d.Counts)
	for i := range v {
		c.counters[i] = append(c.counters[i], v[i])
	}
	c.lastSeen = append(c.lastSeen, d.LastSeenMs)
}

// args returns the arrays in the order of hourlyUpsertSQL or windowUpsertSQL.
func (c *columnar) args(hourly bool, updatedAt int64) []any {
	var args []any
	if hourly {
		args = append(args, c.hours, c.paths, c.proxies)
	} else {
		args = append(args, c.paths, c.proxies, c.folds)
	}
	for i := range c.counters {
		args = append(args, c.counters[i])
	}
	args = append(args, c.lastSeen)
	if hourly {
		args = append(args, updatedAt)
	}
	return args
}

// unnestList is "$from::bigint[], …" for the counters and last_seen_ms.
func unnestList(from int) string {
	parts := make([]string, len(sumColumns)+1)
	for i := range parts {
		parts[i] = fmt.Sprintf("$%d::bigint[]", from+i)
	}
	return strings.Join(parts, ", ")
}

// onConflictAdd is the assignment list adding the counters of excluded to
// table's row and keeping the max last_seen_ms.
func onConflictAdd(table string) string {
	var b strings.Builder
	for _, c := range sumColumns {
		fmt.Fprintf(&b, "%s = %s.%s + excluded.%s, ", c, table, c, c)
	}
	fmt.Fprintf(&b, "last_seen_ms = GREATEST(%s.last_seen_ms, excluded.last_seen_ms)", table)
	return b.String()
}

// hourlyUpsertSQL adds rows (unique keys) to path_stats_hourly.
var hourlyUpsertSQL = `INSERT INTO path_stats_hourly (hour_bucket, path, proxy_id, ` +
	strings.Join(sumColumns, ", ") + `, last_seen_ms, updated_at)
SELECT u.*, $` + fmt.Sprint(4+len(sumColumns)+1) + `::bigint FROM unnest($1::bigint[], $2::text[], $3::text[], ` + unnestList(4) + `) AS u
ON CONFLICT (hour_bucket, path, proxy_id) DO UPDATE SET ` + onConflictAdd("path_stats_hourly") +
	`, updated_at = excluded.updated_at`

// windowUpsertSQL adds rows (unique keys) to path_stats_window and returns
// the key and new requests of every row, and whether it inserted the row
// (xmax = 0 marks an inserted row).
var windowUpsertSQL = func() string {
	n := 3 + len(sumColumns) + 1
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
	}
	sel := slices.Clone(names)
	sel[2] = "NULLIF(c2, '')"
	return `INSERT INTO path_stats_window (path, proxy_id, path_fold, ` +
		strings.Join(sumColumns, ", ") + `, last_seen_ms)
SELECT ` + strings.Join(sel, ", ") + `
FROM unnest($1::text[], $2::text[], $3::text[], ` + unnestList(4) + `) AS u(` + strings.Join(names, ", ") + `)
ON CONFLICT (path, proxy_id) DO UPDATE SET ` + onConflictAdd("path_stats_window") + `
RETURNING path, proxy_id, requests, (xmax = 0) AS inserted`
}()
