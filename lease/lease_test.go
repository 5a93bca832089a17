package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
)

// ttl is the contenders' lease ttl: long against busy, so that a holder
// that is merely slow keeps its lease between two steps of a test.
const ttl = 3 * time.Second

// busy is how late a timer or goroutine may run on a busy machine (several
// race-enabled test binaries on two cores); the timing bounds below allow
// it on top of the protocol's own bound. Waits for something that must
// happen are bounded by a minute: a hang, not a speed.
const busy = time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openKV opens a KV bucket on an embedded JetStream server.
func openKV(t *testing.T) pathstats.KV {
	t.Helper()
	return testutil.MustOpenKV(t, testutil.MustStartNATS(t, 0), "lease_test")
}

func contenders(kv pathstats.KV, n int) []*Lease {
	ls := make([]*Lease, n)
	for i := range ls {
		ls[i] = New(kv, "snapshotter", fmt.Sprintf("node-%d", i), ttl)
	}
	return ls
}

// raceAcquire runs TryAcquire on every contender at once and returns the
// winners' indexes.
func raceAcquire(t *testing.T, ls []*Lease) []int {
	t.Helper()
	var (
		mu    sync.Mutex
		won   []int
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i, l := range ls {
		wg.Go(func() {
			<-start
			ok, err := l.TryAcquire(ctxT(t))
			if err != nil {
				t.Errorf("contender %d: %v", i, err)
			}
			if ok {
				mu.Lock()
				won = append(won, i)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	return won
}

// holders returns the indexes of the contenders that think they hold it.
func holders(ls []*Lease) []int {
	var h []int
	for i, l := range ls {
		if l.Held() {
			h = append(h, i)
		}
	}
	return h
}

func TestTwoContendersOneWins(t *testing.T) {
	t.Parallel()
	ls := contenders(openKV(t), 2)
	won := raceAcquire(t, ls)
	if len(won) != 1 {
		t.Fatalf("winners %v, want exactly one", won)
	}
	if h := holders(ls); len(h) != 1 || h[0] != won[0] {
		t.Fatalf("holders %v, want [%d]", h, won[0])
	}
	loser := ls[1-won[0]]
	if ok, err := loser.TryAcquire(ctxT(t)); ok || err != nil {
		t.Fatalf("loser retry = (%v, %v), want (false, nil)", ok, err)
	}
	if err := loser.Renew(ctxT(t)); !errors.Is(err, ErrLost) {
		t.Fatalf("loser renew = %v, want ErrLost", err)
	}
	if err := ls[won[0]].Renew(ctxT(t)); err != nil {
		t.Fatalf("winner renew: %v", err)
	}
}

func TestReleaseLetsOtherAcquire(t *testing.T) {
	t.Parallel()
	ls := contenders(openKV(t), 2)
	a, b := ls[0], ls[1]
	if ok, err := a.TryAcquire(ctxT(t)); !ok || err != nil {
		t.Fatalf("a acquire = (%v, %v)", ok, err)
	}
	if ok, _ := b.TryAcquire(ctxT(t)); ok {
		t.Fatal("b acquired a held lease")
	}
	if err := a.Release(ctxT(t)); err != nil {
		t.Fatalf("release: %v", err)
	}
	if a.Held() {
		t.Fatal("a holds after release")
	}
	if ok, err := b.TryAcquire(ctxT(t)); !ok || err != nil {
		t.Fatalf("b acquire right after release = (%v, %v), want true", ok, err)
	}
	if ok, _ := a.TryAcquire(ctxT(t)); ok {
		t.Fatal("a re-acquired b's lease")
	}
	if err := a.Release(ctxT(t)); err != nil { // not held: no-op
		t.Fatalf("release not held: %v", err)
	}
	if !b.Held() {
		t.Fatal("a's release of a lease it does not hold freed b's")
	}
}

// TestContendersNeverOverlap: 5 contenders race 20 times, from a free, a
// deleted, a released, an expired and an already held lease; each time
// exactly one holds it.
func TestContendersNeverOverlap(t *testing.T) {
	t.Parallel()
	kv := openKV(t)
	ls := contenders(kv, 5)
	prev := -1
	for round := range 20 {
		won := raceAcquire(t, ls)
		if len(won) != 1 {
			t.Fatalf("round %d: winners %v, want exactly one", round, won)
		}
		if h := holders(ls); len(h) != 1 || h[0] != won[0] {
			t.Fatalf("round %d: holders %v, winner %d", round, h, won[0])
		}
		if round%4 == 3 && won[0] != prev {
			t.Fatalf("round %d: holder %d lost its lease to %d", round, prev, won[0])
		}
		prev = won[0]
		switch round % 4 {
		case 0: // deleted
			if err := kv.Delete(ctxT(t), ls[0].Key()); err != nil {
				t.Fatal(err)
			}
		case 1: // released
			if err := ls[won[0]].Release(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		case 2: // the holder keeps it: it wins the next round
		case 3: // expired, written by a contender that is gone
			putRecord(t, kv, record{Holder: "dead", ExpiresAtMs: time.Now().Add(-time.Second).UnixMilli()})
		}
	}
}

func putRecord(t *testing.T, kv pathstats.KV, rec record) {
	t.Helper()
	v, _ := json.Marshal(rec)
	if _, err := kv.Put(ctxT(t), "lease:snapshotter", v); err != nil {
		t.Fatal(err)
	}
}

func TestRenewDetectsLoss(t *testing.T) {
	t.Parallel()
	kv := openKV(t)
	a := contenders(kv, 1)[0]
	if ok, err := a.TryAcquire(ctxT(t)); !ok || err != nil {
		t.Fatalf("acquire = (%v, %v)", ok, err)
	}
	// A write of ours whose answer was lost: the lease is still ours.
	putRecord(t, kv, record{Holder: a.holder, ExpiresAtMs: time.Now().Add(ttl).UnixMilli()})
	if err := a.Renew(ctxT(t)); err != nil || !a.Held() {
		t.Fatalf("renew after our own unseen write = %v, held %v", err, a.Held())
	}
	putRecord(t, kv, record{Holder: "other", ExpiresAtMs: time.Now().Add(time.Minute).UnixMilli()})
	if err := a.Renew(ctxT(t)); !errors.Is(err, ErrLost) || a.Held() {
		t.Fatalf("renew after takeover = %v, held %v; want ErrLost", err, a.Held())
	}
}

// elections runs Lease.Run for contenders and records who is elected and
// that no two jobs ever run at once.
type elections struct {
	t       *testing.T
	running atomic.Int32
	overlap atomic.Bool
	elected chan int // index of each newly elected contender
}

func newElections(t *testing.T) *elections {
	return &elections{t: t, elected: make(chan int, 16)}
}

// run starts contender i; cancel stops it (without Release) and waits for
// Run to return.
func (e *elections) run(l *Lease, i int) (cancel func()) {
	ctx, stop := context.WithCancel(ctxT(e.t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx, func(ctx context.Context) {
			if e.running.Add(1) > 1 {
				e.overlap.Store(true)
			}
			e.elected <- i
			<-ctx.Done()
			e.running.Add(-1)
		})
	}()
	cancel = func() { stop(); <-done }
	e.t.Cleanup(cancel)
	return cancel
}

func (e *elections) next(within time.Duration) (int, time.Duration) {
	e.t.Helper()
	start := time.Now()
	select {
	case i := <-e.elected:
		return i, time.Since(start)
	case <-time.After(within):
		e.t.Fatalf("nobody elected within %s", within)
	}
	return -1, 0
}

func (e *elections) quiet(d time.Duration) {
	e.t.Helper()
	select {
	case i := <-e.elected:
		e.t.Fatalf("contender %d elected, want no election", i)
	case <-time.After(d):
	}
}

// TestRunTakeoverAfterHolderDies: the leader stops renewing and the other
// contender runs the job within ttl + ttl/3 (plus busy).
func TestRunTakeoverAfterHolderDies(t *testing.T) {
	t.Parallel()
	ls := contenders(openKV(t), 2)
	e := newElections(t)
	cancels := []func(){e.run(ls[0], 0), e.run(ls[1], 1)}
	leader, _ := e.next(time.Minute)
	e.quiet(2 * ttl) // the leader keeps its lease: no second election
	if !ls[leader].Held() || ls[1-leader].Held() {
		t.Fatalf("held: %v %v, leader %d", ls[0].Held(), ls[1].Held(), leader)
	}
	cancels[leader]() // dies: stops renewing, no release
	next, took := e.next(time.Minute)
	if next != 1-leader {
		t.Fatalf("contender %d elected, want %d", next, 1-leader)
	}
	t.Logf("takeover %s after the leader stopped (ttl %s)", took, ttl)
	if took > ttl+ttl/3+busy {
		t.Fatalf("takeover took %s, want within %s", took, ttl+ttl/3+busy)
	}
	if e.overlap.Load() {
		t.Fatal("two jobs ran at once")
	}
}

// TestRunReleaseHandsOverAtOnce: a leader that stops and releases is
// replaced within one retry interval.
func TestRunReleaseHandsOverAtOnce(t *testing.T) {
	t.Parallel()
	ls := contenders(openKV(t), 2)
	e := newElections(t)
	cancels := []func(){e.run(ls[0], 0), e.run(ls[1], 1)}
	leader, _ := e.next(time.Minute)
	cancels[leader]() // stops renewing: the lease would expire at expiry
	ls[leader].mu.Lock()
	expiry := ls[leader].expires
	ls[leader].mu.Unlock()
	if err := ls[leader].Release(ctxT(t)); err != nil {
		t.Fatalf("release: %v", err)
	}
	// The other tries every ttl/3. Elected before the released lease would
	// have expired (about 2ttl/3 later at least), it got the lease from the
	// release; that leaves about ttl/3 (a second) for a busy machine.
	next, took := e.next(time.Minute)
	t.Logf("handover %s after the release, %s before the lease would have expired", took, time.Until(expiry))
	if next != 1-leader || !time.Now().Before(expiry) {
		t.Fatalf("contender %d elected after %s, want %d before the released lease expired", next, took, 1-leader)
	}
}

// TestRunJobCancelledOnLoss: when another holder takes the record, the
// leader's job context ends within a renewal interval.
func TestRunJobCancelledOnLoss(t *testing.T) {
	t.Parallel()
	kv := openKV(t)
	l := contenders(kv, 1)[0]
	jobDone := make(chan struct{})
	ctx, cancel := context.WithCancel(ctxT(t))
	elected := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		l.Run(ctx, func(ctx context.Context) {
			close(elected)
			<-ctx.Done()
			close(jobDone)
		})
	})
	select {
	case <-elected:
	case <-time.After(time.Minute):
		t.Fatal("not elected")
	}
	putRecord(t, kv, record{Holder: "usurper", ExpiresAtMs: time.Now().Add(time.Minute).UnixMilli()})
	select {
	case <-jobDone:
	case <-time.After(ttl/3 + ttl/3 + busy):
		t.Fatal("job still running after the lease was taken")
	}
	if l.Held() {
		t.Fatal("still held after loss")
	}
}

// TestRunJobReturnReleases: a job that returns by itself gives the lease up
// so another contender can run it.
func TestRunJobReturnReleases(t *testing.T) {
	t.Parallel()
	ls := contenders(openKV(t), 2)
	ctx, cancel := context.WithCancel(ctxT(t))
	ran := make(chan int, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, l := range ls {
		wg.Go(func() {
			l.Run(ctx, func(context.Context) {
				select {
				case ran <- i:
				default:
				}
			})
		})
	}
	seen := map[int]bool{}
	for deadline := time.After(time.Minute); len(seen) < 2; {
		select {
		case i := <-ran:
			seen[i] = true
		case <-deadline:
			t.Fatalf("jobs ran on %v, want both contenders", seen)
		}
	}
}

// TestDoIsAMutex: Do on several contenders never runs two fns at once, a
// contender that cannot wait gets ErrBusy, and the lease is free after.
func TestDoIsAMutex(t *testing.T) {
	ctx := ctxT(t)
	kv := openKV(t)
	ls := contenders(kv, 3)
	var running, maxRunning, runs atomic.Int32
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				err := l.Do(ctx, time.Minute, func(context.Context) error {
					n := running.Add(1)
					for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
					}
					time.Sleep(20 * time.Millisecond)
					running.Add(-1)
					runs.Add(1)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if runs.Load() != 9 || maxRunning.Load() != 1 {
		t.Fatalf("runs %d, max concurrent %d", runs.Load(), maxRunning.Load())
	}
	// Held by one: another with no wait is busy; the fn's error comes back.
	hold := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- ls[0].Do(ctx, time.Minute, func(context.Context) error { <-hold; return errors.New("job failed") })
	}()
	for !ls[0].Held() {
		time.Sleep(time.Millisecond)
	}
	if err := ls[1].Do(ctx, 0, func(context.Context) error { t.Error("ran while held"); return nil }); !errors.Is(err, ErrBusy) {
		t.Fatalf("busy lease: %v", err)
	}
	close(hold)
	if err := <-done; err == nil || err.Error() != "job failed" {
		t.Fatalf("fn error: %v", err)
	}
	if err := ls[1].Do(ctx, 0, func(context.Context) error { return nil }); err != nil {
		t.Fatalf("released lease: %v", err)
	}
}
