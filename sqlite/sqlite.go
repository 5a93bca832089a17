// Package sqlite implements pathstats.StatsStore on SQLite, through the
// pure-Go modernc.org/sqlite driver.
//
// Besides the hourly rows (the source of truth) it keeps a rolling 24-hour
// window table, updated in Apply's transaction and indexed for the read
// path's pages (see AdvanceWindow and QueryPaths).
//
// The store keeps two connection pools on one database file: a single writer
// connection, used by every write, so writers never contend for the lock
// among themselves, and a pool of read-only connections for the queries.
// The database runs in WAL mode, so readers never block the writer and the
// writer never blocks readers.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var (
	_ pathstats.StatsStore      = (*StatsStore)(nil)
	_ pathstats.WindowReader    = (*StatsStore)(nil)
	_ pathstats.PathConfigStore = (*StatsStore)(nil)
)

// busyTimeout is how long a connection waits for a lock before SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Options tune a StatsStore.
type Options struct {
	// Strict sets synchronous=FULL: every commit is fsynced, so applied
	// batches survive an OS crash or power loss. The default, NORMAL,
	// survives a process crash.
	Strict bool
	// Now is the store's clock (nil: time.Now). It places the rolling
	// window and stamps applied rows; tests set a fixed clock.
	Now func() time.Time
}

// StatsStore is a pathstats.StatsStore on one SQLite database file.
type StatsStore struct {
	writer *sql.DB // one connection: every write (Apply, window, configs, …)
	reader *sql.DB // read-only pool: queries
	now    func() time.Time

	advanceMu   sync.Mutex   // one AdvanceWindow at a time
	windowStart atomic.Int64 // window start last committed (a lower bound)
}

// Open opens (creating if needed) the database at path, applies pending
// schema migrations, brings the window up to the store's clock (building it
// from the hourly rows on the first open) and returns the store.
func Open(ctx context.Context, path string, opts Options) (*StatsStore, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open sqlite: invalid path %q", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	writer, err := openDB(ctx, path, opts, false)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, writer); err != nil {
		writer.Close()
		return nil, err
	}
	reader, err := openDB(ctx, path, opts, true)
	if err != nil {
		writer.Close()
		return nil, err
	}
	s := &StatsStore{writer: writer, reader: reader, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.AdvanceWindow(ctx, s.now()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openDB opens one pool. The pragmas are DSN parameters, so the driver
// applies them to every connection the pool opens, not just the first.
func openDB(ctx context.Context, path string, opts Options, readOnly bool) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, opts, readOnly))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if readOnly {
		n := max(4, runtime.GOMAXPROCS(0))
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
	} else {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
	}
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}

// dsn builds the data source name: the pragmas every connection runs, and
// BEGIN IMMEDIATE for the writer so a transaction takes the write lock up
// front instead of failing on upgrade.
func dsn(path string, opts Options, readOnly bool) string {
	sync := "NORMAL"
	if opts.Strict {
		sync = "FULL"
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode()
}

// Ping checks both pools can reach the database.
func (s *StatsStore) Ping(ctx context.Context) error {
	if err := s.writer.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite writer: %w: %w", pathstats.ErrUnavailable, err)
	}
	if err := s.reader.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite reader: %w: %w", pathstats.ErrUnavailable, err)
	}
	return nil
}

// Close closes both pools.
func (s *StatsStore) Close() error {
	rerr := s.reader.Close()
	werr := s.writer.Close()
	if err := errors.Join(rerr, werr); err != nil {
		return fmt.Errorf("close sqlite: %w", err)
	}
	return nil
}
