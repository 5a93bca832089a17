// Package readpath is the v2 read path (plan Task 1): the decoded KV snapshot
// held in memory per node, stale-while-revalidate, the SQL fallback with the
// same filters, sort and total, and path configs merged into items.
package readpath

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/internal/lograte"
	"github.com/pathstats/pathstats/snapshot"
)

// ConfigKey is the KV key of the snapshot config, watched for new versions.
const ConfigKey = "snapshot:config"

// SnapshotLoader loads the current snapshot version (decoding a version once).
type SnapshotLoader interface {
	Load(ctx context.Context) (*snapshot.View, error)
}

// Options configure a Service.
type Options struct {
	KV       pathstats.KV           // watched for snapshot:config changes
	Loader   SnapshotLoader         // decodes versions
	Refresh  func()                 // asks for a new snapshot (coalesced, one writer per cluster)
	SQL      pathstats.WindowReader // the fallback
	Configs  *ConfigCache
	Patterns map[string]string // proxyId → route pattern
	MaxAge   time.Duration     // older snapshots are served stale and refreshed
	// PollInterval re-checks the config when no watch event came (default 2s).
	PollInterval time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// state is what the node serves from: a view, or the reason there is none.
type state struct {
	view *snapshot.View
	err  error
}

// Service answers path queries from the snapshot or, failing that, SQL.
type Service struct {
	opts    Options
	state   atomic.Pointer[state]
	stats   Stats
	refresh atomic.Pointer[refreshMark]
	lim     lograte.Limiter // unavailable answers
}

// refreshMark remembers the stale version a refresh was asked for, so the
// many requests that see one stale version ask once (again only after
// refreshRetry, in case that refresh failed).
type refreshMark struct {
	version uint64
	at      time.Time
}

const refreshRetry = 10 * time.Second

// Stats count how queries were answered.
type Stats struct {
	Snapshot, Fallback, Stale, Unavailable, Refreshes atomic.Int64
}

// New returns a service; call Run to follow snapshot versions.
func New(opts Options) *Service {
	if opts.MaxAge <= 0 {
		opts.MaxAge = time.Minute
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Service{opts: opts}
	s.state.Store(&state{err: snapshot.ErrNoConfig})
	return s
}

// Stats exposes the query counters.
func (s *Service) Stats() *Stats { return &s.stats }

// Run follows snapshot:config (watch, with a polling fallback) and loads
// each new version once, until ctx ends.
func (s *Service) Run(ctx context.Context) {
	s.reload(ctx)
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	for ctx.Err() == nil {
		events, err := s.opts.KV.Watch(ctx, ConfigKey)
		if err != nil {
			s.setErr(err)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				continue
			}
		}
		s.follow(ctx, events, tick.C)
	}
}

// follow reloads on every watch event and tick until the watch ends.
func (s *Service) follow(ctx context.Context, events <-chan pathstats.KVEntry, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			if e.Deleted {
				s.setErr(snapshot.ErrNoConfig)
				continue
			}
			s.reload(ctx)
		case <-tick:
			s.reload(ctx)
		}
	}
}

// Reload loads the current version now (tests and on-demand refreshes).
func (s *Service) Reload(ctx context.Context) error { return s.reload(ctx) }

func (s *Service) reload(ctx context.Context) error {
	v, err := s.opts.Loader.Load(ctx)
	if err != nil {
		s.setErr(err)
		return err
	}
	old := s.state.Load()
	if old.view != v {
		s.opts.Logger.Debug("snapshot loaded", "version", v.Config.Version, "paths", v.Config.PathCount)
	}
	s.state.Store(&state{view: v})
	return nil
}

func (s *Service) setErr(err error) {
	if old := s.state.Load(); old.err == nil || old.err.Error() != err.Error() {
		s.opts.Logger.Warn("snapshot unavailable; answering from SQL", "err", err)
	}
	s.state.Store(&state{err: err})
}

// Paths answers a query (api.PathsSource).
func (s *Service) Paths(ctx context.Context, q pathstats.PathQuery) (api.PathsResult, error) {
	st := s.state.Load()
	if st.view != nil {
		return s.fromSnapshot(ctx, st.view, q), nil
	}
	return s.fromSQL(ctx, q, st.err)
}

func (s *Service) fromSnapshot(ctx context.Context, v *snapshot.View, q pathstats.PathQuery) api.PathsResult {
	s.stats.Snapshot.Add(1)
	now := s.opts.Now()
	age := v.Config.Age(now)
	stale := age > s.opts.MaxAge
	if stale {
		s.stats.Stale.Add(1)
		s.askRefresh(v.Config.Version, now)
	}
	page := v.Query(q)
	version := v.Config.Version
	return api.PathsResult{
		Items: s.merge(ctx, page.Items, v.Config.Timestamp),
		Total: page.Total,
		Meta: api.PathsMeta{
			DataSource: api.SourceSnapshot, Version: &version,
			Timestamp:  v.Config.Timestamp.UTC().Format(time.RFC3339),
			AgeSeconds: int64(max(age, 0) / time.Second), Stale: stale,
		},
	}
}

// askRefresh triggers one refresh per stale version.
func (s *Service) askRefresh(version uint64, now time.Time) {
	if s.opts.Refresh == nil {
		return
	}
	old := s.refresh.Load()
	if old != nil && old.version == version && now.Sub(old.at) < refreshRetry {
		return
	}
	if s.refresh.CompareAndSwap(old, &refreshMark{version: version, at: now}) {
		s.stats.Refreshes.Add(1)
		s.opts.Refresh()
	}
}

func (s *Service) fromSQL(ctx context.Context, q pathstats.PathQuery, why error) (api.PathsResult, error) {
	page, err := s.opts.SQL.QueryPaths(ctx, q)
	if err != nil {
		s.stats.Unavailable.Add(1)
		s.lim.Error(s.opts.Logger, "SQL fallback failed", "err", err, "snapshotErr", why)
		return api.PathsResult{}, pathstats.Errorf(pathstats.EUnavailable, "path statistics are unavailable; retry later")
	}
	s.stats.Fallback.Add(1)
	now := s.opts.Now()
	return api.PathsResult{
		Items: s.merge(ctx, page.Items, now),
		Total: page.Total,
		Meta: api.PathsMeta{
			DataSource: api.SourceSQL, Timestamp: now.UTC().Format(time.RFC3339),
			Reason: fallbackReason(why),
		},
	}, nil
}

// fallbackReason names why the snapshot was not used, without internals.
func fallbackReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, snapshot.ErrNoConfig):
		return "snapshot config missing"
	case errors.Is(err, snapshot.ErrPayloadMissing):
		return "snapshot payload missing"
	case errors.Is(err, snapshot.ErrChecksum):
		return "snapshot checksum mismatch"
	case errors.Is(err, snapshot.ErrDecode):
		return "snapshot undecodable"
	case errors.Is(err, pathstats.ErrUnavailable):
		return "kv unavailable"
	}
	return "snapshot unavailable"
}

// merge renders a page's items with their path configs and route patterns.
func (s *Service) merge(ctx context.Context, items []pathstats.PathItem, dataTime time.Time) []api.PathItemJSON {
	configs := s.opts.Configs.Map(ctx)
	out := make([]api.PathItemJSON, len(items))
	for i := range items {
		var cfg *pathstats.PathConfig
		if c, ok := configs[items[i].Path]; ok {
			cfg = &c
		}
		out[i] = api.NewPathItem(&items[i], cfg, s.opts.Patterns[items[i].ProxyID], dataTime)
	}
	return out
}
