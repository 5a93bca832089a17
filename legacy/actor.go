package legacy

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
)

// msg is one mailbox message: an increment (requests >= 1 responses to the
// actor's path within one hour), or a request marker (requests 0, atMs the
// request's id in System.reqs). It holds no pointer, so a mailbox is one
// allocation that the GC does not scan.
type msg struct {
	atMs         int64  // increment: latest response, unix ms; marker: request id
	requests     uint32 // increment: responses; marker: 0
	errors       uint32 // 5xx
	clientErrors uint32 // 4xx
	proxy        uint32
}

// marker reports whether m is a request marker.
func (m msg) marker() bool { return m.requests == 0 }

// markerMsg is the mailbox message of request id.
func markerMsg(id uint64) msg { return msg{atMs: int64(id)} }

// increment is the counts m carries.
func (m msg) increment() increment {
	return increment{atMs: m.atMs, requests: int64(m.requests), errors: int64(m.errors), clientErrors: int64(m.clientErrors)}
}

type reqKind uint8

const (
	reqRead      reqKind = iota // totals over a window
	reqSnapshot                 // a copy of the whole state (flush)
	reqHibernate                // go to sleep (idle reaper, Close)
	reqStop                     // delete: stop for good (cleanup)
	reqRun                      // run fn inside the actor (tests)
)

// request is a message that expects an answer in its own fields, signalled
// on done (capacity 1, so the actor never blocks on it).
type request struct {
	kind  reqKind
	since int64 // reqRead: first hour bucket of the window
	force bool  // reqHibernate: even with mail waiting
	fn    func()
	done  chan struct{}

	item  pathstats.PathItem // reqRead
	found bool               // reqRead: the window holds requests
	snap  snapshot           // reqSnapshot
}

func newRequest(kind reqKind) *request {
	return &request{kind: kind, done: make(chan struct{}, 1)}
}

func (r *request) reply() {
	if r.done != nil {
		r.done <- struct{}{}
	}
}

// snapshot is an actor's state as written to storage.
type snapshot struct {
	name, path string
	state
}

// actor is one path's collector. While awake, its goroutine owns st and
// loaded; while asleep (mbox nil) they are read and written under mu.
type actor struct {
	name, path string

	mbox     atomic.Pointer[chan msg] // nil while asleep
	inflight atomic.Int32             // senders between loading mbox and sending
	dirty    atomic.Bool              // queued for the next flush
	gone     atomic.Bool              // deleted; set under mu
	ops      atomic.Uint64            // messages handled (the reaper's activity signal)

	// An awake actor with an empty mailbox parks on bell, not on the
	// mailbox, so a send never wakes a goroutine on the caller's path:
	// the sender that flips parked queues the actor for the ringer, which
	// rings the bell.
	bell   chan struct{} // capacity 1; made at the first wake, kept for life
	parked atomic.Bool
	queued atomic.Bool // on the waker's list
	wnext  *actor      // next on the waker's list

	// reaper-only fields
	reapOps   uint64
	idleSince time.Time

	mu     sync.Mutex // wake / sleep transitions; state access while asleep
	loaded bool       // st was read from storage (or the actor is new)
	st     state
}

// errAsleep says the actor has no mailbox: it is asleep or deleted.
var errAsleep = errors.New("actor asleep")

// post sends an increment. It returns false when the actor is asleep (the
// caller wakes it). A full mailbox drops the increment and counts it, unless
// wait is set: then post rings the actor and waits for room (the actor, or
// its retirement, always drains the mailbox).
func (s *System) post(a *actor, m msg, wait bool) bool {
	a.inflight.Add(1)
	mb := a.mbox.Load()
	if mb == nil {
		a.inflight.Add(-1)
		return false
	}
	select {
	case *mb <- m:
	default:
		if !wait {
			a.inflight.Add(-1)
			s.dropped.Add(int64(m.requests))
			s.lim.Warn(s.log, "legacy actor mailbox full: increment dropped", "path", a.path,
				"requests", m.requests, "droppedTotal", s.dropped.Load())
			return true
		}
		a.ring()
		*mb <- m
	}
	a.inflight.Add(-1)
	if !a.dirty.Load() {
		s.markDirty(a)
	}
	if a.parked.Load() {
		s.ringer.schedule(a)
	}
	return true
}

// ask sends r and waits for its answer; errAsleep when the actor has no
// mailbox. It blocks while the mailbox is full: requests queue behind
// increments, as they would at a Durable Object.
func (s *System) ask(ctx context.Context, a *actor, r *request) error {
	a.inflight.Add(1)
	mb := a.mbox.Load()
	if mb == nil {
		a.inflight.Add(-1)
		return errAsleep
	}
	id := s.reqSeq.Add(1)
	s.reqs.Store(id, r)
	select {
	case *mb <- markerMsg(id):
		a.inflight.Add(-1)
	case <-ctx.Done():
		a.inflight.Add(-1)
		s.reqs.Delete(id)
		return ctx.Err()
	}
	a.ring()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		s.reqs.Delete(id) // the marker finds nothing; a late answer goes to done
		return ctx.Err()
	}
}

