package migration

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/internal/lograte"
)

// ShadowOptions configure shadow comparison.
type ShadowOptions struct {
	// SampleRate is the share of answered requests whose other source is
	// read too, 0–1 (default 1).
	SampleRate float64
	// MaxInFlight bounds the workers comparing samples (default 2: a
	// comparison is a memo lookup or a filter over a view, except the one
	// that waits for the first view).
	MaxInFlight int
	// QueueSize bounds the samples waiting for a worker; beyond it a sample
	// is skipped and counted (default 1024).
	QueueSize int
	// Timeout bounds one shadow comparison, a view rebuild included
	// (default 5s).
	Timeout time.Duration
	// LogEvery bounds mismatch log lines, and failure log lines, to one per
	// interval each (default 10s).
	LogEvery time.Duration
	// ViewMaxAge is the oldest materialised view a ViewSource may answer
	// from: its fan-out runs at most once per ViewMaxAge (default 10s, the
	// default snapshot interval).
	ViewMaxAge time.Duration
	// MemoSize bounds the remembered verdicts (default 1024); when full,
	// they are all forgotten.
	MemoSize int
	// Tolerance is the relative difference of counts and totals accepted as
	// the two sides being read at different moments (default 0.01; < 0:
	// exact).
	Tolerance float64
	Logger    *slog.Logger
}

// ViewSource is implemented by an other source that can answer shadow reads
// from a materialised view (the legacy system): ShadowView returns the
// view's generation, rebuilt at most once per maxAge, and a function
// deriving any query's page from that generation. Equal generations give
// equal pages for equal queries. A nil page and a nil error mean no view
// exists yet: the sample is skipped.
type ViewSource interface {
	ShadowView(ctx context.Context, maxAge time.Duration) (gen uint64, page func(pathstats.PathQuery) api.PathsResult, err error)
}

// Shadow compares, for a sample of /paths requests, the page the client got
// with the page the other source gives for the same query. It runs in the
// background (never on the request goroutine) and never delays the answer.
//
// Its cost is bounded by time, not by request rate: when the other source
// is a ViewSource, the other page is derived from a view rebuilt at most
// once per ViewMaxAge, and a verdict is remembered per (query, served data
// source and snapshot version, view generation), so a repeated query
// against unchanged data reuses it (counted as compared, with the same
// result, and in Reused). Only new combinations do work.
//
// The two pages are read at different moments (the snapshot is up to a
// snapshot interval old plus the pipeline's lag; the view up to ViewMaxAge
// old), so under live traffic their counts may differ by the events in
// between. A page with the same paths in the same order whose counts and
// total differ by at most Tolerance (relative) is counted as Tolerated, not
// as a mismatch; different paths, order or length, or counts beyond the
// tolerance, are mismatches. Mismatch log lines carry both sides' data
// timestamps so skew can be told from divergence.
type Shadow struct {
	opts    ShadowOptions
	queue   chan sample     // samples waiting for a worker
	workers atomic.Int32    // running workers (at most MaxInFlight)
	lim     lograte.Limiter // mismatch and failure lines

	memoMu sync.Mutex
	memo   map[memoKey]verdict
	// pages remembers the other side's derived pages per (query, view
	// generation): deriving one filters the whole view, comparing two pages
	// is cheap, and the served side's version changes more often.
	pages map[pageKey]api.PathsResult

	// Compared counts every comparison: Matched + Tolerated + Mismatched;
	// Reused those whose verdict was remembered.
	Compared, Matched, Tolerated, Mismatched, Reused, Skipped, Failed atomic.Int64
}

// pageKey names a page derived from one generation of the other side's view.
type pageKey struct {
	q   pathstats.PathQuery
	gen uint64
}

// maxPages bounds the remembered derived pages (each at most 200 items).
const maxPages = 256

// memoKey identifies a comparison whose result cannot change.
type memoKey struct {
	q             pathstats.PathQuery
	served        string
	servedVersion uint64
	otherGen      uint64
}

// verdict is the result of one comparison: why is "" when the pages agree
// (tolerated says whether only within the tolerance). The other side's
// source, total and data time are kept for the log line of a reuse.
type verdict struct {
	why        string
	tolerated  bool
	other      string
	otherTotal int
	otherAt    string
}

