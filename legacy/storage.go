package legacy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DBFile is the name of the legacy system's database inside Config.Dir.
const DBFile = "legacy.db"

const schema = `
CREATE TABLE IF NOT EXISTS instances (
	name          TEXT PRIMARY KEY,
	path          TEXT NOT NULL,
	proxy_id      TEXT NOT NULL,
	requests      INTEGER NOT NULL,
	errors        INTEGER NOT NULL,
	client_errors INTEGER NOT NULL,
	last_accessed INTEGER NOT NULL,
	hourly        BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;`

const upsertInstance = `
INSERT INTO instances (name, path, proxy_id, requests, errors, client_errors, last_accessed, hourly)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
	path = excluded.path, proxy_id = excluded.proxy_id, requests = excluded.requests,
	errors = excluded.errors, client_errors = excluded.client_errors,
	last_accessed = excluded.last_accessed, hourly = excluded.hourly`

const metaDecommissioned = "decommissioned"

// store is the legacy system's SQLite database: one writer connection and a
// small pool of read-only connections, in WAL mode.
type store struct {
	w, r  *sql.DB
	load1 *sql.Stmt
}

func openStore(ctx context.Context, dir string) (*store, error) {
	if dir == "" {
		return nil, errors.New("open legacy store: empty dir")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open legacy store: %w", err)
	}
	path := filepath.Join(dir, DBFile)
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open legacy store: invalid path %q", path)
	}
	w, err := openPool(ctx, path, false)
	if err != nil {
		return nil, err
	}
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("create legacy schema: %w", err)
	}
	r, err := openPool(ctx, path, true)
	if err != nil {
		w.Close()
		return nil, err
	}
	st := &store{w: w, r: r}
	st.load1, err = r.PrepareContext(ctx, `SELECT proxy_id, requests, errors, client_errors, last_accessed, hourly FROM instances WHERE name = ?`)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("prepare load: %w", err)
	}
	return st, nil
}

func openPool(ctx context.Context, path string, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	n := 1
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		n = 4
	} else {
		q.Set("_txlock", "immediate")
	}
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open legacy db: %w", err)
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open legacy db %s: %w", path, err)
	}
	return db, nil
}

func (st *store) close() error {
	var errs []error
	if st.load1 != nil {
		errs = append(errs, st.load1.Close())
	}
	errs = append(errs, st.r.Close(), st.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close legacy db: %w", err)
	}
	return nil
}

// decommissioned reads the persisted flag.
func (st *store) decommissioned(ctx context.Context) (bool, error) {
	var v string
	err := st.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaDecommissioned).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read decommissioned flag: %w", err)
	}
	return v != "", nil
}

// setDecommissioned persists the flag with the time it was set.
func (st *store) setDecommissioned(ctx context.Context, at string) error {
	_, err := st.w.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, metaDecommissioned, at)
	if err != nil {
		return fmt.Errorf("write decommissioned flag: %w", err)
	}
	return nil
}

// index calls fn with every stored instance's name and path.
func (st *store) index(ctx context.Context, fn func(name, path string)) error {
	rows, err := st.r.QueryContext(ctx, `SELECT name, path FROM instances`)
	if err != nil {
		return fmt.Errorf("read instance index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, path string
		if err := rows.Scan(&name, &path); err != nil {
			return fmt.Errorf("read instance index: %w", err)
		}
		fn(name, path)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read instance index: %w", err)
	}
	return nil
}

// load reads one instance's state; a missing row is an empty state.
func (st *store) load(ctx context.Context, name string) (state, error) {
	var s state
	var hourly []byte
	err := st.load1.QueryRowContext(ctx, name).Scan(&s.proxyID, &s.requests, &s.errors, &s.clientErrors, &s.lastAccessed, &hourly)
	if errors.Is(err, sql.ErrNoRows) {
		return state{}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("load instance %s: %w", name, err)
	}
	if s.hourly, err = decodeHourly(hourly); err != nil {
		return state{}, fmt.Errorf("load instance %s: %w", name, err)
	}
	return s, nil
}

// write stores snapshots in one transaction.
func (st *store) write(ctx context.Context, snaps []snapshot) error {
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin flush: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, upsertInstance)
	if err != nil {
		return fmt.Errorf("prepare flush: %w", err)
	}
	defer stmt.Close()
	var buf []byte
	for i := range snaps {
		sn := &snaps[i]
		buf = appendHourly(buf[:0], sn.hourly)
		if _, err := stmt.ExecContext(ctx, sn.name, sn.path, sn.proxyID, sn.requests, sn.errors,
			sn.clientErrors, sn.lastAccessed, buf); err != nil {
			return fmt.Errorf("write instance %s: %w", sn.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit flush: %w", err)
	}
	return nil
}

// namesAfter returns up to n stored instance names after after, in name
// order.
func (st *store) namesAfter(ctx context.Context, after string, n int) ([]string, error) {
	rows, err := st.w.QueryContext(ctx, `SELECT name FROM instances WHERE name > ? ORDER BY name LIMIT ?`, after, n)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list instances: %w", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	return names, nil
}

// remove deletes instances in one transaction.
func (st *store) remove(ctx context.Context, names []string) error {
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin delete: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `DELETE FROM instances WHERE name = ?`)
	if err != nil {
		return fmt.Errorf("prepare delete: %w", err)
	}
	defer stmt.Close()
	for _, name := range names {
		if _, err := stmt.ExecContext(ctx, name); err != nil {
			return fmt.Errorf("delete instance %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit delete: %w", err)
	}
	return nil
}

// usage returns the stored instance count and the bytes their data takes
// (names, paths, proxy ids, hourly blobs and four 8-byte counters each).
func (st *store) usage(ctx context.Context) (n int, bytes int64, err error) {
	err = st.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(length(CAST(name AS BLOB)) + length(CAST(path AS BLOB)) + length(CAST(proxy_id AS BLOB)) + length(hourly) + 32), 0) FROM instances`).Scan(&n, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("read legacy usage: %w", err)
	}
	return n, bytes, nil
}
