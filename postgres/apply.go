package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats"
)

// Apply applies batches and stores dead letters in one transaction. A batch
// whose id is already in the ledger, or repeats an earlier batch of the same
// call, is counted as a duplicate and its deltas are skipped. The window is
// moved first (in its own transaction) if the store's clock passed an hour;
// Apply then holds the window start shared and adds the deltas of window
// hours to the window.
func (s *StatsStore) Apply(ctx context.Context, batches []*pathstats.Batch, dead []pathstats.DeadLetter) (pathstats.ApplyResult, error) {
	if len(batches) == 0 && len(dead) == 0 {
		return pathstats.ApplyResult{}, nil
	}
	if err := s.maybeAdvance(ctx); err != nil {
		return pathstats.ApplyResult{}, err
	}
	now := s.now()
	var res pathstats.ApplyResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		res, err = applyTx(ctx, tx, batches, dead, now)
		return err
	})
	if err != nil {
		return pathstats.ApplyResult{}, err
	}
	return res, nil
}

// applyTx does the work of Apply inside tx. Locks are taken in one order by
// every transaction (window state shared, ledger ids sorted, hourly rows,
// window rows and rank buckets each in key order), so concurrent calls
// wait for each other but never deadlock.
func applyTx(ctx context.Context, tx pgx.Tx, batches []*pathstats.Batch, dead []pathstats.DeadLetter, now time.Time) (pathstats.ApplyResult, error) {
	var res pathstats.ApplyResult
	var start int64
	if err := tx.QueryRow(ctx, `SELECT start_hour, `+markWindowWriter+` FROM window_state WHERE id = 1 FOR SHARE`).Scan(&start, nil); err != nil {
		return res, fmt.Errorf("apply: read window state: %w", err)
	}
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
	if err := upsertWindow(ctx, tx, windowDeltas(deltas, start)); err != nil {
		return res, err
	}
	if err := insertDeadLetters(ctx, tx, dead, now); err != nil {
		return res, err
	}
	return res, nil
}

// recordBatches inserts the batch ids into the ledger (one statement, ids
// sorted) and returns the batches that were not there yet, in call order;
// a repeated id within the call counts once.
func recordBatches(ctx context.Context, tx pgx.Tx, batches []*pathstats.Batch, now time.Time) ([]*pathstats.Batch, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(batches))
	for _, b := range batches {
		ids = append(ids, b.ID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	rows, err := tx.Query(ctx, `INSERT INTO batch_ledger (batch_id, applied_at)
		SELECT id, $2 FROM unnest($1::text[]) AS u(id) ORDER BY id
		ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id`, ids, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("apply: ledger insert: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("apply: ledger insert: %w", err)
	}
	fresh := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		fresh[id] = true
	}
	applied := make([]*pathstats.Batch, 0, len(inserted))
	for _, b := range batches {
		if fresh[b.ID] {
			applied = append(applied, b)
			delete(fresh, b.ID) // a later repeat is a duplicate
		}
	}
	return applied, nil
}

// upsertHourly adds deltas (unique keys, sorted) to the hourly rows in one
// statement.
func upsertHourly(ctx context.Context, tx pgx.Tx, deltas []pathstats.Delta, now time.Time) error {
	if len(deltas) == 0 {
		return nil
	}
	var c columnar
	for i := range deltas {
		c.add(&deltas[i], true)
	}
	if _, err := tx.Exec(ctx, hourlyUpsertSQL, c.args(true, now.Unix())...); err != nil {
		return fmt.Errorf("upsert hourly: %w", err)
	}
	return nil
}

// insertDeadLetters stores dead letters; a zero ReceivedAt becomes now.
func insertDeadLetters(ctx context.Context, tx pgx.Tx, dead []pathstats.DeadLetter, now time.Time) error {
	for _, d := range dead {
		at := d.ReceivedAt
		if at.IsZero() {
			at = now
		}
		payload := d.Payload
		if payload == nil {
			payload = []byte{}
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO dead_letters (msg_id, reason, payload, received_at) VALUES ($1, $2, $3, $4)`,
			d.MsgID, d.Reason, payload, at.UnixMilli()); err != nil {
			return fmt.Errorf("insert dead letter %s: %w", d.MsgID, err)
		}
	}
	return nil
}
