// Package postgres implements pathstats.StatsStore on PostgreSQL through
// pgx (a pgxpool connection pool), with the same tables and semantics as the
// SQLite store: hourly rows (the source of truth), a batch-id ledger, dead
// letters, the rolling 24-hour window read by the SQL fallback, path configs
// and the migration config history.
//
// Several nodes may share one database: schema migrations serialise on an
// advisory lock, batch ids are inserted in sorted order and deltas upserted
// in key order (so concurrent Apply calls cannot deadlock), and moving the
// window takes the window_state row exclusively while Apply holds it shared.
//
// Paths and proxy ids use the "C" collation (byte order, as Go compares
// strings). The q filter's case folding is strings.ToLower computed in Go
// and stored in path_fold, so it does not depend on the database's locale.
// Paths must be valid UTF-8 without NUL bytes (PostgreSQL text).
package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pathstats/pathstats"
)

var (
	_ pathstats.StatsStore      = (*StatsStore)(nil)
	_ pathstats.WindowReader    = (*StatsStore)(nil)
	_ pathstats.PathConfigStore = (*StatsStore)(nil)
	_ pathstats.ConfigHistory   = (*StatsStore)(nil)
)

// Options tune a StatsStore.
type Options struct {
	// Now is the store's clock (nil: time.Now). It places the rolling
	// window and stamps applied rows; tests set a fixed clock.
	Now func() time.Time
	// Schema, when set, is created if missing and used through the
	// connections' search_path (tests use one schema per case).
	Schema string
}

// StatsStore is a pathstats.StatsStore on a PostgreSQL database.
type StatsStore struct {
	pool *pgxpool.Pool
	now  func() time.Time

	advanceMu   sync.Mutex   // one AdvanceWindow at a time on this node
	windowStart atomic.Int64 // window start last committed (a lower bound)
}

// Open connects to the database at url (a PostgreSQL URL or DSN), applies
// pending schema migrations, brings the window up to the store's clock
// (building it from the hourly rows on the first open) and returns the store.
func Open(ctx context.Context, url string, opts Options) (*StatsStore, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if opts.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := migrate(ctx, pool, opts.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	s := &StatsStore{pool: pool, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.AdvanceWindow(ctx, s.now()); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Ping checks the database is reachable.
func (s *StatsStore) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w: %w", pathstats.ErrUnavailable, err)
	}
	return nil
}

// Close closes the pool (waiting for connections in use to be released).
func (s *StatsStore) Close() error {
	s.pool.Close()
	return nil
}
