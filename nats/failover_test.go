package nats

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/natscluster"
)

// Failover test sizes: operations that must succeed before the kill and
// after it, and the least time the load keeps running after the kill.
const (
	failoverBefore = 200
	failoverAfter  = 200
	failoverRun    = 2 * time.Second
	// failoverWait bounds every wait of the failover tests.
	failoverWait = 2 * time.Minute
	// opTimeout bounds one publish, fetch or KV call, as the recorder's
	// PublishTimeout does (shorter, to keep the test quick).
	opTimeout = 2 * time.Second
)

// TestClusterQueueFailover publishes without pause through a Queue
// connected to all three nodes, retrying each id until Publish returns nil
// as the recorder does, while another Queue fetches and acknowledges;
// SIGKILLs the stream leader in the middle; and checks every message whose
// Publish returned nil is delivered and acknowledged.
func TestClusterQueueFailover(t *testing.T) {
	t.Parallel()
	c := natscluster.Start(t, 3)
	cfg := testConfig(t)
	cfg.Replicas = clusterReplicas
	cfg.AckWait = 2 * time.Second // quick redelivery of acks lost in the failover
	pub := openClusterQueue(t, c.URL(), cfg)
	con, err := OpenURL(testCtx(t), c.URL(), cfg) // pub's cleanup deletes the stream
	if err != nil {
		t.Fatalf("open %s: %v", c.URL(), err)
	}
	t.Cleanup(func() { _ = con.Close() })
	expectReplicas(t, pub.js, cfg.Stream, clusterReplicas)

	leader := streamLeader(t, pub.js, cfg.Stream)
	victim := c.Index(leader)
	t.Logf("stream leader %s, consumer leader %s; publisher on %s, consumer on %s",
		leader, consumerLeader(con), connectedTo(pub.nc), connectedTo(con.nc))

	p := &publisher{q: pub, attempted: map[string]bool{}}
	cs := &consumer{q: con, seen: map[string]int{}, errs: map[string]int{}}
	pubCtx, stopPub := context.WithCancel(context.Background())
	conCtx, stopCon := context.WithCancel(context.Background())
	var pubWG, conWG sync.WaitGroup
	pubWG.Go(func() { p.run(pubCtx) })
	conWG.Go(func() { cs.run(conCtx) })
	t.Cleanup(func() { stopPub(); stopCon(); pubWG.Wait(); conWG.Wait() })

	waitUntil(t, "publishes before the kill", func() bool { return p.okSince(time.Time{}) >= failoverBefore })
	killedAt := time.Now()
	c.Kill(victim)
	t.Logf("killed %s (node %d) after %d publishes", leader, victim, p.okSince(time.Time{}))
	waitUntil(t, "publishes after the kill", func() bool {
		return p.okSince(killedAt) >= failoverAfter && time.Since(killedAt) >= failoverRun
	})
	stopPub()
	pubWG.Wait()

	published := p.published()
	waitUntil(t, "consumer to see every published id", func() bool { return cs.missing(published) == 0 })
	waitUntil(t, "no pending message", func() bool {
		n, err := con.Pending(testCtx(t))
		return err == nil && n == 0
	})
	stopCon()
	conWG.Wait()

	newLeader := streamLeader(t, pub.js, cfg.Stream)
	if newLeader == leader {
		t.Fatalf("stream leader still %s after it was killed", leader)
	}
	if extra := cs.unattempted(p.attempted); len(extra) > 0 {
		t.Fatalf("consumed %d ids never published, e.g. %v", len(extra), extra[:min(5, len(extra))])
	}
	p.report(t, killedAt)
	cs.report(t, killedAt)
	t.Logf("after failover: stream leader %s, consumer leader %s; publisher on %s, consumer on %s",
		newLeader, consumerLeader(con), connectedTo(pub.nc), connectedTo(con.nc))
	if p.foreign > 0 {
		t.Errorf("%d publish errors do not wrap pathstats.ErrUnavailable (ingest would not answer 503)", p.foreign)
	}
}

