package sqlite

import (
	"context"
	"testing"
	"time"
)

func BenchmarkZZProbe(b *testing.B) {
	ctx := context.Background()
	s, now := openWithHistory(b)
	from := now - historyHours*3600
	for _, q := range []string{
		`EXPLAIN QUERY PLAN ` + pathTotalsSQL,
	} {
		rows, _ := s.reader.QueryContext(ctx, q, from, now)
		for rows.Next() {
			var a, b2, c int
			var d string
			rows.Scan(&a, &b2, &c, &d)
			b.Log(d)
		}
		rows.Close()
	}
	for _, q := range []string{
		`SELECT COUNT(*), SUM(requests) FROM path_stats_hourly WHERE hour_bucket >= ? AND hour_bucket < ?`,
		`SELECT COUNT(*) FROM (SELECT path, proxy_id, SUM(requests) FROM path_stats_hourly WHERE hour_bucket >= ? AND hour_bucket < ? GROUP BY path, proxy_id)`,
		`SELECT COUNT(*) FROM (SELECT path, proxy_id, ` + sumList + ` FROM path_stats_hourly WHERE hour_bucket >= ? AND hour_bucket < ? GROUP BY path, proxy_id)`,
	} {
		t0 := time.Now()
		var n, m int64
		s.reader.QueryRowContext(ctx, q, from, now).Scan(&n, &m)
		b.Logf("%v n=%d %.60s", time.Since(t0), n, q)
	}
	t0 := time.Now()
	rows, _ := s.reader.QueryContext(ctx, `SELECT path, proxy_id, `+joinCols()+`, last_seen_ms, updated_at FROM path_stats_hourly WHERE hour_bucket >= ? AND hour_bucket < ?`, from, now)
	n := 0
	dst := make([]any, len(sumColumns)+4)
	vals := make([]int64, len(sumColumns)+2)
	var p, x string
	dst[0], dst[1] = &p, &x
	for i := range vals {
		dst[i+2] = &vals[i]
	}
	for rows.Next() {
		rows.Scan(dst...)
		n++
	}
	rows.Close()
	b.Logf("go scan all rows: %v n=%d", time.Since(t0), n)
	for b.Loop() {
	}
}

func joinCols() string {
	s := ""
	for i, c := range sumColumns {
		if i > 0 {
			s += ", "
		}
		s += c
	}
	return s
}
