package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// memPublisher keeps published batches; failing makes it refuse.
type memPublisher struct {
	mu      sync.Mutex
	batches []*pathstats.Batch
	ids     map[string]int
	failing bool
}

func (p *memPublisher) Publish(ctx context.Context, id string, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing {
		return fmt.Errorf("queue down: %w", pathstats.ErrUnavailable)
	}
	b, err := pathstats.DecodeBatch(data)
	if err != nil {
		return err
	}
	if b.ID != id {
		return fmt.Errorf("id mismatch %q %q", b.ID, id)
	}
	if p.ids == nil {
		p.ids = map[string]int{}
	}
	p.ids[id]++
	p.batches = append(p.batches, b)
	return nil
}

func (p *memPublisher) setFailing(v bool) {
	p.mu.Lock()
	p.failing = v
	p.mu.Unlock()
}

// totals sums published deltas per key.
func (p *memPublisher) totals() map[pathstats.Key]pathstats.Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[pathstats.Key]pathstats.Counts{}
	for _, b := range p.batches {
		for _, d := range b.Deltas {
			c := out[d.Key]
			c.Add(&d.Counts)
			out[d.Key] = c
		}
	}
	return out
}

var quiet = slog.New(slog.DiscardHandler)

var t0 = time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)

func TestRecordFlushExactCounts(t *testing.T) {
	pub := &memPublisher{}
	r := New(Config{Logger: quiet}, pub)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				r.Record("api", fmt.Sprintf("/users/%d", i), 200+100*(i%4), time.Duration(i%50)*time.Millisecond, t0)
				r.Record("web", "/index.html", 404, 3*time.Millisecond, t0.Add(time.Hour))
			}
		}()
	}
	wg.Wait()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	tot := pub.totals()
	hour := pathstats.HourBucket(t0)
	users := tot[pathstats.Key{Hour: hour, Path: "/users/:id", ProxyID: "api"}]
	if users.Requests() != 8000 || users.Status[1] != 2000 || users.Status[3] != 2000 || users.Errors() != 2000 || users.ClientErrors() != 2000 {
		t.Fatalf("users counts %+v", users)
	}
	var lat int64
	for _, v := range users.Latency {
		lat += v
	}
	if lat != 8000 {
		t.Fatalf("latency buckets sum %d", lat)
	}
	web := tot[pathstats.Key{Hour: hour + 3600, Path: "/index.html", ProxyID: "web"}]
	if web.Requests() != 8000 || web.ClientErrors() != 8000 || web.LastSeenMs != t0.Add(time.Hour).UnixMilli() {
		t.Fatalf("web counts %+v", web)
	}
	if len(tot) != 2 {
		t.Fatalf("keys %v", tot)
	}
	if got := r.Stats().Recorded.Load(); got != 16000 {
		t.Fatalf("recorded %d", got)
	}
}

func TestHourBoundaryKeepsBothHours(t *testing.T) {
	pub := &memPublisher{}
	r := New(Config{Logger: quiet}, pub)
	h0 := time.Date(2026, 11, 25, 9, 59, 59, 0, time.UTC)
	for i := 0; i < 3; i++ {
		// hours h, h+1, h+2: h+2 shares h's slot and must not absorb it
		r.Record("p", "/a", 200, time.Millisecond, h0.Add(time.Duration(i)*time.Hour))
		r.Record("p", "/a", 200, time.Millisecond, h0.Add(time.Duration(i)*time.Hour))
	}
	r.Flush()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	tot := pub.totals()
	for i := 0; i < 3; i++ {
		k := pathstats.Key{Hour: pathstats.HourBucket(h0) + int64(i)*3600, Path: "/a", ProxyID: "p"}
		if c := tot[k]; c.Requests() != 2 {
			t.Fatalf("hour %d: %d requests", i, c.Requests())
		}
	}
}

