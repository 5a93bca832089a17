package legacy

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
)

// FeedBatches is how many accepted batches the dual write holds for the
// actors. Past it (the pipeline accepts batches faster than the actors apply
// them, sustained) a batch is dropped and its events are counted in
// pathstats_legacy_dropped_total.
const FeedBatches = 4096

// feed hands batches the pipeline accepted to the actors, off the caller's
// path: ObserveBatch queues, one goroutine delivers every delta as one
// increment, waiting for mailbox room instead of dropping.
type feed struct {
	ch        chan *pathstats.Batch
	queued    atomic.Int64 // batches accepted by ObserveBatch (dropped ones included)
	done      atomic.Int64 // batches delivered or dropped
	dropped   atomic.Int64 // batches dropped because the feed was full
	delivered atomic.Int64 // deltas delivered
}

// ObserveBatch counts a batch the pipeline accepted (the dual write): every
// delta becomes one increment of its path's actor. It never blocks: the
// batch is queued for delivery (see FeedBatches). The caller must not modify
// the batch afterwards. It does nothing after Close or Decommission.
func (s *System) ObserveBatch(b *pathstats.Batch) {
	if s.state.Load() != stateActive || len(b.Deltas) == 0 {
		return
	}
	s.feed.queued.Add(1)
	select {
	case s.feed.ch <- b:
	default:
		s.feed.done.Add(1)
		s.feed.dropped.Add(1)
		n := b.Events()
		s.dropped.Add(n)
		s.lim.Warn(s.log, "legacy dual write falling behind: batch dropped", "events", n,
			"dropped_batches_total", s.feed.dropped.Load(), "feed_capacity", FeedBatches)
	}
}

// feedLoop delivers queued batches until the system stops.
func (s *System) feedLoop() {
	defer s.bgWG.Done()
	for {
		select {
		case <-s.quit:
			return
		case b := <-s.feed.ch:
			s.deliverBatch(b)
			s.feed.done.Add(1)
		}
	}
}

// deliverBatch posts each delta of b to its actor, waiting for mailbox room.
func (s *System) deliverBatch(b *pathstats.Batch) {
	for i := range b.Deltas {
		if s.state.Load() != stateActive {
			return
		}
		d := &b.Deltas[i]
		inc := increment{atMs: hourClamp(d.LastSeenMs, d.Hour), requests: d.Requests(),
			errors: d.Errors(), clientErrors: d.ClientErrors()}
		for _, part := range splitIncrement(inc) {
			s.deliver(d.Path, s.msgOf(d.ProxyID, part), true)
		}
		s.feed.delivered.Add(1)
	}
}

// hourClamp keeps an increment's time inside its hour bucket (the hour is
// authoritative; the time only says when the path was last accessed).
func hourClamp(ms, hour int64) int64 {
	lo := hour * 1000
	return min(max(ms, lo), lo+3_599_999)
}

// splitIncrement cuts an increment into parts whose counts fit a mailbox
// message (uint32); nearly always it is one part.
func splitIncrement(inc increment) []increment {
	if inc.requests <= math.MaxUint32 {
		return []increment{inc}
	}
	var parts []increment
	for inc.requests > 0 {
		p := increment{atMs: inc.atMs, requests: min(inc.requests, math.MaxUint32)}
		p.errors = min(inc.errors, p.requests)
		p.clientErrors = min(inc.clientErrors, p.requests-p.errors)
		inc.requests -= p.requests
		inc.errors -= p.errors
		inc.clientErrors -= p.clientErrors
		parts = append(parts, p)
	}
	return parts
}

// syncFeed waits until every batch queued before the call reached its
// actors' mailboxes, so a read that follows sees it.
func (s *System) syncFeed(ctx context.Context) error {
	target := s.feed.queued.Load()
	for wait := 50 * time.Microsecond; s.feed.done.Load() < target; wait = min(2*wait, 20*time.Millisecond) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.quit:
			return nil
		case <-time.After(wait):
		}
	}
	return nil
}

// settle delivers the batches queued so far and flushes the live state, so a
// read of storage that follows sees every accepted event.
func (s *System) settle(ctx context.Context) error {
	if err := s.syncFeed(ctx); err != nil {
		return fmt.Errorf("legacy dual write: %w", err)
	}
	return s.Flush(ctx)
}
