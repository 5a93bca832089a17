// Package recorder turns observed responses into batches of hourly counter
// deltas: it normalises paths, applies the cardinality guard, pre-aggregates
// per (path, proxyId, hour) in memory and publishes a batch every flush
// interval, buffering (bounded) while the queue is down.
package recorder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/lograte"
)

// Publisher stores an encoded batch durably under its id.
type Publisher interface {
	Publish(ctx context.Context, msgID string, data []byte) error
}

// Config configures a Recorder. Zero values take the defaults.
type Config struct {
	// Node names this process in batch ids (default: random).
	Node string
	// FlushInterval is how often counters become a batch (default 1s).
	FlushInterval time.Duration
	// MaxPathsPerProxy and MaxPaths are the cardinality guard (defaults
	// 100,000 and 1,000,000); overflow goes to OtherPath.
	MaxPathsPerProxy int
	MaxPaths         int
	// MaxProxies caps distinct proxy ids (default 10,000); events of further
	// proxies are counted under proxyId "other".
	MaxProxies int
	// FlushKeys triggers an early flush when this many (path, hour) keys
	// turned dirty since the last flush (default 50,000).
	FlushKeys int
	// MaxPendingDeltas bounds deltas kept while the queue is down (default
	// 1,000,000); further flushes are dropped and counted.
	MaxPendingDeltas int
	// PublishTimeout bounds one publish attempt (default 5s).
	PublishTimeout time.Duration
	// Templates maps a proxy id to its route pattern.
	Templates  map[string]string
	Normalizer Normalizer
	Logger     *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Node == "" {
		c.Node = randomHex(4)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxPathsPerProxy, 100_000)
	def(&c.MaxPaths, 1_000_000)
	def(&c.MaxProxies, 10_000)
	def(&c.FlushKeys, 50_000)
	def(&c.MaxPendingDeltas, 1_000_000)
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Recorder records responses and publishes hourly deltas. Record is safe for
// concurrent use and never blocks on the queue.
type Recorder struct {
	cfg    Config
	pub    Publisher
	guard  guard
	maxLen int // normalised path cap
	tables atomic.Pointer[map[string]*table]
	first  atomic.Pointer[[]*table] // the first proxies, scanned before the map
	mu     sync.Mutex               // serialises table creation
	nproxy int

	dirtyKeys atomic.Int64
	kick      chan struct{}
	wake      chan struct{} // pending batches to publish

	flushMu sync.Mutex // one flush at a time
	seq     atomic.Uint64
	prefix  string
	pending pendingQueue

	stats     Stats
	observers []pathstats.BatchObserver
	lim       lograte.Limiter // publish failures, drops
}

// Stats are the recorder's counters, read by metrics.
type Stats struct {
	Recorded         atomic.Int64 // events taken from counters into batches
	Batches          atomic.Int64 // batches built
	Published        atomic.Int64 // batches acknowledged by the queue
	PublishedEvents  atomic.Int64
	PublishFailures  atomic.Int64
	DroppedEvents    atomic.Int64 // events dropped because the buffer was full or at shutdown
	OverflowEvents   atomic.Int64 // events sent to OtherPath by the guard
	LastFlushUnixMs  atomic.Int64
	LastPublishError atomic.Pointer[string]
}

// New returns a recorder publishing to pub. Call Run to start flushing.
func New(cfg Config, pub Publisher) *Recorder {
	cfg.setDefaults()
	r := &Recorder{
		cfg:    cfg,
		pub:    pub,
		kick:   make(chan struct{}, 1),
		wake:   make(chan struct{}, 1),
		prefix: fmt.Sprintf("%s-%x", cfg.Node, time.Now().UnixNano()),
	}
	r.maxLen = cfg.Normalizer.MaxLength
	if r.maxLen <= 0 {
		r.maxLen = pathstats.MaxPathLength
	}
	r.guard.perProxy = int64(cfg.MaxPathsPerProxy)
	r.guard.total = int64(cfg.MaxPaths)
	m := map[string]*table{}
	r.tables.Store(&m)
	r.first.Store(&[]*table{})
	return r
}

// AddObserver registers an observer of the batches the queue accepted (the
// legacy dual write); call before recording starts. Batches built by
// BuildBatches are published by the caller, which tells its own observers.
func (r *Recorder) AddObserver(o pathstats.BatchObserver) { r.observers = append(r.observers, o) }

// Stats exposes the recorder's counters.
func (r *Recorder) Stats() *Stats { return &r.stats }

// Paths is the number of admitted paths over all proxies.
func (r *Recorder) Paths() int64 { return r.guard.admitted.Load() }

// PendingEvents is the number of events in batches not yet acknowledged.
func (r *Recorder) PendingEvents() int64 { return r.pending.events.Load() }

// PendingBatches is the number of batches not yet acknowledged.
func (r *Recorder) PendingBatches() int64 { return r.pending.batches.Load() }

// Record counts one response. It does not allocate for a known path.
func (r *Recorder) Record(proxyID, path string, status int, latency time.Duration, at time.Time) {
	t := r.table(proxyID)
	e := r.find(t, path)
	sec := at.Unix()
	hour := sec - sec%3600
	if t.add(e, hour, pathstats.StatusClass(status), pathstats.LatencyBucketOf(latency), at.UnixMilli()) {
		if r.dirtyKeys.Add(1) == int64(r.cfg.FlushKeys) {
			r.Kick()
		}
	}
}

// find returns the entry of a raw path. A path that is already normal is
// found without normalising it: normalisation is idempotent below the length
// cap, so a raw path equal to a stored (normalised) path normalises to it.
func (r *Recorder) find(t *table, path string) *entry {
	if len(path) < r.maxLen {
		if e := lookup(t, hashPath(path), path); e != nil {
			return e
		}
	}
	var buf [256]byte
	norm := r.cfg.Normalizer.Append(buf[:0], path, t.tmpl)
	h := hashPath(norm)
	if e := lookup(t, h, norm); e != nil {
		return e
	}
	return r.admitSlow(t, h, norm)
}

func (r *Recorder) admitSlow(t *table, h uint64, norm []byte) *entry {
	e := t.admit(h, norm, &r.guard)
	if e == nil {
		r.stats.OverflowEvents.Add(1)
		return t.other
	}
	return e
}

// Admit registers a known path (for example one read back from SQL at start)
// so the guard counts it; it returns the path the recorder keeps it under.
func (r *Recorder) Admit(proxyID, path string) string {
	t := r.table(proxyID)
	var buf [256]byte
	norm := r.cfg.Normalizer.Append(buf[:0], path, t.tmpl)
	h := hashPath(norm)
	if e := lookup(t, h, norm); e != nil {
		return e.path
	}
	return r.admitSlow(t, h, norm).path
}

// table returns the counters of a proxy, creating them on first use. The
// first few proxies are found by a linear scan, cheaper than a map lookup.
func (r *Recorder) table(proxyID string) *table {
	for _, t := range *r.first.Load() {
		if t.proxyID == proxyID {
			return t
		}
	}
	if t := (*r.tables.Load())[proxyID]; t != nil {
		return t
	}
	return r.newTable(proxyID)
}

func (r *Recorder) newTable(proxyID string) *table {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.tables.Load()
	if t := old[proxyID]; t != nil {
		return t
	}
	if r.nproxy >= r.cfg.MaxProxies {
		if t := old["other"]; t != nil {
			return t
		}
		proxyID = "other"
	}
	t := newTable(proxyID, ParseTemplate(r.cfg.Templates[proxyID]))
	m := make(map[string]*table, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[proxyID] = t
	r.nproxy++
	r.tables.Store(&m)
	if first := *r.first.Load(); len(first) < 8 {
		first = append(first[:len(first):len(first)], t)
		r.first.Store(&first)
	}
	return t
}

// Kick asks the flush loop for an early flush.
func (r *Recorder) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// BuildBatches normalises and aggregates ingested events into batches with
// ids derived from baseID. Events with a zero Time happened at now. The
// split into batches depends only on the events as sent (never on the clock,
// the guard or normalisation), so a retried request reproduces the same
// batch ids for the same events: the events are cut, in order, into chunks
// of at most MaxDeltasPerBatch distinct (path, proxyId, hour) keys as sent
// (an event without a time counts under a key of its own), and each chunk
// becomes one batch. The guard applies as for recorded traffic.
func (r *Recorder) BuildBatches(baseID string, events []pathstats.Event, now time.Time) []*pathstats.Batch {
	chunks := chunkEvents(events)
	batches := make([]*pathstats.Batch, 0, len(chunks))
	created := time.Now().UnixMilli()
	for i, c := range chunks {
		id := baseID
		if len(chunks) > 1 {
			id = fmt.Sprintf("%s#%d", baseID, i)
		}
		deltas := r.chunkDeltas(events[c.from:c.to], now)
		pathstats.SortDeltas(deltas)
		batches = append(batches, &pathstats.Batch{ID: id, Node: r.cfg.Node, CreatedMs: created, Deltas: deltas})
	}
	return batches
}

// span is a chunk of events, [from, to).
type span struct{ from, to int }

// sentKey is an event's row key as sent: hour -1 when it has no time.
type sentKey struct {
	hour        int64
	path, proxy string
}

// chunkEvents cuts events, in order, into spans of at most
// MaxDeltasPerBatch distinct sent keys.
func chunkEvents(events []pathstats.Event) []span {
	var out []span
	seen := make(map[sentKey]struct{}, min(len(events), pathstats.MaxDeltasPerBatch))
	from := 0
	for i := range events {
		k := sentKeyOf(&events[i])
		if _, ok := seen[k]; ok {
			continue
		}
		if len(seen) == pathstats.MaxDeltasPerBatch {
			out = append(out, span{from, i})
			from = i
			clear(seen)
		}
		seen[k] = struct{}{}
	}
	return append(out, span{from, len(events)})
}

func sentKeyOf(ev *pathstats.Event) sentKey {
	k := sentKey{hour: -1, path: ev.Path, proxy: ev.ProxyID}
	if !ev.Time.IsZero() {
		k.hour = pathstats.HourBucket(ev.Time)
	}
	return k
}

// chunkDeltas aggregates events per normalised (path, proxyId, hour).
func (r *Recorder) chunkDeltas(events []pathstats.Event, now time.Time) []pathstats.Delta {
	agg := make(map[pathstats.Key]*pathstats.Counts, len(events)/4+1)
	for i := range events {
		ev := &events[i]
		proxy := ev.ProxyID
		if proxy == "" {
			proxy = pathstats.DefaultProxyID
		}
		at := ev.Time
		if at.IsZero() {
			at = now
		}
		t := r.table(proxy)
		k := pathstats.Key{Hour: pathstats.HourBucket(at), Path: r.Admit(t.proxyID, ev.Path), ProxyID: t.proxyID}
		c := agg[k]
		if c == nil {
			c = &pathstats.Counts{}
			agg[k] = c
		}
		c.Observe(ev.Status, ev.LatencyMs, at)
	}
	deltas := make([]pathstats.Delta, 0, len(agg))
	for k, c := range agg {
		deltas = append(deltas, pathstats.Delta{Key: k, Counts: *c})
	}
	return deltas
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
