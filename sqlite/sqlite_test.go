package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/storetest"
)

func mustOpen(t *testing.T, path string, opts Options) *StatsStore {
	t.Helper()
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return s
}

func TestStatsStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, "sqlite", func(t *testing.T, now func() time.Time) pathstats.StatsStore {
		return mustOpen(t, filepath.Join(t.TempDir(), "pathstats.db"), Options{Now: now})
	})
}

func TestStatsStoreStrict(t *testing.T) {
	t.Parallel()
	storetest.Run(t, "sqlite (strict)", func(t *testing.T, now func() time.Time) pathstats.StatsStore {
		return mustOpen(t, filepath.Join(t.TempDir(), "pathstats.db"), Options{Strict: true, Now: now})
	})
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "dir", "pathstats.db")
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no embedded migrations")
	}
	for i := range 3 {
		s := mustOpen(t, path, Options{})
		var n, maxV int
		if err := s.reader.QueryRowContext(ctx,
			`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
			t.Fatalf("open %d: read schema_migrations: %v", i, err)
		}
		if n != len(ms) || maxV != ms[len(ms)-1].version {
			t.Errorf("open %d: %d migrations recorded, max %d; want %d, max %d", i, n, maxV, len(ms), ms[len(ms)-1].version)
		}
		for _, table := range []string{"path_stats_hourly", "batch_ledger", "dead_letters",
			"path_stats_window", "window_state", "window_counts", "path_configs"} {
			var name string
			if err := s.reader.QueryRowContext(ctx,
				`SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&name); err != nil {
				t.Errorf("open %d: table %s: %v", i, table, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pathstats.db")
	var c pathstats.Counts
	c.Status = [pathstats.NumStatusClasses]int64{0, 7, 1, 2, 3}
	c.Latency[4] = 13
	c.LastSeenMs = 1_767_225_600_123
	b := &pathstats.Batch{ID: "persist", Deltas: []pathstats.Delta{{Key: pathstats.Key{Hour: 1_767_225_600, Path: "/p", ProxyID: "default"}, Counts: c}}}

	s := mustOpen(t, path, Options{})
	if _, err := s.Apply(ctx, []*pathstats.Batch{b}, []pathstats.DeadLetter{{MsgID: "x", Reason: "r"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, path, Options{Strict: true})
	defer s.Close()
	got, err := s.PathTotals(ctx, 1_767_225_600, 1_767_225_600+3600)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Requests != 13 || got[0].Errors != 3 || got[0].ClientErrors != 2 || got[0].Counts != c {
		t.Errorf("after reopen: totals %+v, want one row with counts %+v", got, c)
	}
	if n, err := s.DeadLetters(ctx); err != nil || n != 1 {
		t.Errorf("after reopen: dead letters = %d, %v; want 1", n, err)
	}
	res, err := s.Apply(ctx, []*pathstats.Batch{b}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicates != 1 || res.Applied != 0 {
		t.Errorf("after reopen: re-apply %+v, want the ledger to hold the id", res)
	}
}

// TestPragmas checks the pragmas on the store's own connections: several
// reader connections held at once, and the writer.
func TestPragmas(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		sync int
	}{{Options{}, 1}, {Options{Strict: true}, 2}} {
		s := mustOpen(t, filepath.Join(t.TempDir(), "pathstats.db"), tc.opts)
		checkPragmas(t, "writer", s.writer, tc.sync, false)
		checkPragmas(t, "reader", s.reader, tc.sync, true)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func checkPragmas(t *testing.T, name string, db *sql.DB, wantSync int, readOnly bool) {
	t.Helper()
	ctx := context.Background()
	n := 1
	if readOnly {
		n = 3
	}
	conns := make([]*sql.Conn, n)
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("%s conn %d: %v", name, i, err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		var mode string
		var sync, busy, fk, queryOnly int
		for q, dst := range map[string]any{
			"PRAGMA journal_mode": &mode, "PRAGMA synchronous": &sync, "PRAGMA busy_timeout": &busy,
			"PRAGMA foreign_keys": &fk, "PRAGMA query_only": &queryOnly,
		} {
			if err := c.QueryRowContext(ctx, q).Scan(dst); err != nil {
				t.Fatalf("%s conn %d: %s: %v", name, i, q, err)
			}
		}
		wantQueryOnly := 0
		if readOnly {
			wantQueryOnly = 1
		}
		if !strings.EqualFold(mode, "wal") || sync != wantSync || busy != int(busyTimeout.Milliseconds()) || fk != 1 || queryOnly != wantQueryOnly {
			t.Errorf("%s conn %d: journal_mode=%s synchronous=%d busy_timeout=%d foreign_keys=%d query_only=%d; want wal %d %d 1 %d",
				name, i, mode, sync, busy, fk, queryOnly, wantSync, busyTimeout.Milliseconds(), wantQueryOnly)
		}
	}
}

func TestOpenRejectsBadPath(t *testing.T) {
	for _, p := range []string{"", "a.db?mode=ro", "file:a.db"} {
		if s, err := Open(context.Background(), p, Options{}); err == nil {
			s.Close()
			t.Errorf("open %q: no error", p)
		}
	}
}

func TestUpsertChunkStatementFits(t *testing.T) {
	if n := upsertChunk * len(upsertColumns); n > 32766 {
		t.Fatalf("upsert statement binds %d parameters, above SQLite's limit", n)
	}
	if got := strings.Count(upsertSQL(3), "?"); got != 3*len(upsertColumns) {
		t.Errorf("upsertSQL(3) has %d placeholders, want %d", got, 3*len(upsertColumns))
	}
}
