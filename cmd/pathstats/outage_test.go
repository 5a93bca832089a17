package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pathstats/pathstats/internal/testutil"
)

// TestBackendOutages cuts PostgreSQL and Redis (a proxy in front of each
// drops every connection and refuses new ones) while a node takes ingest:
// with SQL gone, ingest keeps answering 202 (the queue holds the batches)
// and reads come from the snapshot; with KV gone, reads fall back to SQL;
// with both gone, reads answer 503 UNAVAILABLE. Nothing acknowledged is
// lost once they are back.
func TestBackendOutages(t *testing.T) {
	pgBase, redisBase := needPostgresRedis(t)
	id := fmt.Sprintf("out%d", time.Now().UnixNano())
	var pg *pgx.Conn
	dsn := pgSchema(t, pgBase, "pstest_"+id, &pg)
	pgProxy := testutil.StartCutProxy(t, hostPort(t, pgBase))
	redisProxy := testutil.StartCutProxy(t, hostPort(t, redisBase))
	c := startServe(t, t.TempDir(), "--sql", viaProxy(t, dsn, pgProxy), "--kv", "redis://"+redisProxy.Addr()+"/0?prefix="+id+":",
		"--snapshot-interval", "300ms", "--snapshot-max-age", "2s", "--legacy", "off")
	ref := ingestReference(t, c)
	waitSource(t, c, "kv-snapshot", len(ref))
	sqlTotal := func() int64 {
		var n int64
		if err := pg.QueryRow(context.Background(), "SELECT COALESCE(SUM(requests), 0) FROM pstest_"+id+".path_stats_hourly").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	want := sqlTotal()

	// PostgreSQL gone: ingest accepted, reads from the snapshot, not ready.
	pgProxy.Cut()
	outage := refPath{path: "/during/outage", proxy: "api"}
	for i := range 10 {
		evs := make([]map[string]any, 50)
		for j := range evs {
			evs[j] = map[string]any{"path": outage.path, "status": 200, "proxyId": outage.proxy}
		}
		if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", ndjson(evs...), map[string]string{"Idempotency-Key": fmt.Sprintf("%s-%d", id, i)}); code != http.StatusAccepted {
			t.Fatalf("ingest with PostgreSQL down: %d %v", code, out)
		}
		outage.requests += 50
	}
	if code, a := c.paths(t, "limit=5"); code != 200 || a.Metadata.DataSource != "kv-snapshot" {
		t.Fatalf("read with PostgreSQL down: %d %+v", code, a.Metadata)
	}
	waitStatus(t, c, "/readyz", http.StatusServiceUnavailable)
	time.Sleep(time.Second) // the aggregator retries against the cut SQL
	if got := sqlTotal(); got != want {
		t.Fatalf("SQL changed while cut off: %d, want %d", got, want)
	}
	pgProxy.Restore()
	want += outage.requests
	waitFor(t, 90*time.Second, func() bool { return sqlTotal() == want }, "events queued during the outage applied")
	waitStatus(t, c, "/readyz", http.StatusOK)
	ref = append(ref, outage)
	waitSource(t, c, "kv-snapshot", len(ref))

	// Redis gone: reads fall back to SQL, exactly.
	redisProxy.Cut()
	waitSource(t, c, "d1-fallback", len(ref))
	checkRandomQueries(t, c, ref, "d1-fallback", 20)

	// Both gone: 503 UNAVAILABLE, never a 500.
	pgProxy.Cut()
	waitFor(t, 90*time.Second, func() bool {
		code, a := c.paths(t, "limit=5")
		if code != http.StatusServiceUnavailable && code != http.StatusOK {
			t.Fatalf("read with SQL and KV down: %d %+v", code, a)
		}
		return code == http.StatusServiceUnavailable && a.Error == "UNAVAILABLE"
	}, "503 UNAVAILABLE with SQL and KV down")

	pgProxy.Restore()
	redisProxy.Restore()
	waitSource(t, c, "kv-snapshot", len(ref))
	checkRandomQueries(t, c, ref, "kv-snapshot", 20)
	if got := sqlTotal(); got != want {
		t.Fatalf("SQL holds %d events, %d acknowledged", got, want)
	}
	c.stop()
}

// needPostgresRedis returns the test PostgreSQL and Redis URLs, skipping
// when either is not configured.
func needPostgresRedis(t *testing.T) (pg, redis string) {
	t.Helper()
	pg, redis = os.Getenv("PATHSTATS_TEST_POSTGRES"), os.Getenv("PATHSTATS_TEST_REDIS")
	if pg == "" || redis == "" {
		t.Skip("PATHSTATS_TEST_POSTGRES and PATHSTATS_TEST_REDIS are needed")
	}
	return pg, redis
}

// hostPort is the host:port of a backend URL.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// viaProxy points a backend URL at the proxy.
func viaProxy(t *testing.T, raw string, p *testutil.CutProxy) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}

// waitStatus polls an unauthenticated admin path until it answers code.
func waitStatus(t *testing.T, c *child, path string, code int) {
	t.Helper()
	waitFor(t, 90*time.Second, func() bool {
		resp, err := http.Get(c.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == code
	}, fmt.Sprintf("%s answering %d", path, code))
}

// waitFor polls cond every 50 ms, failing with what after d.
func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