func openClusterQueue(t *testing.T, url string, cfg QueueConfig) *Queue {
	t.Helper()
	q, err := OpenURL(testCtx(t), url, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	cleanupQueue(t, q)
	return q
}

// waitUntil polls cond until it holds, failing the test after failoverWait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failoverWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", failoverWait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gapTracker records the longest time between two successes.
type gapTracker struct {
	last, gapStart, gapEnd time.Time
}

func (g *gapTracker) success(now time.Time) {
	if !g.last.IsZero() && now.Sub(g.last) > g.gapEnd.Sub(g.gapStart) {
		g.gapStart, g.gapEnd = g.last, now
	}
	g.last = now
}

func (g *gapTracker) String() string {
	return fmt.Sprintf("%s (from %s to %s)", g.gapEnd.Sub(g.gapStart).Round(time.Millisecond),
		g.gapStart.Format("15:04:05.000"), g.gapEnd.Format("15:04:05.000"))
}

// publisher publishes ids m-0000000, m-0000001, … retrying each until
// Publish returns nil.
type publisher struct {
	q         *Queue
	mu        sync.Mutex
	attempted map[string]bool
	ok        []time.Time // time of each successful publish
	okIDs     []string
	errs      map[string]int // error (without the id) → count
	failures  int
	foreign   int // errors not wrapping pathstats.ErrUnavailable
	gap       gapTracker
}

func (p *publisher) run(ctx context.Context) {
	data := []byte(strings.Repeat("x", 200))
	for i := 0; ctx.Err() == nil; i++ {
		id := fmt.Sprintf("m-%07d", i)
		for ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, opTimeout)
			p.attempt(id)
			err := p.q.Publish(pctx, id, data)
			cancel()
			if ctx.Err() != nil {
				return // cancelled: the outcome is unknown, not a failure
			}
			p.record(id, err)
			if err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (p *publisher) attempt(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempted[id] = true
}

func (p *publisher) record(id string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if err == nil {
		p.ok = append(p.ok, now)
		p.okIDs = append(p.okIDs, id)
		p.gap.success(now)
		return
	}
	p.failures++
	if !errors.Is(err, pathstats.ErrUnavailable) {
		p.foreign++
	}
	if p.errs == nil {
		p.errs = map[string]int{}
	}
	p.errs[strings.TrimPrefix(err.Error(), "publish "+id+": ")]++
}

// okSince counts successful publishes after t.
func (p *publisher) okSince(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(t) })
	return len(p.ok) - i
}

func (p *publisher) published() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.okIDs...)
}

func (p *publisher) report(t *testing.T, killedAt time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Logf("publisher: %d published, %d failed attempts (all retried); longest gap between successes %s (kill at %s)",
		len(p.ok), p.failures, &p.gap, killedAt.Format("15:04:05.000"))
	for msg, n := range p.errs {
		t.Logf("publisher: %d× %s", n, msg)
	}
}

// consumer fetches and acknowledges, recording every id it received.
type consumer struct {
	q         *Queue
	mu        sync.Mutex
	seen      map[string]int
	fetchErrs int
	ackErrs   int
	errs      map[string]int
	errStart  time.Time // start of the current run of fetch errors
	errLong   time.Duration
	gap       gapTracker // between fetches that returned messages
}

func (cs *consumer) run(ctx context.Context) {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, opTimeout)
		msgs, err := cs.q.Fetch(fctx, 100, 500*time.Millisecond)
		cancel()
		if ctx.Err() != nil {
			// Leave what was fetched to the ack wait: the next run
			// receives it again.
			return
		}
		cs.fetched(msgs, err)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (cs *consumer) fetched(msgs []pathstats.Message, err error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	now := time.Now()
	if err != nil {
		cs.fetchErrs++
		cs.errs["fetch: "+err.Error()]++
		if cs.errStart.IsZero() {
			cs.errStart = now
		}
		return
	}
	if !cs.errStart.IsZero() {
		cs.errLong = max(cs.errLong, now.Sub(cs.errStart))
		cs.errStart = time.Time{}
	}
	if len(msgs) > 0 {
		cs.gap.success(now)
	}
	for _, m := range msgs {
		cs.seen[m.ID()]++
		if err := m.Ack(); err != nil {
			cs.ackErrs++
			cs.errs["ack: "+strings.TrimPrefix(err.Error(), "ack "+m.ID()+": ")]++
		}
	}
}