// tryAsk sends r without blocking or waiting (the reaper).
func (s *System) tryAsk(a *actor, r *request) {
	a.inflight.Add(1)
	if mb := a.mbox.Load(); mb != nil {
		id := s.reqSeq.Add(1)
		s.reqs.Store(id, r)
		select {
		case *mb <- markerMsg(id):
			a.ring()
		default:
			s.reqs.Delete(id)
		}
	}
	a.inflight.Add(-1)
}

// request takes the request of a marker; nil if its sender gave up.
func (s *System) request(m msg) *request {
	v, ok := s.reqs.LoadAndDelete(uint64(m.atMs))
	if !ok {
		return nil
	}
	return v.(*request)
}

// ring wakes the actor now if it is parked (requests: not the hot path).
func (a *actor) ring() {
	if a.parked.Load() && a.parked.CompareAndSwap(true, false) {
		select {
		case a.bell <- struct{}{}:
		default:
		}
	}
}

// wake gives a sleeping actor a mailbox and a goroutine. It returns false
// when the actor is deleted or the system no longer accepts increments.
func (s *System) wake(a *actor) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone.Load() || s.state.Load() != stateActive {
		return false
	}
	if a.mbox.Load() == nil {
		if a.bell == nil {
			a.bell = make(chan struct{}, 1)
		}
		ch := make(chan msg, s.cfg.MailboxSize)
		a.mbox.Store(&ch)
		s.awake.Add(1)
		s.wakes.Add(1)
		s.actorsWG.Add(1)
		go s.run(a, ch)
	}
	return true
}

// run is an actor's goroutine: it loads the state if needed, then handles
// messages one at a time until it goes to sleep or is stopped.
func (s *System) run(a *actor, mb chan msg) {
	defer s.actorsWG.Done()
	defer s.awake.Add(-1)
	if !a.loaded {
		s.loadWithRetry(a)
	}
	for {
		select {
		case m := <-mb:
			if s.handle(a, mb, m) {
				return
			}
			continue
		default:
		}
		// Empty: park. A sender that sees parked flips it and arranges a
		// ring; mail that arrived before parked was set is found by the
		// second receive. A stale ring only costs one extra turn.
		a.parked.Store(true)
		select {
		case m := <-mb:
			a.parked.CompareAndSwap(true, false)
			if s.handle(a, mb, m) {
				return
			}
			continue
		default:
		}
		<-a.bell
	}
}

// handle handles one message; true when the actor went to sleep or stopped.
func (s *System) handle(a *actor, mb chan msg, m msg) bool {
	a.ops.Add(1)
	if !m.marker() {
		s.apply(a, m)
		return false
	}
	r := s.request(m)
	switch {
	case r == nil:
		return false
	case r.kind == reqHibernate && (r.force || len(mb) == 0):
		s.retire(a, mb, false, r)
		return true
	case r.kind == reqStop:
		s.retire(a, mb, true, r)
		return true
	}
	s.answer(a, r)
	r.reply()
	return false
}

// apply counts one increment.
func (s *System) apply(a *actor, m msg) {
	a.st.add(s.proxyName(m.proxy), m.increment(), s.cutoff)
}

// cutoff is the oldest hour bucket kept.
func (s *System) cutoff() int64 { return pathstats.HourBucket(s.cfg.Now().Add(-Retention)) }

// answer handles a read, snapshot or run request (also while retiring).
func (s *System) answer(a *actor, r *request) {
	switch r.kind {
	case reqRead:
		r.item, r.found = a.st.window(a.path, r.since)
	case reqSnapshot:
		if !a.loaded {
			return // storage failed while closing: keep the stored state
		}
		a.st.prune(s.cutoff())
		r.snap = snapshot{name: a.name, path: a.path, state: a.st.clone()}
	case reqRun:
		r.fn()
	}
}

// retire puts the actor to sleep (gone: deletes it). It removes the mailbox,
// waits for senders that loaded it, and handles what is left in it, so no
// increment is stranded. Requests are answered after the transition.
func (s *System) retire(a *actor, mb chan msg, gone bool, r *request) {
	a.mu.Lock()
	a.mbox.Store(nil)
	var later []*request
	drain := func() {
		for {
			select {
			case m := <-mb:
				if !m.marker() {
					s.apply(a, m)
					continue
				}
				q := s.request(m)
				switch {
				case q == nil:
				case q.kind == reqStop:
					gone = true
					later = append(later, q)
				case q.kind == reqHibernate:
					later = append(later, q)
				default:
					s.answer(a, q)
					q.reply()
				}
			default:
				return
			}
		}
	}
	for {
		drain()
		if a.inflight.Load() == 0 {
			drain()
			break
		}
		runtime.Gosched()
	}
	if gone {
		a.gone.Store(true)
		a.st, a.loaded = state{}, true
	}
	a.mu.Unlock()
	r.reply()
	for _, q := range later {
		q.reply()
	}
}

