package legacy

import (
	"context"
	"fmt"
	"time"
)

// Cleanup batch sizes.
const (
	DefaultBatchSize = 1000
	MaxBatchSize     = 10000
)

// State names reported by Stats.
const (
	StateActive         = "active"
	StateDecommissioned = "decommissioned"
)

// Stats describes the legacy system (GET /api/admin/paths/do/stats).
type Stats struct {
	Instances    int    `json:"instances"`    // stored plus not yet flushed
	StoredBytes  int64  `json:"storedBytes"`  // bytes of the stored instance data
	State        string `json:"state"`        // active | decommissioned
	ActiveActors int64  `json:"activeActors"` // actors awake (with a goroutine)
	Dropped      int64  `json:"dropped"`      // increments dropped on full mailboxes
}

// Stats returns the system's counts. After decommission it still answers
// (from storage), with State "decommissioned".
func (s *System) Stats(ctx context.Context) (Stats, error) {
	if s.state.Load() == stateClosed && !s.decom.Load() {
		return Stats{}, errClosed
	}
	stored, bytes, err := s.store.usage(ctx)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Instances: s.Instances(), StoredBytes: bytes, State: StateActive,
		ActiveActors: s.awake.Load(), Dropped: s.dropped.Load()}
	if s.decom.Load() {
		st.State, st.Instances = StateDecommissioned, stored
	}
	return st, nil
}

// Cleanup deletes every instance, batchSize at a time (<= 0: 1,000; at most
// 10,000): it flushes, then walks the stored instances once in name order,
// each batch deleting the next batchSize rows in one transaction and
// stopping their actors. It needs no state beyond the rows, so a run
// interrupted by ctx or a crash is resumed by running it again; with nothing
// left it returns 0, 0. remaining counts instances that traffic created
// during the run (repeat to delete them). progress, if set, is called after
// each batch.
func (s *System) Cleanup(ctx context.Context, batchSize int, progress func(deleted, remaining int)) (deleted, remaining int, err error) {
	return s.cleanup(ctx, batchSize, time.Time{}, progress)
}

// cleanup is Cleanup that stops starting batches after deadline (if set).
func (s *System) cleanup(ctx context.Context, batchSize int, deadline time.Time, progress func(deleted, remaining int)) (deleted, remaining int, err error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.usable(); err != nil {
		return 0, 0, err
	}
	return s.cleanupLocked(ctx, batchSize, deadline, progress)
}

// cleanupLocked is cleanup under opMu.
func (s *System) cleanupLocked(ctx context.Context, batchSize int, deadline time.Time, progress func(deleted, remaining int)) (deleted, remaining int, err error) {
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	batchSize = min(batchSize, MaxBatchSize)
	if err := s.Flush(ctx); err != nil {
		return 0, s.Instances(), err
	}
	// One pass in name order: the cursor only moves forward, so the run ends
	// even while traffic re-creates instances behind it.
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return deleted, s.Instances(), err
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		n, err := s.cleanupBatch(ctx, batchSize, &after)
		deleted += n
		if err != nil {
			return deleted, s.Instances(), err
		}
		if n == 0 {
			break
		}
		if progress != nil {
			progress(deleted, s.Instances())
		}
	}
	return deleted, s.Instances(), nil
}

// cleanupBatch deletes the next batch of stored instances after *after and
// moves *after to the last one.
func (s *System) cleanupBatch(ctx context.Context, size int, after *string) (int, error) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	names, err := s.store.namesAfter(ctx, *after, size)
	if err != nil || len(names) == 0 {
		return 0, err
	}
	*after = names[len(names)-1]
	return s.removeLocked(ctx, names)
}

// removeLocked deletes the named instances: their rows, then their actors.
// The caller holds the flush lock, so no flush writes a row back between the
// delete and the actors' stop; a deleted actor is never flushed again.
func (s *System) removeLocked(ctx context.Context, names []string) (int, error) {
	if err := s.store.remove(ctx, names); err != nil {
		return 0, err
	}
	s.mu.Lock()
	acts := make([]*actor, 0, len(names))
	for _, name := range names {
		if a := s.byName[name]; a != nil {
			acts = append(acts, a)
		}
	}
	s.mu.Unlock()
	// The rows are gone: stop the actors even if ctx ends now, or a later
	// flush would write them back.
	sctx := context.WithoutCancel(ctx)
	if err := fanOut(sctx, len(acts), func(ctx context.Context, i int) error { return s.stop(ctx, acts[i]) }); err != nil {
		return 0, err
	}
	s.mu.Lock()
	for _, a := range acts {
		if s.byName[a.name] == a {
			delete(s.byName, a.name)
		}
	}
	s.rebuildLocked()
	s.mu.Unlock()
	return len(names), nil
}

// Decommission retires the legacy system for good, as one operation that
// traffic cannot undo: it stops the dual write first (no increment and no
// new instance from then on), deletes every stored instance (unless force,
// which keeps the data in storage), persists the flag (so it survives
// restarts), stops every actor and flushes. On failure before the flag is
// persisted the dual write resumes and nothing is decommissioned. It returns
// the instances deleted. Afterwards every operation answers GONE.
func (s *System) Decommission(ctx context.Context, force bool) (deleted int, err error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.usable(); err != nil {
		return 0, err
	}
	if !s.state.CompareAndSwap(stateActive, stateRetiring) {
		return 0, s.usable()
	}
	done := false
	defer func() {
		if !done {
			s.state.CompareAndSwap(stateRetiring, stateActive)
		}
	}()
	if !force {
		if deleted, err = s.deleteAll(ctx); err != nil {
			return deleted, fmt.Errorf("decommission: cleanup: %w", err)
		}
	}
	if err := s.store.setDecommissioned(ctx, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return deleted, err
	}
	done = true
	s.decom.Store(true)
	s.state.Store(stateDecommissioned)
	s.stopBackground()
	if err := s.sleepAll(ctx); err != nil {
		return deleted, err
	}
	if err := s.Flush(ctx); err != nil {
		return deleted, err
	}
	s.log.Info("legacy system decommissioned", "deleted", deleted, "instancesLeft", s.Instances(), "force", force)
	return deleted, nil
}

// deleteAll deletes every instance while the dual write is stopped: the
// stored ones in batches, then the ones only in memory (an increment that
// passed the state check as the dual write stopped may still create or
// touch an actor that no flush stored yet). Stopped actors cannot be
// recreated: only an active system creates actors.
func (s *System) deleteAll(ctx context.Context) (int, error) {
	n, _, err := s.cleanupLocked(ctx, MaxBatchSize, time.Time{}, nil)
	if err != nil {
		return n, err
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	var names []string
	for _, a := range s.actors() {
		names = append(names, a.name)
	}
	if len(names) == 0 {
		return n, nil
	}
	live, err := s.removeLocked(ctx, names)
	return n + live, err
}
