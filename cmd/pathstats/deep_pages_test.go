package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats/internal/testutil"
)

// TestDeepPagesOnPostgresFallback reads every page of 6,000 paths from the
// real server's SQL fallback on PostgreSQL (Redis cut off), unfiltered and
// per proxy: the deep ones start from the rank histograms.
func TestDeepPagesOnPostgresFallback(t *testing.T) {
	pgBase, redisBase := needPostgresRedis(t)
	id := fmt.Sprintf("deep%d", time.Now().UnixNano())
	var pg *pgx.Conn
	dsn := pgSchema(t, pgBase, "pstest_"+id, &pg)
	redisProxy := testutil.StartCutProxy(t, hostPort(t, redisBase))
	c := startServe(t, t.TempDir(), "--sql", dsn, "--kv", "redis://"+redisProxy.Addr()+"/0?prefix="+id+":",
		"--snapshot-interval", "300ms", "--snapshot-max-age", "2s", "--legacy", "off")

	const paths = 6000
	var ref []refPath
	var events []map[string]any
	var want int64
	now := time.Now().UnixMilli()
	post := func() {
		if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", ndjson(events...), nil); code != 202 {
			t.Fatalf("ingest: %d %v", code, out)
		}
		events = events[:0]
	}
	for i := range paths {
		p := refPath{path: fmt.Sprintf("/deep/p%04d", (i*7919)%paths), proxy: []string{"api", "web", "api"}[i%3], requests: int64(1 + (i*131)%40)}
		ref = append(ref, p)
		want += p.requests
		for range p.requests {
			events = append(events, map[string]any{"timestamp": now, "path": p.path, "status": 200, "proxyId": p.proxy})
			if len(events) == 1000 {
				post()
			}
		}
	}
	if len(events) > 0 {
		post()
	}
	waitFor(t, 60*time.Second, func() bool {
		var n int64
		err := pg.QueryRow(context.Background(), "SELECT COALESCE(SUM(requests), 0) FROM pstest_"+id+".path_stats_window").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n == want
	}, "every event applied to the window")

	redisProxy.Cut()
	waitSource(t, c, "d1-fallback", paths)
	for _, proxy := range []string{"", "api"} {
		for _, limit := range []int{50, 173} {
			_, total := expect(ref, "", proxy, 1, limit)
			for page := 1; (page-1)*limit <= total; page++ {
				v := url.Values{"page": {fmt.Sprint(page)}, "limit": {fmt.Sprint(limit)}}
				if proxy != "" {
					v.Set("proxyId", proxy)
				}
				code, got := c.paths(t, v.Encode())
				items, _ := expect(ref, "", proxy, page, limit)
				if code != 200 || got.Metadata.DataSource != "d1-fallback" || got.Pagination.Total != total || len(got.Data) != len(items) {
					t.Fatalf("%s: %d from %q, total %d, %d items; want 200 from d1-fallback, total %d, %d items",
						v.Encode(), code, got.Metadata.DataSource, got.Pagination.Total, len(got.Data), total, len(items))
				}
				for j, w := range items {
					if g := got.Data[j]; g.Path != w.path || g.ProxyID != w.proxy || g.RequestCount != w.requests {
						t.Fatalf("%s item %d: %s %s %d, want %s %s %d", v.Encode(), j, g.Path, g.ProxyID, g.RequestCount, w.path, w.proxy, w.requests)
					}
				}
			}
		}
	}
	c.stop()
}
