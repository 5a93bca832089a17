package migration

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// ShadowOptions configure shadow comparison.
type ShadowOptions struct {
	// SampleRate is the share of answered requests whose other source is
	// read too, 0–1 (default 1).
	SampleRate float64
	// MaxInFlight bounds concurrent shadow reads; beyond it a sample is
	// skipped and counted (default 4).
	MaxInFlight int
	// Timeout bounds one shadow read (default 5s).
	Timeout time.Duration
	// LogEvery bounds mismatch log lines to one per interval (default 10s).
	LogEvery time.Duration
	Logger   *slog.Logger
}

// Shadow compares, for a sample of /paths requests, the page the client got
// with the page the other source gives for the same query. It runs in the
// background and never delays the answer.
type Shadow struct {
	opts    ShadowOptions
	sem     chan struct{}
	lastLog atomic.Int64

	Compared, Mismatched, Skipped, Failed atomic.Int64
}

// NewShadow returns a shadow comparer.
func NewShadow(opts ShadowOptions) *Shadow {
	if opts.SampleRate <= 0 || opts.SampleRate > 1 {
		opts.SampleRate = 1
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Shadow{opts: opts, sem: make(chan struct{}, opts.MaxInFlight)}
}

// After schedules the comparison of an answered page with other's answer.
func (s *Shadow) After(q pathstats.PathQuery, got api.PathsResult, other api.PathsSource) {
	if rand.Float64() >= s.opts.SampleRate {
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.Skipped.Add(1)
		return
	}
	go func() {
		defer func() { <-s.sem }()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		defer cancel()
		res, err := other.Paths(ctx, q)
		if err != nil {
			s.Failed.Add(1)
			return
		}
		s.Compared.Add(1)
		if why := pageDiff(got, res); why != "" {
			s.Mismatched.Add(1)
			s.logMismatch(q, got, res, why)
		}
	}()
}

// pageDiff says how two answers to one query differ ("" when they agree on
// total, paths, order and counts).
func pageDiff(a, b api.PathsResult) string {
	if a.Total != b.Total {
		return "total"
	}
	if len(a.Items) != len(b.Items) {
		return "length"
	}
	for i := range a.Items {
		x, y := &a.Items[i], &b.Items[i]
		if x.Path != y.Path {
			return "order"
		}
		if x.RequestCount != y.RequestCount || x.ErrorCount != y.ErrorCount {
			return "counts"
		}
	}
	return ""
}

func (s *Shadow) logMismatch(q pathstats.PathQuery, a, b api.PathsResult, why string) {
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if now-last < int64(s.opts.LogEvery) || !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	s.opts.Logger.Info("shadow comparison mismatch", "differs", why, "q", q.Q, "proxyId", q.ProxyID, "page", q.Page,
		"served", a.Meta.DataSource, "servedTotal", a.Total, "other", b.Meta.DataSource, "otherTotal", b.Total,
		"mismatchesSoFar", s.Mismatched.Load())
}
