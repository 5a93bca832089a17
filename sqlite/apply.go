package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/pathstats/pathstats"
)

// upsertChunk is the number of rows one upsert statement carries
// (27 parameters each, far below SQLite's 32766 limit).
const upsertChunk = 250

// Apply applies batches and stores dead letters in one transaction. A batch
// whose id is already in the ledger, or repeats an earlier batch of the same
// call, is counted as a duplicate and its deltas are skipped. In the same
// transaction the window is moved if the store's clock passed an hour, and
// the deltas of window hours are added to it.
func (s *StatsStore) Apply(ctx context.Context, batches []*pathstats.Batch, dead []pathstats.DeadLetter) (pathstats.ApplyResult, error) {
	if len(batches) == 0 && len(dead) == 0 {
		return pathstats.ApplyResult{}, nil
	}
	now := s.now()
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return pathstats.ApplyResult{}, fmt.Errorf("apply: begin: %w", err)
	}
	defer tx.Rollback()
	start, err := advanceTx(ctx, tx, WindowStart(now))
	if err != nil {
		return pathstats.ApplyResult{}, err
	}
	res, err := applyTx(ctx, tx, batches, dead, now, start)
	if err != nil {
		return pathstats.ApplyResult{}, err
	}
	if err := tx.Commit(); err != nil {
		return pathstats.ApplyResult{}, fmt.Errorf("apply: commit: %w", err)
	}
	s.noteWindowStart(start)
	return res, nil
}

// applyTx does the work of Apply inside tx; deltas of hours >= windowStart
// also go into the window.
func applyTx(ctx context.Context, tx *sql.Tx, batches []*pathstats.Batch, dead []pathstats.DeadLetter, now time.Time, windowStart int64) (pathstats.ApplyResult, error) {
	var res pathstats.ApplyResult
	applied, err := recordBatches(ctx, tx, batches, now)
	if err != nil {
		return res, err
	}
	res.Applied = len(applied)
	res.Duplicates = len(batches) - len(applied)
	for _, b := range applied {
		res.Events += b.Events()
	}
	deltas := pathstats.MergeDeltas(applied)
	if err := upsertHourly(ctx, tx, deltas, now); err != nil {
		return res, err
	}
	res.Rows = len(deltas)
	if err := upsertWindow(ctx, tx, windowDeltas(deltas, windowStart)); err != nil {
		return res, err
	}
	if err := insertDeadLetters(ctx, tx, dead, now); err != nil {
		return res, err
	}
	return res, nil
}

// recordBatches inserts each batch id into the ledger and returns the
// batches that were not there yet, in order.
func recordBatches(ctx context.Context, tx *sql.Tx, batches []*pathstats.Batch, now time.Time) ([]*pathstats.Batch, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO batch_ledger (batch_id, applied_at) VALUES (?, ?) ON CONFLICT (batch_id) DO NOTHING`)
	if err != nil {
		return nil, fmt.Errorf("apply: prepare ledger insert: %w", err)
	}
	defer stmt.Close()
	applied := make([]*pathstats.Batch, 0, len(batches))
	for _, b := range batches {
		r, err := stmt.ExecContext(ctx, b.ID, now.UnixMilli())
		if err != nil {
			return nil, fmt.Errorf("apply: ledger insert %s: %w", b.ID, err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("apply: ledger insert %s: %w", b.ID, err)
		}
		if n == 1 {
			applied = append(applied, b)
		}
	}
	return applied, nil
}

// upsertHourly adds deltas to the hourly rows in multi-row statements of
// upsertChunk rows; the full-size statement is prepared once.
func upsertHourly(ctx context.Context, tx *sql.Tx, deltas []pathstats.Delta, now time.Time) error {
	var full *sql.Stmt
	args := make([]any, 0, min(len(deltas), upsertChunk)*len(upsertColumns))
	for start := 0; start < len(deltas); start += upsertChunk {
		chunk := deltas[start:min(start+upsertChunk, len(deltas))]
		args = args[:0]
		for i := range chunk {
			d := &chunk[i]
			args = append(args, d.Hour, d.Path, d.ProxyID)
			args = appendCounters(args, &d.Counts)
			args = append(args, d.LastSeenMs, now.Unix())
		}
		var err error
		if len(chunk) == upsertChunk {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, upsertSQL(upsertChunk)); err != nil {
					return fmt.Errorf("upsert hourly: prepare: %w", err)
				}
				defer full.Close()
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, upsertSQL(len(chunk)), args...)
		}
		if err != nil {
			return fmt.Errorf("upsert hourly: %w", err)
		}
	}
	return nil
}

// insertDeadLetters stores dead letters; a zero ReceivedAt becomes now.
func insertDeadLetters(ctx context.Context, tx *sql.Tx, dead []pathstats.DeadLetter, now time.Time) error {
	for _, d := range dead {
		at := d.ReceivedAt
		if at.IsZero() {
			at = now
		}
		payload := d.Payload
		if payload == nil {
			payload = []byte{}
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO dead_letters (msg_id, reason, payload, received_at) VALUES (?, ?, ?, ?)`,
			d.MsgID, d.Reason, payload, at.UnixMilli()); err != nil {
			return fmt.Errorf("insert dead letter %s: %w", d.MsgID, err)
		}
	}
	return nil
}