func TestCardinalityGuard(t *testing.T) {
	pub := &memPublisher{}
	r := New(Config{Logger: quiet, MaxPathsPerProxy: 100, MaxPaths: 150}, pub)
	for _, proxy := range []string{"a", "b"} {
		for i := 0; i < 1000; i++ {
			r.Record(proxy, fmt.Sprintf("/%s/p%dx", proxy, i), 200, 0, t0)
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	tot := pub.totals()
	perProxy := map[string]int{}
	var other, all int64
	for k, c := range tot {
		all += c.Requests()
		if k.Path == OtherPath {
			other += c.Requests()
			continue
		}
		perProxy[k.ProxyID]++
	}
	if perProxy["a"] != 100 || perProxy["b"] != 50 {
		t.Fatalf("admitted per proxy %v", perProxy)
	}
	if all != 2000 || other != 1850 || r.Stats().OverflowEvents.Load() != 1850 {
		t.Fatalf("all %d other %d overflow %d", all, other, r.Stats().OverflowEvents.Load())
	}
}

func TestMillionRandomPathsStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	r := New(Config{Logger: quiet, MaxPathsPerProxy: 10_000, MaxPaths: 10_000}, &memPublisher{})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1_000_000; i++ {
		r.Record("default", fmt.Sprintf("/r/w%xq", rng.Uint64()), 200, 0, t0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if r.Paths() != 10_000 {
		t.Fatalf("admitted %d paths", r.Paths())
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<20 {
		t.Fatalf("heap grew %d MiB for 10,000 admitted paths", grown>>20)
	}
	r.Flush()
	var keys int
	for _, b := range r.pending.items {
		keys += len(b.Deltas)
	}
	if keys != 10_001 {
		t.Fatalf("deltas %d, want 10,000 paths + /:other", keys)
	}
}

func TestQueueDownBuffersThenDrops(t *testing.T) {
	pub := &memPublisher{failing: true}
	r := New(Config{Logger: quiet, MaxPendingDeltas: 10, FlushInterval: 10 * time.Millisecond}, pub)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for i := 0; i < 5; i++ {
		r.Record("p", fmt.Sprintf("/k%dz", i), 200, 0, t0)
	}
	waitFor(t, func() bool { return r.PendingEvents() == 5 })
	for i := 0; i < 20; i++ {
		r.Record("p", fmt.Sprintf("/m%dz", i), 200, 0, t0)
	}
	waitFor(t, func() bool { return r.Stats().DroppedEvents.Load() == 20 })
	if r.PendingEvents() != 5 {
		t.Fatalf("pending %d", r.PendingEvents())
	}
	pub.setFailing(false)
	waitFor(t, func() bool { return r.PendingEvents() == 0 })
	cancel()
	<-done
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range pub.totals() {
		n += c.Requests()
	}
	if n != 5 || r.Stats().PublishFailures.Load() == 0 {
		t.Fatalf("published %d events, failures %d", n, r.Stats().PublishFailures.Load())
	}
	for id, k := range pub.ids {
		if k != 1 {
			t.Fatalf("batch %s published %d times", id, k)
		}
	}
}

func TestCloseGivesUpAndCounts(t *testing.T) {
	pub := &memPublisher{failing: true}
	r := New(Config{Logger: quiet}, pub)
	r.Record("p", "/x", 200, 0, t0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := r.Close(ctx)
	if err == nil || !errors.Is(err, pathstats.ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	if r.Stats().DroppedEvents.Load() != 1 {
		t.Fatalf("dropped %d", r.Stats().DroppedEvents.Load())
	}
}

func TestBuildBatchesDeterministic(t *testing.T) {
	r := New(Config{Logger: quiet, Node: "n1"}, &memPublisher{})
	var evs []pathstats.Event
	for i := 0; i < 3000; i++ {
		evs = append(evs, pathstats.Event{Time: t0.Add(time.Duration(i%3) * time.Hour), Path: fmt.Sprintf("/p%dz/%d", i%700, i), Status: 500, LatencyMs: 12})
	}
	a := r.BuildBatches("ik:abc", evs, t0)
	b := r.BuildBatches("ik:abc", evs, t0)
	if len(a) != len(b) || len(a) < 2 {
		t.Fatalf("batches %d %d", len(a), len(b))
	}
	var events int64
	for i := range a {
		if a[i].ID != b[i].ID || len(a[i].Deltas) != len(b[i].Deltas) || a[i].Deltas[0].Key != b[i].Deltas[0].Key {
			t.Fatalf("batch %d differs", i)
		}
		events += a[i].Events()
	}
	if events != 3000 {
		t.Fatalf("events %d", events)
	}
	if a[0].Deltas[0].ProxyID != pathstats.DefaultProxyID || a[0].Deltas[0].Errors() == 0 {
		t.Fatalf("delta %+v", a[0].Deltas[0])
	}
}

// The split of a request into batches depends only on its events as sent:
// not on the clock (events without a time), the guard or normalisation, so a
// retry on another node reproduces every batch id with the same events.
func TestBuildBatchesSplitIndependentOfClockAndGuard(t *testing.T) {
	var evs []pathstats.Event
	for i := 0; i < 4000; i++ {
		ev := pathstats.Event{Path: fmt.Sprintf("/u/%d/x%d", i%900, i%7), Status: 200}
		if i%3 == 0 {
			ev.Time = t0.Add(time.Duration(i%2) * time.Hour)
		}
		evs = append(evs, ev)
	}
	fresh := New(Config{Logger: quiet, Node: "a"}, &memPublisher{})
	full := New(Config{Logger: quiet, Node: "b", MaxPaths: 10, MaxPathsPerProxy: 10}, &memPublisher{})
	a := fresh.BuildBatches("ik:k", evs, t0)
	b := full.BuildBatches("ik:k", evs, t0.Add(3*time.Hour+time.Minute))
	if len(a) < 2 || len(a) != len(b) {
		t.Fatalf("batches %d vs %d", len(a), len(b))
	}
	var total int64
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Events() != b[i].Events() {
			t.Fatalf("batch %d: %s/%d vs %s/%d", i, a[i].ID, a[i].Events(), b[i].ID, b[i].Events())
		}
		if len(a[i].Deltas) > pathstats.MaxDeltasPerBatch || len(b[i].Deltas) > pathstats.MaxDeltasPerBatch {
			t.Fatalf("batch %d has %d/%d deltas", i, len(a[i].Deltas), len(b[i].Deltas))
		}
		total += a[i].Events()
	}
	if total != int64(len(evs)) {
		t.Fatalf("events %d, want %d", total, len(evs))
	}
	// Events without a time land in now's hour.
	now := t0.Add(5 * time.Hour)
	one := fresh.BuildBatches("ik:z", []pathstats.Event{{Path: "/t", Status: 200}}, now)
	if got := one[0].Deltas[0].Hour; got != pathstats.HourBucket(now) {
		t.Fatalf("hour %d, want %d", got, pathstats.HourBucket(now))
	}
}

func TestRecordKnownPathDoesNotAllocate(t *testing.T) {
	r := New(Config{Logger: quiet}, &memPublisher{})
	r.Record("default", "/api/users/42/orders", 200, time.Millisecond, t0)
	allocs := testing.AllocsPerRun(1000, func() {
		r.Record("default", "/api/users/42/orders", 200, time.Millisecond, t0)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per Record", allocs)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 1m")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// batchCount counts the batches an observer was told of.
type batchCount struct {
	mu     sync.Mutex
	events int64
}

func (c *batchCount) ObserveBatch(b *pathstats.Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events += b.Events()
}

func (c *batchCount) get() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events
}

// A Flush from outside the flush loop (a comparison settling the pipeline)
// gets its batches published without waiting for more traffic, and the
// observer hears of exactly the published events, after publishing.
func TestExternalFlushPublishesAndObserves(t *testing.T) {
	pub := &memPublisher{failing: true}
	r := New(Config{Logger: quiet, FlushInterval: time.Hour}, pub)
	obs := &batchCount{}
	r.AddObserver(obs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for range 34 {
		r.Record("p", "/a", 200, time.Millisecond, t0)
	}
	r.Flush()
	waitFor(t, func() bool { return r.Stats().PublishFailures.Load() > 0 })
	if obs.get() != 0 {
		t.Fatalf("observer heard of %d unpublished events", obs.get())
	}
	pub.mu.Lock()
	pub.failing = false
	pub.mu.Unlock()
	r.Flush() // nothing new: the retry alone must publish
	waitForLong(t, func() bool { return r.PendingEvents() == 0 })
	if obs.get() != 34 || r.Stats().PublishedEvents.Load() != 34 {
		t.Fatalf("observer %d, published %d; want 34", obs.get(), r.Stats().PublishedEvents.Load())
	}
	for range 5 {
		r.Record("p", "/b", 200, time.Millisecond, t0)
	}
	r.Flush()
	waitForLong(t, func() bool { return r.PendingEvents() == 0 && obs.get() == 39 })
}

func waitForLong(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 1m")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
