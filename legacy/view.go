package legacy

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// view is one materialised read of every actor over the read window: the
// items System.Paths would filter, already sorted with
// pathstats.ComparePathItems, with each path's lowercase form precomputed.
// Any query's page is derived from it by filtering and paging, with the
// same semantics as System.Paths at the moment the view was built. A view
// is immutable once built.
type view struct {
	gen    uint64    // 1 for the first view of a cache, then +1 per build
	dataAt time.Time // the system clock when the fan-out started
	items  []viewItem
}

// viewItem is the compact form of a window item (the legacy system keeps no
// latency and only the 4xx and 5xx status classes).
type viewItem struct {
	path, lower, proxyID                   string
	requests, errors, clientErrors, lastMs int64
}

func (v *viewItem) pathItem() pathstats.PathItem {
	it := pathstats.PathItem{
		Path: v.path, ProxyID: v.proxyID, Requests: v.requests, Errors: v.errors,
		ClientErrors: v.clientErrors, LastAccessedMs: v.lastMs,
	}
	it.Status[3], it.Status[4] = v.clientErrors, v.errors
	return it
}

// readView reads every actor's totals over the read window at now, one actor
// at a time: a rebuild is background work, so it occupies at most one
// goroutine and yields the CPU to requests (System.Paths fans out 64 wide
// because a client waits for it). The items are sorted like
// pathstats.ComparePathItems.
func (s *System) readView(ctx context.Context, gen uint64, now time.Time) (*view, error) {
	acts := s.actors()
	since := pathstats.HourBucket(now.Add(-window))
	items := make([]viewItem, 0, len(acts))
	for _, a := range acts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it, ok, err := s.read(ctx, a, since)
		if err != nil {
			return nil, err
		}
		if ok {
			items = append(items, viewItem{
				path: it.Path, lower: strings.ToLower(it.Path), proxyID: it.ProxyID,
				requests: it.Requests, errors: it.Errors, clientErrors: it.ClientErrors, lastMs: it.LastAccessedMs,
			})
		}
	}
	slices.SortFunc(items, compareViewItems)
	return &view{gen: gen, dataAt: now, items: items}, nil
}

// compareViewItems is pathstats.ComparePathItems on view items: requests
// descending, then path, then proxyId.
func compareViewItems(a, b viewItem) int {
	if c := cmp.Compare(b.requests, a.requests); c != 0 {
		return c
	}
	if c := strings.Compare(a.path, b.path); c != 0 {
		return c
	}
	return strings.Compare(a.proxyID, b.proxyID)
}

// query returns q's page and the number of matches: proxyId exact, q a
// case-insensitive literal substring (strings.ToLower of both sides), pages
// of q.Limit from q.Offset() — System.Paths' semantics.
func (v *view) query(q pathstats.PathQuery) pathstats.PathPage {
	off, limit := q.Offset(), q.Limit
	if q.Q == "" && q.ProxyID == "" {
		page := pathstats.PathPage{Total: len(v.items)}
		for i := off; i < min(off+limit, len(v.items)); i++ {
			page.Items = append(page.Items, v.items[i].pathItem())
		}
		return page
	}
	needle := strings.ToLower(q.Q)
	var page pathstats.PathPage
	for i := range v.items {
		it := &v.items[i]
		if (q.ProxyID != "" && it.proxyID != q.ProxyID) || (needle != "" && !strings.Contains(it.lower, needle)) {
			continue
		}
		if page.Total >= off && page.Total < off+limit {
			page.Items = append(page.Items, it.pathItem())
		}
		page.Total++
	}
	return page
}

// viewBuildTimeout bounds one rebuild (a cold one loads every state from
// storage, one at a time).
const viewBuildTimeout = 2 * time.Minute

// viewCache holds the latest view and rebuilds it single-flight, in the
// background: a build starts at most once per maxAge (real time, whatever
// its outcome), so the fan-out's cost is bounded by time, not by how often
// views are asked for.
type viewCache struct {
	s *System

	mu        sync.Mutex
	cur       *view
	building  chan struct{} // non-nil while a build runs; closed when it ends
	lastStart time.Time     // real time the last build started
	lastErr   error         // the last build's error, nil once one succeeded
	gen       uint64
	builds    int64
}

// get returns the latest view, starting a rebuild when the latest started
// more than maxAge ago and none is running. It does not wait for a rebuild
// when a view exists (the previous one is returned); with none yet, the
// caller that started the build waits for it (until ctx ends) and others
// get a nil view and no error.
func (c *viewCache) get(ctx context.Context, maxAge time.Duration) (*view, error) {
	if err := c.s.usable(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	started := false
	if c.building == nil && (c.lastStart.IsZero() || time.Since(c.lastStart) >= maxAge) {
		c.building, c.lastStart, started = make(chan struct{}), time.Now(), true
		c.gen++
		c.builds++
		go c.build(c.gen, c.building)
	}
	cur, building, lastErr := c.cur, c.building, c.lastErr
	c.mu.Unlock()
	switch {
	case cur != nil:
		return cur, nil
	case !started && building != nil:
		return nil, nil
	case !started:
		return nil, lastErr
	}
	select {
	case <-building:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for legacy view: %w", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur, c.lastErr
}

// build reads the view (bounded by viewBuildTimeout and the system's
// lifetime) and publishes it, or the error.
func (c *viewCache) build(gen uint64, done chan struct{}) {
	ctx, cancel := context.WithTimeout(c.s.bgCtx, viewBuildTimeout)
	defer cancel()
	v, err := c.s.readView(ctx, gen, c.s.cfg.Now())
	if err != nil {
		err = fmt.Errorf("build legacy view: %w", err)
		c.s.log.Warn("legacy view for shadow comparison not built", "err", err)
	}
	c.mu.Lock()
	if v != nil {
		c.cur = v
	}
	c.lastErr, c.building = err, nil
	c.mu.Unlock()
	close(done)
}

// ShadowView serves shadow comparison (migration.ViewSource): it returns
// the generation of the system's materialised view and a function deriving
// any query's page from it, with System.Paths' semantics as of the view's
// build. The view is rebuilt in the background by one read of every actor
// at most once per maxAge (single-flight); callers keep the previous view
// meanwhile, so shadow reads cost a filter over the view, not a fan-out per
// request. Before the first view exists, the caller that started its build
// waits for it and others get a nil page and no error (nothing to compare
// yet). A page's metadata.timestamp is the view's data time.
func (p *pathsSource) ShadowView(ctx context.Context, maxAge time.Duration) (uint64, func(pathstats.PathQuery) api.PathsResult, error) {
	v, err := p.views.get(ctx, maxAge)
	if err != nil || v == nil {
		return 0, nil, err
	}
	page := func(q pathstats.PathQuery) api.PathsResult {
		return toResult(v.query(q), v.dataAt, p.s.cfg.Now())
	}
	return v.gen, page, nil
}
