package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pathstats/pathstats/postgres"
)

// TestPostgresBackend runs the server on PostgreSQL: ingest lands exactly
// once and the read path answers from it.
func TestPostgresBackend(t *testing.T) {
	base := os.Getenv("PATHSTATS_TEST_POSTGRES")
	if base == "" {
		t.Skip("PATHSTATS_TEST_POSTGRES not set")
	}
	ctx := context.Background()
	schema := fmt.Sprintf("pstest_serve_%d", time.Now().UnixNano())
	var conn *pgx.Conn
	dsn := pgSchema(t, base, schema, &conn)

	dir := t.TempDir()
	c := startServe(t, dir, "--sql", dsn, "--snapshot-interval", "200ms")
	ref := ingestReference(t, c)
	waitSource(t, c, "kv-snapshot", len(ref))
	checkRandomQueries(t, c, ref, "kv-snapshot", 20)
	c.stop()

	st, err := postgres.Open(ctx, base, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.PathTotals(ctx, 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	var want, got int64
	for _, r := range ref {
		want += r.requests
	}
	for _, r := range rows {
		got += r.Requests
	}
	if got != want || len(rows) != len(ref) {
		t.Fatalf("postgres holds %d events in %d rows, want %d in %d", got, len(rows), want, len(ref))
	}
}
