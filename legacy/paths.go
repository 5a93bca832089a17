package legacy

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// Paths is the plan's PathAggregator.getAllPathsDetails: it asks every
// actor for its totals over the read window (hour buckets >=
// HourBucket(now-24h), the new pipeline's window), at most 64 requests in
// flight, then keeps the paths with requests in the window that match q
// (case-insensitive literal substring) and proxyId (exact, against the
// actor's last proxy), sorts them with pathstats.ComparePathItems and
// returns the page and the number of matches. Slow by design: every call
// visits every actor. Items carry only the 4xx and 5xx status classes and
// no latency: the legacy system never kept them.
func (s *System) Paths(ctx context.Context, q pathstats.PathQuery) (pathstats.PathPage, error) {
	if err := s.usable(); err != nil {
		return pathstats.PathPage{}, err
	}
	items, found, err := s.readWindow(ctx, s.cfg.Now())
	if err != nil {
		return pathstats.PathPage{}, err
	}
	match := filterItems(items, found, q)
	slices.SortFunc(match, pathstats.ComparePathItems)
	page := pathstats.PathPage{Total: len(match)}
	if off := q.Offset(); off < len(match) {
		for _, it := range match[off:min(off+q.Limit, len(match))] {
			page.Items = append(page.Items, *it)
		}
	}
	return page, nil
}

// readWindow asks every actor for its totals over the read window at now;
// found[i] says whether items[i] had requests in it.
func (s *System) readWindow(ctx context.Context, now time.Time) (items []pathstats.PathItem, found []bool, err error) {
	acts := s.actors()
	since := pathstats.HourBucket(now.Add(-window))
	items = make([]pathstats.PathItem, len(acts))
	found = make([]bool, len(acts))
	err = fanOut(ctx, len(acts), func(ctx context.Context, i int) error {
		var err error
		items[i], found[i], err = s.read(ctx, acts[i], since)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return items, found, nil
}

// filterItems returns the found items matching q.
func filterItems(items []pathstats.PathItem, found []bool, q pathstats.PathQuery) []*pathstats.PathItem {
	needle := strings.ToLower(q.Q)
	var out []*pathstats.PathItem
	for i := range items {
		it := &items[i]
		if !found[i] || (q.ProxyID != "" && it.ProxyID != q.ProxyID) {
			continue
		}
		if needle != "" && !strings.Contains(strings.ToLower(it.Path), needle) {
			continue
		}
		out = append(out, it)
	}
	return out
}

// PathsSource returns the system as an api.PathsSource (dataSource
// do-legacy, items without config merge), for the canary router. Paths
// fans out on every call; the source also offers ShadowView, a
// materialised view for shadow comparison, cached per source.
func (s *System) PathsSource() api.PathsSource { return &pathsSource{s: s, views: &viewCache{s: s}} }

type pathsSource struct {
	s     *System
	views *viewCache
}

func (p *pathsSource) Paths(ctx context.Context, q pathstats.PathQuery) (api.PathsResult, error) {
	page, err := p.s.Paths(ctx, q)
	if err != nil {
		return api.PathsResult{}, err
	}
	now := p.s.cfg.Now()
	return toResult(page, now, now), nil
}

// toResult renders a page read at dataAt (the system clock) as seen at now.
// Items leave out statusClasses and latency: the legacy system keeps
// neither (only the 4xx and 5xx counts, as clientErrorCount and
// errorCount), and zeros would read as measured values.
func toResult(page pathstats.PathPage, dataAt, now time.Time) api.PathsResult {
	res := api.PathsResult{
		Items: make([]api.PathItemJSON, len(page.Items)),
		Total: page.Total,
		Meta: api.PathsMeta{
			DataSource: api.SourceLegacy, Timestamp: dataAt.UTC().Format(time.RFC3339),
			AgeSeconds: int64(max(now.Sub(dataAt), 0) / time.Second),
		},
	}
	for i := range page.Items {
		res.Items[i] = api.NewPathItem(&page.Items[i], nil, "", dataAt)
		res.Items[i].StatusClasses, res.Items[i].Latency = nil, nil
	}
	return res
}

// HandlerPaths serves the legacy /paths contract (q, proxyId, page, limit;
// metadata.dataSource "do-legacy"); 410 GONE once decommissioned.
func (s *System) HandlerPaths() http.Handler {
	return s.live(api.PathsHandler(s.PathsSource()).ServeHTTP)
}