// missing counts the ids not received yet.
func (cs *consumer) missing(ids []string) int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	n := 0
	for _, id := range ids {
		if cs.seen[id] == 0 {
			n++
		}
	}
	return n
}

// unattempted lists received ids no Publish call was made for.
func (cs *consumer) unattempted(attempted map[string]bool) []string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []string
	for id := range cs.seen {
		if !attempted[id] {
			out = append(out, id)
		}
	}
	return out
}

func (cs *consumer) report(t *testing.T, killedAt time.Time) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	redelivered := 0
	for _, n := range cs.seen {
		if n > 1 {
			redelivered++
		}
	}
	t.Logf("consumer: %d ids received, %d more than once; %d fetch errors (longest run %s), %d ack errors; longest gap between deliveries %s (kill at %s)",
		len(cs.seen), redelivered, cs.fetchErrs, cs.errLong.Round(time.Millisecond), cs.ackErrs, &cs.gap, killedAt.Format("15:04:05.000"))
	for msg, n := range cs.errs {
		t.Logf("consumer: %d× %s", n, msg)
	}
}

// TestClusterKVFailover runs compare-and-set increments of one counter
// from two KVs (two connections to all three nodes), SIGKILLs the bucket's
// stream leader in the middle, and checks no increment was lost or
// doubled: the final value lies between the number of Updates that
// returned nil and that plus the Updates whose outcome is unknown (error
// other than ErrConflict), every successful Update got a distinct
// revision, and a revision from before the kill no longer matches.
func TestClusterKVFailover(t *testing.T) {
	t.Parallel()
	c := natscluster.Start(t, 3)
	cfg := testKVConfig()
	cfg.Replicas = clusterReplicas
	admin, err := connectURL(testCtx(t), c.URL())
	if err != nil {
		t.Fatalf("connect %s: %v", c.URL(), err)
	}
	t.Cleanup(admin.Close)
	var writers [2]*casWriter
	for i := range writers {
		k, err := OpenKVURL(testCtx(t), c.URL(), cfg)
		if err != nil {
			t.Fatalf("open kv %s: %v", c.URL(), err)
		}
		cleanupKV(t, admin, k)
		writers[i] = &casWriter{kv: k, revs: map[uint64]bool{}}
	}
	expectReplicas(t, kvJS(t, writers[0].kv), "KV_"+cfg.Bucket, clusterReplicas)
	const key = "failover:counter"
	waitCurrent(t, kvJS(t, writers[0].kv), "KV_"+cfg.Bucket)
	createRetrying(t, writers[0].kv, key, []byte("0"))

	leader := streamLeader(t, kvJS(t, writers[0].kv), "KV_"+cfg.Bucket)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() { w.run(ctx, key) })
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	okSince := func(t time.Time) int { return writers[0].okSince(t) + writers[1].okSince(t) }

	waitUntil(t, "increments before the kill", func() bool { return okSince(time.Time{}) >= failoverBefore/4 })
	before, err := writers[0].kv.Get(testCtx(t), key)
	if err != nil {
		t.Fatalf("get %s before the kill: %v", key, err)
	}
	killedAt := time.Now()
	c.Kill(c.Index(leader))
	t.Logf("killed bucket leader %s at revision %d", leader, before.Revision)
	waitUntil(t, "increments after the kill", func() bool {
		return okSince(killedAt) >= failoverAfter/4 && time.Since(killedAt) >= failoverRun
	})
	stop()
	wg.Wait()

	final := readCaughtUp(t, writers[1].kv, key, max(writers[0].maxRev(), writers[1].maxRev()))
	value, err := strconv.Atoi(string(final.Value))
	if err != nil {
		t.Fatalf("counter value %q: %v", final.Value, err)
	}
	checkCAS(t, writers[:], value, final.Revision)
	_, err = writers[1].kv.Update(testCtx(t), key, []byte("stale"), before.Revision)
	if !errors.Is(err, pathstats.ErrConflict) {
		t.Fatalf("update at pre-kill revision %d (now %d): %v, want ErrConflict", before.Revision, final.Revision, err)
	}
	t.Logf("new bucket leader %s", streamLeader(t, kvJS(t, writers[0].kv), "KV_"+cfg.Bucket))
	for i, w := range writers {
		w.report(t, i, killedAt)
	}
}

