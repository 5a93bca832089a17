package legacy

import (
	"context"
	"fmt"
	"time"
)

// markDirty queues a for the next flush. Observe calls it after its send,
// so a flush that starts after Observe returned includes the increment.
func (s *System) markDirty(a *actor) {
	if a.dirty.CompareAndSwap(false, true) {
		s.dirtyMu.Lock()
		s.dirty = append(s.dirty, a)
		s.dirtyMu.Unlock()
	}
}

// Flush writes the state of every actor that received increments since the
// last flush, in one transaction. Each state is a snapshot taken through the
// actor's mailbox, so it holds every increment sent before the flush began.
func (s *System) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	return s.flushLocked(ctx)
}

func (s *System) flushLocked(ctx context.Context) error {
	s.dirtyMu.Lock()
	list := s.dirty
	s.dirty, s.spare = s.spare[:0], nil
	s.dirtyMu.Unlock()
	if len(list) == 0 {
		s.giveBack(list)
		return nil
	}
	for _, a := range list {
		a.dirty.Store(false)
	}
	snaps := make([]snapshot, len(list))
	ok := make([]bool, len(list))
	err := fanOut(ctx, len(list), func(ctx context.Context, i int) error {
		var err error
		snaps[i], ok[i], err = s.snapshotOf(ctx, list[i])
		return err
	})
	if err == nil {
		n := 0
		for i := range snaps {
			if ok[i] {
				snaps[n] = snaps[i]
				n++
			}
		}
		if n > 0 {
			err = s.store.write(ctx, snaps[:n])
		}
	}
	if err != nil {
		for _, a := range list {
			s.markDirty(a) // retried by the next flush
		}
		s.flushErrors.Add(1)
		err = fmt.Errorf("flush legacy state: %w", err)
		s.lim.Error(s.log, "legacy write-behind flush failed; retried on the next flush", "actors", len(list), "err", err)
		return err
	}
	s.flushes.Add(1)
	s.lastFlushMs.Store(time.Now().UnixMilli())
	s.giveBack(list)
	return nil
}

// giveBack keeps a drained dirty list's array for reuse.
func (s *System) giveBack(list []*actor) {
	clear(list)
	s.dirtyMu.Lock()
	s.spare = list[:0]
	s.dirtyMu.Unlock()
}

// flushLoop is the write-behind: a flush every FlushInterval.
func (s *System) flushLoop() {
	defer s.bgWG.Done()
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			_ = s.Flush(s.bgCtx) // a failure is counted and logged by Flush
		}
	}
}

// reapLoop puts actors idle for IdleTimeout to sleep.
func (s *System) reapLoop() {
	defer s.bgWG.Done()
	t := time.NewTicker(max(s.cfg.IdleTimeout/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case now := <-t.C:
			s.reap(now)
		}
	}
}

// reap asks every awake actor that handled no message for IdleTimeout to
// sleep. The request is dropped when the mailbox is full (not idle then),
// and ignored by an actor with mail waiting.
func (s *System) reap(now time.Time) {
	for _, a := range s.actors() {
		if a.mbox.Load() == nil {
			a.idleSince = time.Time{}
			continue
		}
		ops := a.ops.Load()
		if ops != a.reapOps || a.idleSince.IsZero() {
			a.reapOps, a.idleSince = ops, now
			continue
		}
		if now.Sub(a.idleSince) >= s.cfg.IdleTimeout {
			s.tryAsk(a, &request{kind: reqHibernate})
			a.idleSince = now
		}
	}
}
