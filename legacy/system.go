package legacy

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/lograte"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a System. Zero values take the defaults.
type Config struct {
	// Dir holds the system's own storage, Dir/legacy.db (for example
	// <data-dir>/legacy). Required.
	Dir string
	// FlushInterval is the write-behind period (default 1s): a kill -9 loses
	// at most the increments of the last interval.
	FlushInterval time.Duration
	// MailboxSize bounds each actor's mailbox (default 256); increments
	// beyond it are dropped and counted.
	MailboxSize int
	// IdleTimeout is how long (real time) an actor stays awake without
	// messages before its goroutine exits (default 1m).
	IdleTimeout time.Duration
	// Now is the clock of hour buckets, retention and the read window
	// (default time.Now).
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the pathstats_legacy_* metrics; Close
	// unregisters them.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.MailboxSize <= 0 {
		c.MailboxSize = 256
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Lifecycle states of a System (System.state).
const (
	stateActive int32 = iota
	stateDecommissioned
	stateClosed
	stateRetiring // decommission running: no dual write, operations allowed
)

// System is the legacy live-counter system: one actor per path, persisted
// write-behind to its own SQLite file. Its methods are safe for concurrent
// use.
type System struct {
	// read by Observe on every call
	state   atomic.Int32
	index   atomic.Pointer[pathIndex]
	seed    maphash.Seed
	proxies atomic.Pointer[proxyTable]
	dropped atomic.Int64
	ringer  ringer
	feed    feed

	reqs   sync.Map // request id -> *request, for mailbox markers
	reqSeq atomic.Uint64

	cfg   Config
	log   *slog.Logger
	lim   lograte.Limiter // drops and storage failures, one line per kind and interval
	store *store

	mu     sync.Mutex // actor creation and removal; byName and index writes
	byName map[string]*actor
	count  atomic.Int64 // len(byName)

	proxyMu sync.Mutex

	dirtyMu sync.Mutex
	dirty   []*actor
	spare   []*actor

	flushMu sync.Mutex // one flush (or cleanup batch) at a time
	opMu    sync.Mutex // admin operations and Close
	closed  bool       // guarded by opMu
	decom   atomic.Bool

	awake    atomic.Int64 // actors with a goroutine
	wakes    atomic.Int64 // goroutines started
	actorsWG sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	quit     chan struct{}
	stopBG   sync.Once
	bgWG     sync.WaitGroup

	flushes     atomic.Int64
	flushErrors atomic.Int64
	loadErrors  atomic.Int64
	lastFlushMs atomic.Int64
	collectors  []prometheus.Collector
}

// Open opens (creating if needed) the system's storage in cfg.Dir, reads the
// instance index (states load lazily, when an actor is first woken or read)
// and starts the write-behind flusher. When the storage says the system was
// decommissioned, Open still returns it, with Decommissioned() true, no
// actors and every operation refused; the caller warns if it wanted legacy on.
func Open(ctx context.Context, cfg Config) (*System, error) {
	cfg.setDefaults()
	st, err := openStore(ctx, cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &System{
		seed:   maphash.MakeSeed(),
		cfg:    cfg,
		log:    cfg.Logger.With("component", "legacy"),
		store:  st,
		byName: map[string]*actor{},
		quit:   make(chan struct{}),
		ringer: ringer{kick: make(chan struct{}, 1)},
	}
	s.feed.ch = make(chan *pathstats.Batch, FeedBatches)
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.proxies.Store(&proxyTable{index: map[string]uint32{}})
	s.index.Store(newPathIndex(0))
	if err := s.load(ctx); err != nil {
		st.close()
		return nil, err
	}
	if err := s.registerMetrics(); err != nil {
		st.close()
		return nil, err
	}
	if !s.decom.Load() {
		s.bgWG.Add(4)
		go s.feedLoop()
		go s.flushLoop()
		go s.reapLoop()
		go s.ringLoop()
	}
	return s, nil
}

// load reads the decommissioned flag and the instance index.
func (s *System) load(ctx context.Context) error {
	decom, err := s.store.decommissioned(ctx)
	if err != nil {
		return err
	}
	if decom {
		s.decom.Store(true)
		s.state.Store(stateDecommissioned)
		return nil
	}
	err = s.store.index(ctx, func(name, path string) {
		s.byName[name] = &actor{name: name, path: path}
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.rebuildLocked()
	s.mu.Unlock()
	return nil
}

// Observe counts one response for path. It never blocks: a full mailbox
// drops the increment and counts it. It does nothing after Close or
// Decommission. latency is not kept by the legacy system. A new path's
// string is kept as given, so it must not be backed by a buffer the caller
// reuses. The pipeline feeds the system through ObserveBatch instead.
func (s *System) Observe(proxyID, path string, status int, _ time.Duration, at time.Time) {
	if s.state.Load() != stateActive {
		return
	}
	s.deliver(path, s.msgOf(proxyID, incrementOf(status, at.UnixMilli())), false)
}

// msgOf is the mailbox message of an increment that fits in uint32 counts.
func (s *System) msgOf(proxyID string, inc increment) msg {
	return msg{atMs: inc.atMs, requests: uint32(inc.requests), errors: uint32(inc.errors),
		clientErrors: uint32(inc.clientErrors), proxy: s.proxyIndex(proxyID)}
}

// deliver posts m to the actor of path, creating or waking it. With wait it
// waits for room in a full mailbox; else a full mailbox drops m, counted.
func (s *System) deliver(path string, m msg, wait bool) {
	if a := s.index.Load().find(maphash.String(s.seed, path), path); a != nil && s.post(a, m, wait) {
		return
	}
	s.observeSlow(path, m, wait)
}

// observeSlow handles a new path or a sleeping actor.
func (s *System) observeSlow(path string, m msg, wait bool) {
	for range 4 {
		a := s.index.Load().find(maphash.String(s.seed, path), path)
		if a == nil || a.gone.Load() {
			if a = s.actorFor(path); a == nil {
				return // not active any more
			}
		}
		if s.wake(a) && s.post(a, m, wait) {
			return
		}
		if s.state.Load() != stateActive {
			return
		}
	}
	s.dropped.Add(int64(m.requests))
	s.lim.Warn(s.log, "legacy increment dropped: no actor took it", "path", path,
		"requests", m.requests, "droppedTotal", s.dropped.Load())
}

// actorFor returns the live actor of path, creating it; nil when the system
// no longer accepts increments.
func (s *System) actorFor(path string) *actor {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() != stateActive {
		return nil
	}
	h := maphash.String(s.seed, path)
	ix := s.index.Load()
	if a := ix.find(h, path); a != nil && !a.gone.Load() {
		return a
	}
	// The path is kept as given (the recorder passes long-lived strings), so
	// the index's comparison with the caller's string is a pointer check.
	a := &actor{name: Name(path), path: path, loaded: true}
	s.byName[a.name] = a
	s.count.Store(int64(len(s.byName)))
	if ix.full() {
		s.rebuildLocked() // includes a
		return a
	}
	ix.put(h, a)
	return a
}

// rebuildLocked publishes a new path index of byName, twice its size.
func (s *System) rebuildLocked() {
	ix := newPathIndex(2 * len(s.byName))
	for _, a := range s.byName {
		ix.put(maphash.String(s.seed, a.path), a)
	}
	s.index.Store(ix)
	s.count.Store(int64(len(s.byName)))
}

// actors returns every known actor (the in-memory instance index: the stored
// instances plus new ones not flushed yet).
func (s *System) actors() []*actor {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*actor, 0, len(s.byName))
	for _, a := range s.byName {
		out = append(out, a)
	}
	return out
}

// Instances is the number of instances: stored ones plus new ones not
// flushed yet.
func (s *System) Instances() int { return int(s.count.Load()) }

// Decommissioned reports whether the system was decommissioned (now or in
// an earlier run).
func (s *System) Decommissioned() bool { return s.decom.Load() }

var (
	errGone   = pathstats.Errorf(pathstats.EGone, "the legacy system has been decommissioned; path statistics are served by the new read path (/api/admin/paths)")
	errClosed = pathstats.Errorf(pathstats.EUnavailable, "the legacy system is shut down")
)

// usable returns the error for a system that is decommissioned or closed.
func (s *System) usable() error {
	switch s.state.Load() {
	case stateDecommissioned:
		return errGone
	case stateClosed:
		if s.decom.Load() {
			return errGone
		}
		return errClosed
	}
	return nil
}

// Close stops the background work, puts every actor to sleep (handling all
// queued increments), flushes all state and closes the storage.
func (s *System) Close(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	errFeed := s.syncFeed(ctx) // deliver what the pipeline accepted
	s.state.Store(stateClosed)
	s.stopBackground()
	errSleep := s.sleepAll(ctx)
	s.bgCancel()
	errFlush := s.Flush(ctx)
	errWait := waitCtx(ctx, &s.actorsWG)
	s.unregisterMetrics()
	errClose := s.store.close()
	if err := errors.Join(errFeed, errSleep, errFlush, errWait, errClose); err != nil {
		return fmt.Errorf("close legacy system: %w", err)
	}
	return nil
}

func (s *System) stopBackground() {
	s.stopBG.Do(func() { close(s.quit) })
	s.bgWG.Wait()
}

// sleepAll puts every awake actor to sleep.
func (s *System) sleepAll(ctx context.Context) error {
	acts := s.actors()
	return fanOut(ctx, len(acts), func(ctx context.Context, i int) error {
		return s.sleep(ctx, acts[i])
	})
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for actors: %w", ctx.Err())
	}
}

// fanOutWidth bounds requests in flight in a fan-out.
const fanOutWidth = 64

// fanOut calls fn(ctx, i) for i in [0, n) with at most fanOutWidth calls in
// flight; the first error cancels the rest and is returned.
func fanOut(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 0 {
		return ctx.Err()
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	for range min(n, fanOutWidth) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || cctx.Err() != nil {
					return
				}
				if err := fn(cctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
