package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pathstats/pathstats"
)

var _ pathstats.ConfigHistory = (*StatsStore)(nil)

// AppendConfigChange records one migration config change and returns its id.
// c.ID is ignored; a zero c.At takes the store's clock.
func (s *StatsStore) AppendConfigChange(ctx context.Context, c pathstats.ConfigChange) (int64, error) {
	before, err := json.Marshal(c.Before)
	if err != nil {
		return 0, fmt.Errorf("append config change: encode before: %w", err)
	}
	after, err := json.Marshal(c.After)
	if err != nil {
		return 0, fmt.Errorf("append config change: encode after: %w", err)
	}
	at := c.At
	if at.IsZero() {
		at = s.now()
	}
	r, err := s.writer.ExecContext(ctx, `INSERT INTO migration_history
		(at_ms, actor, source, reason, before, after) VALUES (?, ?, ?, ?, ?, ?)`,
		at.UnixMilli(), c.Actor, c.Source, c.Reason, string(before), string(after))
	if err != nil {
		return 0, fmt.Errorf("append config change: %w", err)
	}
	id, err := r.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("append config change: id: %w", err)
	}
	return id, nil
}

// ConfigChanges returns at most limit changes with id < before (before <= 0:
// from the newest), newest first, and the total number of changes. Times are
// UTC at millisecond precision.
func (s *StatsStore) ConfigChanges(ctx context.Context, before int64, limit int) ([]pathstats.ConfigChange, int, error) {
	var total int
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM migration_history`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("config changes: count: %w", err)
	}
	out := []pathstats.ConfigChange{}
	if limit <= 0 {
		return out, total, nil
	}
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT id, at_ms, actor, source, reason, before, after
		FROM migration_history WHERE id < ? ORDER BY id DESC LIMIT ?`, before, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("config changes: %w", err)
	}
	defer rows.Close()
	out, err = pathstats.ScanConfigChanges(rows)
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}
