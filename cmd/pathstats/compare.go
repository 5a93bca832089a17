package main

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/compare"
)

// comparisonMaxAge is how long a comparison report counts for rollout gates.
const comparisonMaxAge = time.Hour

// comparer runs legacy-vs-pipeline comparisons and keeps the latest report.
type comparer struct {
	run    compare.RunFunc
	latest atomic.Pointer[compare.Report]
	at     atomic.Int64 // unix ms of latest
}

// startCompare wires the comparison; without a legacy source (removed) the
// endpoints answer 410.
func (s *server) startCompare() {
	walker, ok := s.store.(hourlyWalker)
	if s.legacyHourly == nil || !ok {
		return
	}
	opts := compare.Options{
		Legacy: s.legacyHourly,
		SQL:    compare.TripleFunc(walker.EachPathHourly),
		Pending: func() compare.PendingInfo {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			msgs, _ := s.queue.Pending(ctx)
			return compare.PendingInfo{Events: s.rec.PendingEvents(), Messages: msgs}
		},
		Settle: s.settle,
	}
	c := &comparer{}
	base := compare.Runner(opts)
	c.run = func(ctx context.Context, window time.Duration, tol float64) (compare.Report, error) {
		s.settle(ctx)
		r, err := base(ctx, window, tol)
		if err == nil {
			c.latest.Store(&r)
			c.at.Store(time.Now().UnixMilli())
		}
		return r, err
	}
	s.comparer = c
}

// accuracy is the rollout gate's input: the latest fresh report's accuracy.
func (c *comparer) accuracy() (float64, bool) {
	if c == nil {
		return 0, false
	}
	r := c.latest.Load()
	if r == nil || time.Since(time.UnixMilli(c.at.Load())) > comparisonMaxAge {
		return 0, false
	}
	return r.Accuracy, true
}

// runPeriodic compares every interval while the migration config has
// enableComparison on.
func (c *comparer) runPeriodic(ctx context.Context, enabled func() bool, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if enabled() {
			_, _ = c.run(ctx, compare.DefaultWindow, compare.DefaultTolerance)
		}
	}
}

// compareRoutes are GET /api/admin/paths/compare and …/compare/latest.
func (s *server) compareRoutes() map[string]http.Handler {
	gone := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, pathstats.Errorf(pathstats.EGone, "the legacy system is gone: there is nothing to compare with"))
	})
	if s.comparer == nil {
		h := gone
		if s.legacyHourly != nil {
			h = func(w http.ResponseWriter, r *http.Request) {
				api.WriteError(w, pathstats.Errorf(pathstats.EUnavailable, "this SQL backend cannot walk its hourly rows, so it cannot be compared"))
			}
		}
		return map[string]http.Handler{"GET /api/admin/paths/compare": h, "GET /api/admin/paths/compare/latest": h}
	}
	c := s.comparer
	return map[string]http.Handler{
		"GET /api/admin/paths/compare": compare.Handler(c.run),
		"GET /api/admin/paths/compare/latest": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.legacyDecommissioned != nil && s.legacyDecommissioned() {
				gone(w, r)
				return
			}
			rep := c.latest.Load()
			if rep == nil {
				api.WriteError(w, pathstats.Errorf(pathstats.ENotFound, "no comparison has run yet; GET /api/admin/paths/compare runs one"))
				return
			}
			api.WriteData(w, http.StatusOK, rep)
		}),
	}
}

// settle publishes what the recorder holds and waits (at most 3 s) until the
// aggregator applied the queue, so that a comparison of a live system sees
// only the events of the last moments as in flight. It reports whether the
// queue drained.
func (s *server) settle(ctx context.Context) bool {
	s.rec.Flush()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		n, err := s.queue.Pending(ctx)
		if err != nil {
			return false
		}
		if n == 0 && s.rec.PendingEvents() == 0 && s.rec.PendingBatches() == 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
