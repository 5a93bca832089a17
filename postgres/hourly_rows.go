package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pathstats/pathstats/internal/hourmerge"
)

// hoursFromSQL lists the hour buckets >= $1 holding rows, ascending: one
// index seek per hour (a loose index scan of the primary key).
const hoursFromSQL = `WITH RECURSIVE h(b) AS (
    SELECT MIN(hour_bucket) FROM path_stats_hourly WHERE hour_bucket >= $1
  UNION ALL
    SELECT (SELECT MIN(hour_bucket) FROM path_stats_hourly WHERE hour_bucket > h.b)
    FROM h WHERE h.b IS NOT NULL
)
SELECT b FROM h WHERE b IS NOT NULL`

// hourCursorSQL declares cursor %s over one hour's rows in path order ("C"
// collation: byte order), the rows of a path's proxies adjacent.
const hourCursorSQL = `DECLARE %s NO SCROLL CURSOR FOR
SELECT path, requests, errors, last_seen_ms FROM path_stats_hourly
WHERE hour_bucket = %d ORDER BY path, proxy_id`

// hourlyBufferedRows bounds the rows buffered over all hour cursors: each
// cursor holds its current batch and the next one, of
// hourlyBufferedRows/(2*hours) rows each, at least hourlyMinFetch.
// (Variables, so tests can make batches small.)
var (
	hourlyBufferedRows = 1 << 18
	hourlyMinFetch     = 256
)

// hourlyConns is how many connections read the hour cursors, sharing one
// snapshot: each database backend works on its share of the hours while the
// merge runs.
const hourlyConns = 2

// EachPathHourly calls fn for every path with requests in hour buckets >=
// fromHour, in path order (byte order), with its hours ascending as
// {hourBucket, requests, errors} summed over proxies and lastSeenMs the
// latest event of those hours (unix milliseconds). It opens one
// server-side cursor per hour bucket (a range of the primary key, in path
// order: no sort), spread over hourlyConns read-only transactions sharing
// one snapshot, and merges them by path (internal/hourmerge), fetching each
// in batches one ahead, so its memory is bounded whatever the number of
// paths; hours is reused between calls and valid only during fn. An error
// from fn stops the walk and is returned as is.
func (s *StatsStore) EachPathHourly(ctx context.Context, fromHour int64, fn func(path string, lastSeenMs int64, hours [][3]int64) error) error {
	tx, err := s.pool.BeginTx(ctx, readOnly)
	if err != nil {
		return fmt.Errorf("each path hourly: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // read-only: nothing to undo
	buckets, err := listHours(ctx, tx, fromHour)
	if err != nil {
		return fmt.Errorf("each path hourly: %w", err)
	}
	txs := []pgx.Tx{tx}
	for len(txs) < s.hourlyConns(len(buckets)) {
		more, err := s.joinSnapshot(ctx, tx)
		if err != nil {
			return fmt.Errorf("each path hourly: %w", err)
		}
		defer func() { _ = more.Rollback(context.WithoutCancel(ctx)) }()
		txs = append(txs, more)
	}
	hours, stop, err := openHourCursors(ctx, txs, buckets)
	defer stop() // before the rollbacks: the fetchers use the connections
	if err != nil {
		return fmt.Errorf("each path hourly: %w", err)
	}
	var fnErr error
	err = hourmerge.Walk(hours, func(path string, last int64, hs [][3]int64) error {
		fnErr = fn(path, last, hs)
		return fnErr
	})
	switch {
	case err != nil && err == fnErr:
		return err
	case err != nil:
		return fmt.Errorf("each path hourly: %w", err)
	}
	return nil
}

// hourlyConns is how many connections a walk of hours hours uses: one
// when the pool is too small to spare more (waiting for a connection the
// walk itself holds would never end).
func (s *StatsStore) hourlyConns(hours int) int {
	if int(s.pool.Config().MaxConns) <= hourlyConns {
		return 1
	}
	return max(1, min(hourlyConns, hours))
}

// listHours returns the hour buckets >= fromHour holding rows, ascending.
func listHours(ctx context.Context, tx pgx.Tx, fromHour int64) ([]int64, error) {
	rows, err := tx.Query(ctx, hoursFromSQL, fromHour)
	if err != nil {
		return nil, fmt.Errorf("list hours: %w", err)
	}
	buckets, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list hours: %w", err)
	}
	return buckets, nil
}

// joinSnapshot begins another read-only transaction on a pooled connection
// that sees tx's snapshot.
func (s *StatsStore) joinSnapshot(ctx context.Context, tx pgx.Tx) (pgx.Tx, error) {
	var id string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&id); err != nil {
		return nil, fmt.Errorf("export snapshot: %w", err)
	}
	more, err := s.pool.BeginTx(ctx, readOnly)
	if err != nil {
		return nil, fmt.Errorf("join snapshot: %w", err)
	}
	if _, err := more.Exec(ctx, `SET TRANSACTION SNAPSHOT '`+strings.ReplaceAll(id, "'", "''")+`'`); err != nil {
		_ = more.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("join snapshot: %w", err)
	}
	return more, nil
}