// read returns a's totals over the window starting at since; ok is false
// when the window is empty or the actor was deleted. A sleeping actor is
// answered from its state, loaded from storage if needed, without waking it.
func (s *System) read(ctx context.Context, a *actor, since int64) (pathstats.PathItem, bool, error) {
	for {
		r := newRequest(reqRead)
		r.since = since
		err := s.ask(ctx, a, r)
		if err == nil {
			return r.item, r.found, nil
		}
		if !errors.Is(err, errAsleep) {
			return pathstats.PathItem{}, false, err
		}
		item, ok, retry, err := s.readAsleep(ctx, a, since)
		if !retry {
			return item, ok, err
		}
	}
}

// readAsleep reads a sleeping actor. A state never loaded is read from
// storage without holding mu, so a concurrent Observe never waits on it.
func (s *System) readAsleep(ctx context.Context, a *actor, since int64) (it pathstats.PathItem, ok, retry bool, err error) {
	var st state
	for loaded := false; ; loaded = true {
		a.mu.Lock()
		switch {
		case a.mbox.Load() != nil:
			a.mu.Unlock()
			return it, false, true, nil // woke meanwhile: ask it
		case a.gone.Load():
			a.mu.Unlock()
			return it, false, false, nil
		case !a.loaded && loaded:
			a.st, a.loaded = st, true
		}
		if a.loaded {
			it, ok = a.st.window(a.path, since)
			a.mu.Unlock()
			return it, ok, false, nil
		}
		a.mu.Unlock()
		if st, err = s.store.load(ctx, a.name); err != nil {
			return it, false, false, err
		}
	}
}

// snapshotOf returns a copy of a's state for the flush; ok is false when the
// actor is deleted or its state was never loaded (nothing to write).
func (s *System) snapshotOf(ctx context.Context, a *actor) (snapshot, bool, error) {
	for {
		r := newRequest(reqSnapshot)
		err := s.ask(ctx, a, r)
		if err == nil {
			return r.snap, r.snap.name != "", nil
		}
		if !errors.Is(err, errAsleep) {
			return snapshot{}, false, err
		}
		a.mu.Lock()
		if a.mbox.Load() != nil {
			a.mu.Unlock()
			continue
		}
		if a.gone.Load() || !a.loaded {
			a.mu.Unlock()
			return snapshot{}, false, nil
		}
		a.st.prune(s.cutoff())
		sn := snapshot{name: a.name, path: a.path, state: a.st.clone()}
		a.mu.Unlock()
		return sn, true, nil
	}
}

// sleep puts an awake actor to sleep, handling all its mail first.
func (s *System) sleep(ctx context.Context, a *actor) error {
	r := newRequest(reqHibernate)
	r.force = true
	if err := s.ask(ctx, a, r); err != nil && !errors.Is(err, errAsleep) {
		return err
	}
	return nil
}

// stop deletes an actor: it stops its goroutine (if any) and marks it gone.
func (s *System) stop(ctx context.Context, a *actor) error {
	for {
		err := s.ask(ctx, a, newRequest(reqStop))
		if err == nil {
			return nil
		}
		if !errors.Is(err, errAsleep) {
			return err
		}
		a.mu.Lock()
		if a.mbox.Load() != nil {
			a.mu.Unlock()
			continue
		}
		a.gone.Store(true)
		a.st, a.loaded = state{}, true
		a.mu.Unlock()
		return nil
	}
}

// loadWithRetry loads the state of a woken actor; messages wait in the
// mailbox meanwhile. It retries storage errors until the system closes.
func (s *System) loadWithRetry(a *actor) {
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		err := s.ensureLoaded(s.bgCtx, a)
		if err == nil {
			return
		}
		if s.bgCtx.Err() != nil {
			return // closing: not loaded, so nothing is written for it
		}
		s.loadErrors.Add(1)
		s.lim.Error(s.log, "load legacy actor state failed; retrying", "name", a.name, "path", a.path, "err", err)
		time.Sleep(delay)
	}
}

// ensureLoaded reads a's state from storage once. The caller owns the state
// (its goroutine, or mu while asleep).
func (s *System) ensureLoaded(ctx context.Context, a *actor) error {
	if a.loaded {
		return nil
	}
	st, err := s.store.load(ctx, a.name)
	if err != nil {
		return err
	}
	a.st, a.loaded = st, true
	return nil
}
