package pathstats

import (
	"context"
	"errors"
	"io"
	"time"
)

// ArchiveStore is what the archiver needs from a StatsStore (SQLite,
// PostgreSQL): the hours held, one hour's rows, and moving a verified part
// out of SQL or back into it exactly once. Part ids go into the same ledger
// as batch ids, in the same transaction as the rows, so a crash at any point
// leaves either all or nothing of a part applied and a retry is a no-op.
//
// Archived and restored hours are older than the rolling window; both
// methods refuse rows of hours inside it.
type ArchiveStore interface {
	// HoursBefore lists the hour buckets < beforeHour that hold rows, ascending.
	HoursBefore(ctx context.Context, beforeHour int64) ([]int64, error)
	// HourRows returns every row of one hour bucket in (path, proxyId) order.
	HourRows(ctx context.Context, hour int64) ([]HourlyRow, error)
	// RemoveArchived subtracts rows (one hour's, as read by HourRows and
	// written to the archive) from the hourly table and deletes the rows
	// left with no request, in one transaction that also records partID in
	// the ledger. Rows that grew since they were read keep the growth.
	// Rows of several hours are an error; no rows only record partID. An
	// hour still holding exactly the rows read (UpdatedAt kept as read) is
	// deleted at once, any other is subtracted row by row.
	// applied is false when partID was already in the ledger (nothing done).
	RemoveArchived(ctx context.Context, partID string, rows []HourlyRow) (applied bool, err error)
	// RestoreArchived adds rows back into the hourly table, recording
	// partID in the ledger in the same transaction; applied is false when
	// partID was already there.
	RestoreArchived(ctx context.Context, partID string, rows []HourlyRow) (applied bool, err error)
	// LedgerHas reports whether id (a batch or part id) is in the ledger.
	LedgerHas(ctx context.Context, id string) (bool, error)
}

// ErrHourInWindow is returned by ArchiveStore methods given rows of an hour
// inside the rolling window.
var ErrHourInWindow = errors.New("hour is inside the rolling window")

// ObjectStore is the archive's object storage (gocloud.dev/blob: a
// directory, or an S3-compatible bucket).
type ObjectStore interface {
	// Put writes an object in full; it is visible only once complete.
	Put(ctx context.Context, key string, data []byte) error
	// Get opens an object; a missing key gives an error matching ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the keys under prefix, in key order.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes an object; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	Close() error
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}