// openHourCursors declares a cursor for every hour bucket, hour i in
// txs[i%len(txs)], and starts one fetcher per transaction reading their first
// batches. stop ends the fetchers (it is never nil).
func openHourCursors(ctx context.Context, txs []pgx.Tx, buckets []int64) (hours []hourmerge.Hour, stop func(), err error) {
	var fetchers []*fetcher
	stop = func() {
		for _, f := range fetchers {
			f.stop()
		}
	}
	for k, tx := range txs {
		// The whole of each cursor is read, but in path order: walk the
		// primary key (an index-only scan where pages are all-visible)
		// rather than scan and sort.
		batch := &pgx.Batch{}
		batch.Queue(`SET LOCAL cursor_tuple_fraction = 1.0`)
		batch.Queue(`SET LOCAL enable_sort = off`)
		for i := k; i < len(buckets); i += len(txs) {
			batch.Queue(fmt.Sprintf(hourCursorSQL, cursorName(i), buckets[i]))
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return nil, stop, fmt.Errorf("declare hour cursors: %w", err)
		}
	}
	for _, tx := range txs {
		fetchers = append(fetchers, startFetcher(ctx, tx.Conn().PgConn(), len(buckets)))
	}
	size := max(hourlyMinFetch, hourlyBufferedRows/(2*max(1, len(buckets))))
	hours = make([]hourmerge.Hour, len(buckets))
	for i, b := range buckets {
		c := &hourCursor{
			fetch:   "FETCH FORWARD " + strconv.Itoa(size) + " FROM " + cursorName(i),
			size:    size,
			f:       fetchers[i%len(fetchers)],
			ready:   make(chan *rowBatch, 1),
			current: &rowBatch{},
		}
		c.f.requests <- fetchRequest{c, &rowBatch{}}
		hours[i] = hourmerge.Hour{Bucket: b, Cursor: c}
	}
	return hours, stop, nil
}

// cursorName is the name of the i-th hour cursor.
func cursorName(i int) string { return "path_hour_" + strconv.Itoa(i) }

// fetcher runs the FETCHes of every hour cursor on the transaction's
// connection, one batch ahead of the merge: the database reads the next
// batches while the merge walks the current ones.
type fetcher struct {
	requests chan fetchRequest // one outstanding per cursor at most
	done     chan struct{}     // closed by stop
	exited   chan struct{}     // closed when the goroutine returns
}

// fetchRequest asks for the next batch of c, read into buf.
type fetchRequest struct {
	c   *hourCursor
	buf *rowBatch
}

// startFetcher starts the fetcher of n cursors.
func startFetcher(ctx context.Context, conn *pgconn.PgConn, n int) *fetcher {
	f := &fetcher{
		requests: make(chan fetchRequest, n),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
	}
	go f.run(ctx, conn)
	return f
}

