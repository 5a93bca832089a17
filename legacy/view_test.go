package legacy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// viewQueries are many queries over the specialPaths and /gen/NNN traffic.
func viewQueries() []pathstats.PathQuery {
	qs := []pathstats.PathQuery{
		{Page: 1, Limit: 1}, {Page: 1, Limit: 50}, {Page: 2, Limit: 50}, {Page: 7, Limit: 50}, {Page: 100, Limit: 50},
		{Page: 1, Limit: 200}, {Page: 2, Limit: 200}, {Page: 3, Limit: 200}, {Page: 1_000_000, Limit: 200},
		{Q: "%", Page: 1, Limit: 200}, {Q: "_", Page: 1, Limit: 200}, {Q: `\`, Page: 1, Limit: 200},
		{Q: "äpfel", Page: 1, Limit: 200}, {Q: "STRASSE", Page: 1, Limit: 200}, {Q: "STRAßE/Ä", Page: 1, Limit: 200},
		{Q: "école", Page: 1, Limit: 200}, {Q: "users", Page: 1, Limit: 200}, {Q: "/", Page: 3, Limit: 13},
		{Q: "nothing-matches", Page: 1, Limit: 50}, {ProxyID: "p2", Page: 1, Limit: 200}, {ProxyID: "p2", Page: 2, Limit: 30},
		{ProxyID: "nope", Page: 1, Limit: 200}, {ProxyID: "P1", Page: 1, Limit: 200},
		{Q: "GEN/0", ProxyID: "p1", Page: 3, Limit: 7}, {Q: "gen/1", ProxyID: "p2", Page: 1, Limit: 200},
	}
	for i := range 40 {
		qs = append(qs, pathstats.PathQuery{Q: fmt.Sprintf("/%d", i%10), Page: 1 + i%4, Limit: 1 + i*5})
	}
	return qs
}

// TestViewPagesEqualPaths: every page derived from the view equals what
// System.Paths answers for the same query, at the api level too.
func TestViewPagesEqualPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	paths := append([]string{}, specialPaths...)
	for i := range 500 {
		paths = append(paths, fmt.Sprintf("/gen/%03d", i))
	}
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, nil)
	observeAll(s, trafficEvents(t0, paths, rng), 8)
	// Some paths only outside the window: known to the system, in no page.
	observeAll(s, []event{{proxy: "p1", path: "/old/only", status: 200, at: t0.Add(-30 * time.Hour)}}, 1)
	src := s.PathsSource().(*pathsSource)
	gen, page, err := src.ShadowView(testCtx(t), time.Hour)
	if err != nil || gen != 1 {
		t.Fatalf("shadow view: gen %d, %v", gen, err)
	}
	v, _ := src.views.get(testCtx(t), time.Hour)
	if n := len(v.items); n != len(paths) {
		t.Fatalf("view holds %d items, want %d", n, len(paths))
	}
	for _, q := range viewQueries() {
		want, err := s.Paths(testCtx(t), q)
		if err != nil {
			t.Fatalf("paths %+v: %v", q, err)
		}
		if got := v.query(q); !reflect.DeepEqual(got, want) {
			t.Fatalf("view %+v: total %d, %d items; Paths: total %d, %d items", q, got.Total, len(got.Items), want.Total, len(want.Items))
		}
		wantRes, err := src.Paths(testCtx(t), q)
		if err != nil {
			t.Fatalf("source paths %+v: %v", q, err)
		}
		if gotRes := page(q); !reflect.DeepEqual(gotRes, wantRes) {
			t.Fatalf("shadow page %+v differs from the source's answer", q)
		}
	}
}

// TestViewSingleFlight: concurrent callers share one build (the one that
// started it waits, the others get no view yet); a view is rebuilt only
// once it is older than maxAge, in the background, and then reflects new
// data.
func TestViewSingleFlight(t *testing.T) {
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, nil)
	observeAll(s, []event{{"p1", "/a", 200, t0}, {"p1", "/b", 200, t0}, {"p1", "/b", 500, t0}}, 1)
	src := s.PathsSource().(*pathsSource)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[uint64]int{}
	for range 32 {
		wg.Go(func() {
			gen, page, err := src.ShadowView(testCtx(t), time.Hour)
			if err != nil || (gen == 0) != (page == nil) {
				t.Errorf("shadow view: gen %d, page %v, %v", gen, page != nil, err)
			}
			mu.Lock()
			got[gen]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if got[1] == 0 || got[0]+got[1] != 32 || src.views.builds != 1 {
		t.Fatalf("generations %v, %d builds; want generation 1 or not ready, 1 build", got, src.views.builds)
	}
	observeAll(s, []event{{"p2", "/c", 404, t0}, {"p2", "/c", 404, t0}, {"p2", "/c", 404, t0}}, 1)
	q := pathstats.PathQuery{Page: 1, Limit: 50}
	// Within maxAge: the old view, without /c.
	gen, page, err := src.ShadowView(testCtx(t), time.Hour)
	if res := page(q); err != nil || gen != 1 || res.Total != 2 || res.Items[0].Path != "/b" {
		t.Fatalf("cached view: gen %d total %d %v", gen, res.Total, err)
	}
	// Older than maxAge: a rebuild starts; the old view answers until it is
	// done; then the new one has /c first (3 requests, 3 client errors).
	if gen, _, err := src.ShadowView(testCtx(t), 0); err != nil || gen < 1 {
		t.Fatalf("rebuild: gen %d %v", gen, err)
	}
	waitFor(t, "rebuilt view", func() bool {
		gen, page, err = src.ShadowView(testCtx(t), time.Hour)
		return err == nil && gen == 2
	})
	res := page(q)
	if res.Total != 3 || res.Items[0].Path != "/c" || res.Items[0].ClientErrorCount != 3 || src.views.builds != 2 {
		t.Fatalf("rebuilt view: total %d items %+v, %d builds", res.Total, res.Items, src.views.builds)
	}
	if res.Meta.DataSource != api.SourceLegacy || res.Meta.Timestamp != t0.Format(time.RFC3339) {
		t.Fatalf("meta %+v", res.Meta)
	}
}

// TestViewRefusedWhenClosed: a closed system answers no view.
func TestViewRefusedWhenClosed(t *testing.T) {
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, nil)
	src := s.PathsSource().(*pathsSource)
	if _, _, err := src.ShadowView(testCtx(t), time.Hour); err != nil {
		t.Fatalf("shadow view: %v", err)
	}
	mustClose(t, s)
	if _, _, err := src.ShadowView(testCtx(t), time.Hour); pathstats.ErrorCode(err) != pathstats.EUnavailable {
		t.Fatalf("after close: %v", err)
	}
}

// BenchmarkShadowView100k is the legacy view over 100,000 stored instances
// (3 hours each): build is one rebuild (the fan-out, sort and compaction,
// what shadow comparison pays at most once per interval), the others derive
// one page from the built view.
func BenchmarkShadowView100k(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	seedStore(b, dir, n, 3)
	src := benchSys(b, dir).PathsSource().(*pathsSource)
	if _, _, err := src.ShadowView(context.Background(), 0); err != nil { // loads every state
		b.Fatal(err)
	}
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := src.ShadowView(context.Background(), 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	_, page, err := src.ShadowView(context.Background(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		q    pathstats.PathQuery
	}{
		{"page1", pathstats.PathQuery{Page: 1, Limit: 50}},
		{"deep", pathstats.PathQuery{Page: 400, Limit: 200}},
		{"q", pathstats.PathQuery{Q: "RESOURCE-12", Page: 1, Limit: 50}},
		{"proxyId", pathstats.PathQuery{ProxyID: "default", Page: 2, Limit: 50}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if res := page(c.q); res.Total == 0 {
					b.Fatal("empty page")
				}
			}
		})
	}
}
