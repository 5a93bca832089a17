package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/storetest"
)

// testURLEnv names the database the tests use; unset skips them.
const testURLEnv = "PATHSTATS_TEST_POSTGRES"

// testURL returns the test database URL, skipping when unset and failing
// when set but unreachable.
func testURL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv(testURLEnv)
	if url == "" {
		tb.Skipf("%s not set", testURLEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("%s set but unreachable: %v", testURLEnv, err)
	}
	if err := conn.Close(ctx); err != nil {
		tb.Fatalf("close: %v", err)
	}
	return url
}

// freshSchema returns a new random schema name and drops the schema when the
// test ends (after the store, closed by a later-registered cleanup).
func freshSchema(tb testing.TB, url string) string {
	tb.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	schema := "pathstats_test_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// openTest opens a store on a fresh schema.
func openTest(tb testing.TB, url string, now func() time.Time) *StatsStore {
	tb.Helper()
	schema := freshSchema(tb, url)
	s, err := Open(context.Background(), url, Options{Now: now, Schema: schema})
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	return s
}

func TestStatsStore(t *testing.T) {
	url := testURL(t)
	storetest.Run(t, "postgres", func(t *testing.T, now func() time.Time) pathstats.StatsStore {
		return openTest(t, url, now)
	})
}