// run serves requests in order until stop. A cursor's ready channel has
// room: it asks for a batch only after taking the previous one.
func (f *fetcher) run(ctx context.Context, conn *pgconn.PgConn) {
	defer close(f.exited)
	for {
		select {
		case <-f.done:
			return
		case r := <-f.requests:
			r.buf.read(ctx, conn, r.c.fetch)
			r.c.ready <- r.buf
		}
	}
}

// stop ends the fetcher and waits for its FETCH in flight, if any.
func (f *fetcher) stop() {
	if f == nil {
		return
	}
	close(f.done)
	<-f.exited
}

// rowBatch is one FETCH's rows: paths packed back to back, counters decoded
// from their binary form.
type rowBatch struct {
	paths  []byte
	ends   []int      // ends[i]: end of row i's path in paths
	counts [][3]int64 // requests, errors, last_seen_ms
	err    error
}

// binaryResults asks for every result column in binary: the counters
// arrive as 8-byte big-endian integers, the paths as their bytes.
var binaryResults = []int16{pgx.BinaryFormatCode}

// read runs the FETCH statement fetch, replacing the batch's rows.
func (b *rowBatch) read(ctx context.Context, conn *pgconn.PgConn, fetch string) {
	b.paths, b.ends, b.counts, b.err = b.paths[:0], b.ends[:0], b.counts[:0], nil
	rr := conn.ExecParams(ctx, fetch, nil, nil, nil, binaryResults)
	for rr.NextRow() {
		v := rr.Values()
		if len(v) != 4 || len(v[1]) != 8 || len(v[2]) != 8 || len(v[3]) != 8 {
			_, _ = rr.Close()
			b.err = fmt.Errorf("fetch: unexpected row shape")
			return
		}
		b.paths = append(b.paths, v[0]...)
		b.ends = append(b.ends, len(b.paths))
		b.counts = append(b.counts, [3]int64{
			int64(binary.BigEndian.Uint64(v[1])), int64(binary.BigEndian.Uint64(v[2])), int64(binary.BigEndian.Uint64(v[3])),
		})
	}
	tag, err := rr.Close()
	switch {
	case err != nil:
		b.err = fmt.Errorf("fetch: %w", err)
	case tag.RowsAffected() != int64(len(b.counts)):
		b.err = fmt.Errorf("fetch: %d rows, tag says %d", len(b.counts), tag.RowsAffected())
	}
}

// hourCursor reads one hour cursor batch by batch (hourmerge.Cursor).
type hourCursor struct {
	fetch string // the FETCH statement
	size  int    // rows per FETCH
	f     *fetcher
	ready chan *rowBatch // the next batch, from the fetcher
	done  bool           // the last batch was short: no more

	current *rowBatch
	i       int // the current row (1-based; 0: before the batch)
}

// Next moves to the next row, taking the next batch when this one is read
// and asking the fetcher for the one after.
func (c *hourCursor) Next() (bool, error) {
	if c.i < len(c.current.ends) {
		c.i++
		return true, nil
	}
	if c.done {
		return false, nil
	}
	next := <-c.ready
	if next.err != nil {
		c.done = true
		return false, next.err
	}
	old := c.current
	c.current, c.i = next, 0
	if len(next.ends) < c.size {
		c.done = true
	} else {
		c.f.requests <- fetchRequest{c, old}
	}
	if len(next.ends) == 0 {
		return false, nil
	}
	c.i = 1
	return true, nil
}

// Row returns the current row; path is valid until the next Next.
func (c *hourCursor) Row() ([]byte, int64, int64, int64) {
	b, start := c.current, 0
	if c.i > 1 {
		start = b.ends[c.i-2]
	}
	k := b.counts[c.i-1]
	return b.paths[start:b.ends[c.i-1]], k[0], k[1], k[2]
}
