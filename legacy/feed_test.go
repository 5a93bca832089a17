package legacy

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// deltaOf is a delta of n requests (errs 5xx, cerrs 4xx) at t.
func deltaOf(path string, t time.Time, n, errs, cerrs int64) pathstats.Delta {
	d := pathstats.Delta{Key: pathstats.Key{Hour: pathstats.HourBucket(t), Path: path, ProxyID: "p1"}}
	d.Status[1] = n - errs - cerrs
	d.Status[3] = cerrs
	d.Status[4] = errs
	d.LastSeenMs = t.UnixMilli()
	return d
}

// A 10,000-event burst to one path and many concurrent batches reach the
// actors whole even with tiny mailboxes: the feed waits for room instead of
// dropping.
func TestObserveBatchLosesNothingWithTinyMailboxes(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 30, 0, 0, time.UTC)
	s := openSys(t, t.TempDir(), newClock(now).Now, func(c *Config) { c.MailboxSize = 1 })
	s.ObserveBatch(&pathstats.Batch{ID: "burst", Deltas: []pathstats.Delta{deltaOf("/hot", now, 10_000, 7, 3)}})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				b := &pathstats.Batch{ID: fmt.Sprint(g, i)}
				for p := range 20 {
					b.Deltas = append(b.Deltas, deltaOf(fmt.Sprintf("/p/%d", p), now.Add(-time.Duration(p%3)*time.Hour), 5, 1, 1))
				}
				s.ObserveBatch(b)
			}
		})
	}
	wg.Wait()
	ctx := testCtx(t)
	got := map[string][3]int64{}
	err := s.EachPathHourly(ctx, pathstats.HourBucket(now.Add(-24*time.Hour)), func(path string, _ int64, hours [][3]int64) error {
		var sum [3]int64
		for _, h := range hours {
			sum[0]++
			sum[1] += h[1]
			sum[2] += h[2]
		}
		got[path] = sum
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if h := got["/hot"]; h != [3]int64{1, 10_000, 7} {
		t.Fatalf("/hot = %v (hours, requests, errors), want [1 10000 7]", h)
	}
	for p := range 20 {
		if h := got[fmt.Sprintf("/p/%d", p)]; h != [3]int64{1, 4 * 200 * 5, 4 * 200} {
			t.Fatalf("/p/%d = %v, want [1 4000 800]", p, h)
		}
	}
	if d := s.dropped.Load(); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	items, _, err := s.readWindow(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Path == "/hot" && (it.ClientErrors != 3 || it.LastAccessedMs != now.UnixMilli()) {
			t.Fatalf("/hot item %+v", it)
		}
	}
}

// Past FeedBatches queued batches the feed drops whole batches and counts
// their events; nothing else is lost.
func TestObserveBatchFullFeedDropsAndCounts(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 30, 0, 0, time.UTC)
	s := openSys(t, t.TempDir(), newClock(now).Now, func(c *Config) { c.MailboxSize = 1 })
	// Hold the feed goroutine: its first batches go to an actor that is
	// busy until release, with a one-slot mailbox.
	s.Observe("p", "/held", 200, 0, now)
	release := holdActor(t, s, "/held")
	for i := range FeedBatches + 50 {
		s.ObserveBatch(&pathstats.Batch{ID: fmt.Sprint(i), Deltas: []pathstats.Delta{deltaOf("/held", now, 2, 0, 0)}})
	}
	release()
	if err := s.syncFeed(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	dropped := s.dropped.Load()
	if dropped == 0 || dropped%2 != 0 || s.feed.dropped.Load() != dropped/2 {
		t.Fatalf("dropped %d events, %d batches", dropped, s.feed.dropped.Load())
	}
	var requests int64
	_ = s.EachPathHourly(testCtx(t), 0, func(_ string, _ int64, hours [][3]int64) error {
		for _, h := range hours {
			requests += h[1]
		}
		return nil
	})
	if requests+dropped != 2*(FeedBatches+50)+1 {
		t.Fatalf("applied %d + dropped %d != sent %d", requests, dropped, 2*(FeedBatches+50)+1)
	}
}

func TestSplitIncrement(t *testing.T) {
	inc := increment{atMs: 5, requests: 1<<33 + 7, errors: 1<<32 + 1, clientErrors: 3}
	var sum increment
	for _, p := range splitIncrement(inc) {
		if p.requests > 1<<32-1 || p.errors+p.clientErrors > p.requests {
			t.Fatalf("part %+v", p)
		}
		sum.requests += p.requests
		sum.errors += p.errors
		sum.clientErrors += p.clientErrors
	}
	if sum.requests != inc.requests || sum.errors != inc.errors || sum.clientErrors != inc.clientErrors {
		t.Fatalf("sum %+v, want %+v", sum, inc)
	}
}

// BenchmarkFeedDeltas measures how many deltas per second the dual-write
// feed hands to actors (batches of 500 deltas over 10,000 paths): the rate
// past which a full feed drops batches.
func BenchmarkFeedDeltas(b *testing.B) {
	now := time.Date(2025, 6, 1, 12, 30, 0, 0, time.UTC)
	s := openSys(b, b.TempDir(), newClock(now).Now, func(c *Config) { c.MailboxSize = 256; c.FlushInterval = time.Second })
	paths := make([]string, 10_000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/bench/%d", i)
	}
	batches := make([]*pathstats.Batch, 20)
	for i := range batches {
		bt := &pathstats.Batch{ID: fmt.Sprint(i)}
		for j := range 500 {
			bt.Deltas = append(bt.Deltas, deltaOf(paths[(i*500+j)%len(paths)], now, 3, 1, 0))
		}
		batches[i] = bt
	}
	ctx := testCtx(b)
	b.ResetTimer()
	for i := range b.N {
		s.ObserveBatch(batches[i%len(batches)])
		if i%1000 == 999 {
			_ = s.syncFeed(ctx)
		}
	}
	_ = s.syncFeed(ctx)
	b.StopTimer()
	b.ReportMetric(float64(b.N)*500/b.Elapsed().Seconds(), "deltas/s")
	if d := s.dropped.Load(); d != 0 {
		b.Fatalf("dropped %d", d)
	}
}