// createRetrying creates key, retrying while the bucket is unavailable: on
// a fresh replicated bucket the first write may find no responder until the
// leader's interest reaches the other servers.
func createRetrying(t *testing.T, k *KV, key string, value []byte) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(clusterWait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err = k.Create(testCtx(t), key, value); !errors.Is(err, pathstats.ErrUnavailable) {
			break
		}
		t.Logf("create %s: %v; retrying", key, err)
	}
	if err != nil {
		t.Fatalf("create %s: %v", key, err)
	}
}

// checkCAS checks the counter against what the writers saw.
func checkCAS(t *testing.T, writers []*casWriter, value int, rev uint64) {
	t.Helper()
	ok, unknown := 0, 0
	revs := map[uint64]int{}
	for i, w := range writers {
		ok += len(w.ok)
		unknown += w.unknown
		for r := range w.revs {
			if j, dup := revs[r]; dup {
				t.Errorf("revision %d returned to writers %d and %d", r, j, i)
			}
			revs[r] = i
			if r > rev {
				t.Errorf("writer %d got revision %d, above the final %d", i, r, rev)
			}
		}
	}
	if value < ok || value > ok+unknown {
		t.Fatalf("counter %d, want %d successful increments plus at most %d of unknown outcome", value, ok, unknown)
	}
	t.Logf("counter %d at revision %d: %d increments returned nil, %d of unknown outcome", value, rev, ok, unknown)
}

// kvJS is a JetStream context on the KV's connection.
func kvJS(t *testing.T, k *KV) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(k.nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// casWriter increments a counter by Get then Update at the read revision.
type casWriter struct {
	kv        *KV
	mu        sync.Mutex
	ok        []time.Time
	revs      map[uint64]bool
	conflicts int
	unknown   int // Update errors other than ErrConflict: applied or not
	getErrs   int
	errs      map[string]int
	gap       gapTracker
}

func (w *casWriter) run(ctx context.Context, key string) {
	for ctx.Err() == nil {
		err := w.increment(ctx, key)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (w *casWriter) increment(ctx context.Context, key string) error {
	gctx, cancel := context.WithTimeout(ctx, opTimeout)
	e, err := w.kv.Get(gctx, key)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.failed("get", err, false)
		}
		return err
	}
	n, err := strconv.Atoi(string(e.Value))
	if err != nil {
		return fmt.Errorf("counter value %q: %w", e.Value, err)
	}
	uctx, cancel := context.WithTimeout(ctx, opTimeout)
	rev, err := w.kv.Update(uctx, key, []byte(strconv.Itoa(n+1)), e.Revision)
	cancel()
	if ctx.Err() != nil && err != nil {
		w.failed("update (cancelled)", err, true)
		return err
	}
	if err != nil {
		w.failed("update", err, !errors.Is(err, pathstats.ErrConflict))
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.ok = append(w.ok, now)
	w.revs[rev] = true
	w.gap.success(now)
	return nil
}

func (w *casWriter) failed(op string, err error, unknown bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case op == "get":
		w.getErrs++
	case unknown:
		w.unknown++
	default:
		w.conflicts++
	}
	if w.errs == nil {
		w.errs = map[string]int{}
	}
	w.errs[op+": "+err.Error()]++
}

func (w *casWriter) okSince(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.ok), func(i int) bool { return w.ok[i].After(t) })
	return len(w.ok) - i
}

func (w *casWriter) report(t *testing.T, i int, killedAt time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("kv writer %d: %d increments, %d conflicts, %d unknown, %d get errors; longest gap between increments %s (kill at %s)",
		i, len(w.ok), w.conflicts, w.unknown, w.getErrs, &w.gap, killedAt.Format("15:04:05.000"))
	for msg, n := range w.errs {
		if !strings.Contains(msg, "conflict") {
			t.Logf("kv writer %d: %d× %s", i, n, msg)
		}
	}
}
