package recorder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
)

// pendingQueue holds built batches until the queue acknowledges them. A batch
// keeps its id across retries, so a publish whose outcome was unknown is
// deduplicated downstream.
type pendingQueue struct {
	mu      sync.Mutex
	items   []*pathstats.Batch
	deltas  int
	events  atomic.Int64
	batches atomic.Int64
	ready   chan struct{}
}

func (q *pendingQueue) push(bs []*pathstats.Batch, maxDeltas int) (dropped int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, b := range bs {
		if q.deltas+len(b.Deltas) > maxDeltas {
			dropped += b.Events()
			continue
		}
		q.items = append(q.items, b)
		q.deltas += len(b.Deltas)
		q.events.Add(b.Events())
		q.batches.Add(1)
	}
	return dropped
}

func (q *pendingQueue) head() *pathstats.Batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil
	}
	return q.items[0]
}

func (q *pendingQueue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	q.deltas -= len(b.Deltas)
	q.events.Add(-b.Events())
	q.batches.Add(-1)
}

// Run flushes every flush interval (or earlier when kicked) and publishes
// pending batches until ctx ends. Call Close afterwards to flush what is left.
func (r *Recorder) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.publishLoop(ctx, r.wake)
	}()
	tick := time.NewTicker(r.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		case <-r.kick:
		}
		r.Flush()
	}
}

// Flush moves all counters into pending batches, wakes the publisher and
// returns how many batches it built. Batches beyond the pending bound are
// dropped and counted.
func (r *Recorder) Flush() int {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.dirtyKeys.Store(0)
	var deltas []pathstats.Delta
	for _, t := range *r.tables.Load() {
		deltas = t.collect(deltas)
	}
	r.stats.LastFlushUnixMs.Store(time.Now().UnixMilli())
	if len(deltas) == 0 {
		return 0
	}
	id := fmt.Sprintf("%s-%d", r.prefix, r.seq.Add(1))
	batches := pathstats.SplitBatches(id, r.cfg.Node, deltas)
	var events int64
	now := time.Now().UnixMilli()
	for _, b := range batches {
		b.CreatedMs = now
		events += b.Events()
	}
	r.stats.Recorded.Add(events)
	r.stats.Batches.Add(int64(len(batches)))
	if dropped := r.pending.push(batches, r.cfg.MaxPendingDeltas); dropped > 0 {
		r.stats.DroppedEvents.Add(dropped)
		r.lim.Warn(r.cfg.Logger, "recorder buffer full, dropping events", "dropped", dropped,
			"droppedTotal", r.stats.DroppedEvents.Load(), "lastPublishError", r.lastPublishError())
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return len(batches)
}

// publishLoop publishes pending batches in order, retrying with backoff
// while the queue is unavailable.
func (r *Recorder) publishLoop(ctx context.Context, wake <-chan struct{}) {
	backoff := 100 * time.Millisecond
	for {
		err := r.publishPending(ctx)
		if err == nil {
			backoff = 100 * time.Millisecond
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// publishPending publishes until the pending queue is empty or a publish
// fails.
func (r *Recorder) publishPending(ctx context.Context) error {
	for {
		b := r.pending.head()
		if b == nil {
			return nil
		}
		if err := r.publish(ctx, b); err != nil {
			return err
		}
		for _, o := range r.observers {
			o.ObserveBatch(b)
		}
		r.pending.pop()
	}
}

func (r *Recorder) publish(ctx context.Context, b *pathstats.Batch) error {
	data, err := pathstats.EncodeBatch(b)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	if err := r.pub.Publish(pctx, b.ID, data); err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return fmt.Errorf("publish batch %s: %w", b.ID, err) // stopping, not a failure: Close retries
		}
		r.stats.PublishFailures.Add(1)
		msg := err.Error()
		r.stats.LastPublishError.Store(&msg)
		r.lim.Warn(r.cfg.Logger, "publish batch failed; will retry", "batch", b.ID, "err", err,
			"pendingEvents", r.pending.events.Load())
		return fmt.Errorf("publish batch %s: %w", b.ID, err)
	}
	r.stats.Published.Add(1)
	r.stats.PublishedEvents.Add(b.Events())
	return nil
}

// lastPublishError is the error of the last failed publish ("" if none).
func (r *Recorder) lastPublishError() string {
	if p := r.stats.LastPublishError.Load(); p != nil {
		return *p
	}
	return ""
}

// Close flushes the counters and publishes everything pending, giving up
// when ctx ends; events still pending then are counted as dropped.
func (r *Recorder) Close(ctx context.Context) error {
	r.Flush()
	for {
		err := r.publishPending(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			lost := r.pending.events.Load()
			r.stats.DroppedEvents.Add(lost)
			return fmt.Errorf("recorder close: %d events not published: %w", lost, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