// NewShadow returns a shadow comparer.
func NewShadow(opts ShadowOptions) *Shadow {
	if opts.SampleRate <= 0 || opts.SampleRate > 1 {
		opts.SampleRate = 1
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 2
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1024
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = 10 * time.Second
	}
	if opts.ViewMaxAge <= 0 {
		opts.ViewMaxAge = 10 * time.Second
	}
	if opts.MemoSize <= 0 {
		opts.MemoSize = 1024
	}
	if opts.Tolerance == 0 {
		opts.Tolerance = 0.01
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Shadow{opts: opts, queue: make(chan sample, opts.QueueSize), memo: map[memoKey]verdict{}, pages: map[pageKey]api.PathsResult{}}
	s.lim.Every = opts.LogEvery
	return s
}

// workerIdle is how long a worker waits for a sample before it exits.
const workerIdle = time.Second

// sample is one answered request to compare.
type sample struct {
	q     pathstats.PathQuery
	got   api.PathsResult
	other api.PathsSource
}

// After queues the comparison of an answered page with other's answer. It
// never blocks: the request's goroutine only hands the sample over (no
// goroutine per sample, which would also jump the scheduler's queue ahead
// of other requests); up to MaxInFlight workers, started on demand and
// gone when idle, do the work.
func (s *Shadow) After(q pathstats.PathQuery, got api.PathsResult, other api.PathsSource) {
	if s.opts.SampleRate < 1 && rand.Float64() >= s.opts.SampleRate {
		return
	}
	select {
	case s.queue <- sample{q: q, got: got, other: other}:
	default:
		s.Skipped.Add(1)
		return
	}
	if n := s.workers.Load(); n == 0 || (len(s.queue) > cap(s.queue)/2 && n < int32(s.opts.MaxInFlight)) {
		if s.workers.CompareAndSwap(n, n+1) {
			go s.work()
		}
	}
}

// workerTick is how often a worker takes the queued samples: in batches,
// so a burst of requests does not wake it once per sample.
const workerTick = 50 * time.Millisecond

// work compares queued samples, batch by batch every workerTick, until none
// came for workerIdle.
func (s *Shadow) work() {
	tick := time.NewTicker(workerTick)
	defer tick.Stop()
	idleSince := time.Now()
	for range tick.C {
		if s.drain() {
			idleSince = time.Now()
			continue
		}
		if time.Since(idleSince) < workerIdle {
			continue
		}
		s.workers.Add(-1)
		// A sample queued while this worker was leaving still gets one.
		if len(s.queue) == 0 || !s.workers.CompareAndSwap(0, 1) {
			return
		}
	}
}

// drain compares the samples queued now; it reports whether there were any.
func (s *Shadow) drain() bool {
	for n := 0; ; n++ {
		select {
		case smp := <-s.queue:
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
			s.compare(ctx, smp.q, smp.got, smp.other)
			cancel()
		default:
			return n > 0
		}
	}
}

// compare reads the other side (from its view when it has one, reusing a
// remembered verdict when possible) and records the verdict.
func (s *Shadow) compare(ctx context.Context, q pathstats.PathQuery, got api.PathsResult, other api.PathsSource) {
	vs, ok := other.(ViewSource)
	if !ok {
		res, err := other.Paths(ctx, q)
		if err != nil {
			s.fail(q, err)
			return
		}
		s.record(q, got, s.judge(got, res), false)
		return
	}
	gen, page, err := vs.ShadowView(ctx, s.opts.ViewMaxAge)
	if err != nil {
		s.fail(q, err)
		return
	}
	if page == nil {
		s.Skipped.Add(1)
		return
	}
	key, memoable := memoKey{q: q, served: got.Meta.DataSource, otherGen: gen}, got.Meta.Version != nil
	if memoable {
		key.servedVersion = *got.Meta.Version
		if v, hit := s.lookup(key); hit {
			s.record(q, got, v, true)
			return
		}
	}
	res := s.derived(q, gen, page)
	v := s.judge(got, res)
	if memoable {
		s.remember(key, v)
	}
	s.record(q, got, v, false)
}

// derived returns the other side's page for q from view generation gen,
// deriving it once per generation.
func (s *Shadow) derived(q pathstats.PathQuery, gen uint64, page func(pathstats.PathQuery) api.PathsResult) api.PathsResult {
	k := pageKey{q: q, gen: gen}
	s.memoMu.Lock()
	res, ok := s.pages[k]
	s.memoMu.Unlock()
	if ok {
		return res
	}
	res = page(q)
	s.memoMu.Lock()
	if len(s.pages) >= maxPages {
		clear(s.pages)
	}
	s.pages[k] = res
	s.memoMu.Unlock()
	return res
}

func (s *Shadow) lookup(k memoKey) (verdict, bool) {
	s.memoMu.Lock()
	defer s.memoMu.Unlock()
	v, ok := s.memo[k]
	return v, ok
}

func (s *Shadow) remember(k memoKey, v verdict) {
	s.memoMu.Lock()
	defer s.memoMu.Unlock()
	if len(s.memo) >= s.opts.MemoSize {
		clear(s.memo)
	}
	s.memo[k] = v
}

// record counts a verdict and logs a mismatch (rate-limited).
func (s *Shadow) record(q pathstats.PathQuery, got api.PathsResult, v verdict, reused bool) {
	s.Compared.Add(1)
	if reused {
		s.Reused.Add(1)
	}
	switch {
	case v.why != "":
		s.Mismatched.Add(1)
		s.logMismatch(q, got, v, reused)
	case v.tolerated:
		s.Tolerated.Add(1)
	default:
		s.Matched.Add(1)
	}
}

// judge compares two answers to one query with the tolerance.
func (s *Shadow) judge(a, b api.PathsResult) verdict {
	v := pageDiff(a, b, s.opts.Tolerance)
	v.other, v.otherTotal, v.otherAt = b.Meta.DataSource, b.Total, b.Meta.Timestamp
	return v
}

// pageDiff says how two answers to one query differ: why is "" when they
// have the same paths in the same order and equal counts and total, or
// counts and total within tol (relative; tolerated is then true when they
// are not equal). Otherwise why names the first difference: "length",
// "order", "counts" or "total".
func pageDiff(a, b api.PathsResult, tol float64) verdict {
	var v verdict
	if len(a.Items) != len(b.Items) {
		return verdict{why: "length"}
	}
	for i := range a.Items {
		if a.Items[i].Path != b.Items[i].Path {
			return verdict{why: "order"}
		}
	}
	for i := range a.Items {
		x, y := &a.Items[i], &b.Items[i]
		for _, c := range [2][2]int64{{x.RequestCount, y.RequestCount}, {x.ErrorCount, y.ErrorCount}} {
			if c[0] != c[1] {
				if !within(c[0], c[1], tol) {
					return verdict{why: "counts"}
				}
				v.tolerated = true
			}
		}
	}
	if a.Total != b.Total {
		if !within(int64(a.Total), int64(b.Total), tol) {
			return verdict{why: "total"}
		}
		v.tolerated = true
	}
	return v
}

// within says whether x and y differ by at most tol relative to the larger.
func within(x, y int64, tol float64) bool {
	if tol < 0 {
		return x == y
	}
	d := math.Abs(float64(x) - float64(y))
	return d <= tol*math.Max(math.Abs(float64(x)), math.Abs(float64(y)))
}

// fail counts a comparison that could not read the other side and logs
// why (rate-limited).
func (s *Shadow) fail(q pathstats.PathQuery, err error) {
	s.Failed.Add(1)
	s.lim.Warn(s.opts.Logger, "shadow comparison failed: other source unreadable", "err", err,
		"q", q.Q, "proxyId", q.ProxyID, "page", q.Page, "limit", q.Limit, "failuresSoFar", s.Failed.Load())
}

func (s *Shadow) logMismatch(q pathstats.PathQuery, a api.PathsResult, v verdict, reused bool) {
	attrs := []any{"differs", v.why, "q", q.Q, "proxyId", q.ProxyID, "page", q.Page, "limit", q.Limit,
		"served", a.Meta.DataSource, "servedTotal", a.Total, "servedDataAt", a.Meta.Timestamp,
		"other", v.other, "otherTotal", v.otherTotal, "otherDataAt", v.otherAt,
		"reusedVerdict", reused, "mismatchesSoFar", s.Mismatched.Load()}
	if a.Meta.Version != nil {
		attrs = append(attrs, "servedVersion", *a.Meta.Version)
	}
	s.lim.Log(s.opts.Logger, slog.LevelInfo, "mismatch", "shadow comparison mismatch", attrs...)
}
