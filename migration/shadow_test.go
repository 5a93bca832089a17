package migration

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// TestShadowComparesWhenEnabled: with enableComparison on, every answer is
// compared with the other source in the background; off, nothing is.
func TestShadowComparesWhenEnabled(t *testing.T) {
	newSrc, oldSrc := &fixedSource{source: "kv-snapshot"}, &fixedSource{source: "do-legacy"}
	sh := NewShadow(ShadowOptions{MaxInFlight: 64, Logger: slog.New(slog.DiscardHandler)})
	cfg := pathstats.MigrationConfig{NewAPIPercentage: 50, EnableComparison: true, Version: 1}
	rt := NewRouter(RouterOptions{Config: func() pathstats.MigrationConfig { return cfg }, New: newSrc, Old: oldSrc, Shadow: sh})
	for i := 0; i < 40; i++ {
		req := httptest.NewRequest("GET", "/api/admin/paths?q=x", nil)
		req.RemoteAddr = fmt.Sprintf("10.0.0.%d:1234", i+1)
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	}
	waitUntil(t, func() bool { return sh.Compared.Load() == 40 })
	if sh.Mismatched.Load() != 40 { // the fixed sources name different paths
		t.Fatalf("mismatched %d, want 40", sh.Mismatched.Load())
	}
	if newSrc.calls.Load()+oldSrc.calls.Load() != 80 {
		t.Fatalf("calls new %d old %d", newSrc.calls.Load(), oldSrc.calls.Load())
	}
	cfg.EnableComparison = false
	before := sh.Compared.Load()
	req := httptest.NewRequest("GET", "/api/admin/paths", nil)
	rt.ServeHTTP(httptest.NewRecorder(), req)
	time.Sleep(50 * time.Millisecond)
	if sh.Compared.Load() != before {
		t.Fatal("compared with enableComparison off")
	}
}

func TestShadowAgreeingSources(t *testing.T) {
	a, b := &fixedSource{source: "same"}, &fixedSource{source: "same"}
	sh := NewShadow(ShadowOptions{Logger: slog.New(slog.DiscardHandler)})
	cfg := pathstats.MigrationConfig{NewAPIPercentage: 100, EnableComparison: true, Version: 1}
	rt := NewRouter(RouterOptions{Config: func() pathstats.MigrationConfig { return cfg }, New: a, Old: b, Shadow: sh})
	rt.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/admin/paths", nil))
	waitUntil(t, func() bool { return sh.Compared.Load() == 1 })
	if sh.Mismatched.Load() != 0 {
		t.Fatal("agreeing pages counted as a mismatch")
	}
}

func waitUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 1m")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// viewSource is a ViewSource answering from a generation set by the test;
// its pages name the generation in the request counts.
type viewSource struct {
	gen            atomic.Uint64
	views, pages   atomic.Int64
	pathsCalls     atomic.Int64
	fail, notReady atomic.Bool
	block          chan struct{} // when set, ShadowView waits for block
}

func (v *viewSource) Paths(context.Context, pathstats.PathQuery) (api.PathsResult, error) {
	v.pathsCalls.Add(1)
	return api.PathsResult{}, pathstats.Errorf(pathstats.EUnavailable, "the fan-out must not run")
}

func (v *viewSource) ShadowView(ctx context.Context, _ time.Duration) (uint64, func(pathstats.PathQuery) api.PathsResult, error) {
	if v.block != nil {
		<-v.block
	}
	v.views.Add(1)
	if v.fail.Load() {
		return 0, nil, pathstats.Errorf(pathstats.EUnavailable, "injected fault")
	}
	if v.notReady.Load() {
		return 0, nil, nil
	}
	gen := v.gen.Load()
	return gen, func(q pathstats.PathQuery) api.PathsResult {
		v.pages.Add(1)
		return api.PathsResult{Items: []api.PathItemJSON{{Path: "/x", RequestCount: int64(100 * gen)}}, Total: 1}
	}, nil
}

// served is a snapshot answer of version ver with /x counted n times.
func served(ver uint64, n int64) api.PathsResult {
	return api.PathsResult{
		Items: []api.PathItemJSON{{Path: "/x", RequestCount: n}}, Total: 1,
		Meta: api.PathsMeta{DataSource: api.SourceSnapshot, Version: &ver},
	}
}

// afterAndWait runs one comparison and waits for it to be counted.
func afterAndWait(t *testing.T, sh *Shadow, q pathstats.PathQuery, got api.PathsResult, other api.PathsSource) {
	t.Helper()
	done := sh.Compared.Load() + sh.Failed.Load() + sh.Skipped.Load() + 1
	sh.After(q, got, other)
	waitUntil(t, func() bool { return sh.Compared.Load()+sh.Failed.Load()+sh.Skipped.Load() == done })
}

// TestShadowReusesVerdicts: a repeated query on the same snapshot version
// and view generation reuses the verdict (still counted, with its result);
// a new query, version or generation is compared afresh; the other
// source's fan-out (Paths) is never called.
func TestShadowReusesVerdicts(t *testing.T) {
	src := &viewSource{}
	src.gen.Store(1)
	sh := NewShadow(ShadowOptions{Logger: slog.New(slog.DiscardHandler)})
	q1, q2 := pathstats.PathQuery{Page: 1, Limit: 50}, pathstats.PathQuery{Q: "x", Page: 1, Limit: 50}
	steps := []struct {
		q                       pathstats.PathQuery
		got                     api.PathsResult
		gen                     uint64
		pages, reused, mismatch int64
	}{
		{q1, served(7, 100), 1, 1, 0, 0}, // fresh: match
		{q1, served(7, 100), 1, 1, 1, 0}, // reused match
		{q1, served(7, 100), 1, 1, 2, 0}, // reused match
		{q2, served(7, 100), 1, 2, 2, 0}, // new query
		{q1, served(8, 100), 1, 2, 2, 0}, // new snapshot version: judged again, the derived page reused
		{q1, served(8, 100), 2, 3, 2, 1}, // new view generation: 200 vs 100, a mismatch
		{q1, served(8, 100), 2, 3, 3, 2}, // reused mismatch, counted again
	}
	for i, st := range steps {
		src.gen.Store(st.gen)
		afterAndWait(t, sh, st.q, st.got, src)
		if src.pages.Load() != st.pages || sh.Reused.Load() != st.reused || sh.Mismatched.Load() != st.mismatch {
			t.Fatalf("step %d: pages %d reused %d mismatched %d, want %d %d %d",
				i, src.pages.Load(), sh.Reused.Load(), sh.Mismatched.Load(), st.pages, st.reused, st.mismatch)
		}
	}
	if sh.Compared.Load() != int64(len(steps)) || sh.Matched.Load() != 5 || src.pathsCalls.Load() != 0 || sh.Failed.Load() != 0 {
		t.Fatalf("compared %d, matched %d, fan-outs %d, failed %d", sh.Compared.Load(), sh.Matched.Load(), src.pathsCalls.Load(), sh.Failed.Load())
	}
}

// TestShadowUnversionedNotReused: an answer without a snapshot version (the
// SQL fallback) is judged every time (against the page derived once from
// the view generation); a failing view counts as failed, no view yet as
// skipped.
func TestShadowUnversionedNotReused(t *testing.T) {
	src := &viewSource{}
	src.gen.Store(1)
	sh := NewShadow(ShadowOptions{Logger: slog.New(slog.DiscardHandler)})
	got := served(1, 100)
	got.Meta.Version, got.Meta.DataSource = nil, api.SourceSQL
	q := pathstats.PathQuery{Page: 1, Limit: 50}
	for range 3 {
		afterAndWait(t, sh, q, got, src)
	}
	if src.pages.Load() != 1 || sh.Reused.Load() != 0 || sh.Compared.Load() != 3 || sh.Mismatched.Load() != 0 {
		t.Fatalf("pages %d reused %d compared %d mismatched %d", src.pages.Load(), sh.Reused.Load(), sh.Compared.Load(), sh.Mismatched.Load())
	}
	src.notReady.Store(true) // no view yet: skipped
	afterAndWait(t, sh, q, served(1, 100), src)
	src.notReady.Store(false)
	src.fail.Store(true)
	afterAndWait(t, sh, q, served(1, 100), src)
	if sh.Failed.Load() != 1 || sh.Skipped.Load() != 1 || sh.Compared.Load() != 3 {
		t.Fatalf("failed %d skipped %d compared %d", sh.Failed.Load(), sh.Skipped.Load(), sh.Compared.Load())
	}
}

// TestShadowMemoBounded: the memo never holds more than MemoSize verdicts.
func TestShadowMemoBounded(t *testing.T) {
	src := &viewSource{}
	src.gen.Store(1)
	sh := NewShadow(ShadowOptions{MemoSize: 3, Logger: slog.New(slog.DiscardHandler)})
	for i := range 10 {
		afterAndWait(t, sh, pathstats.PathQuery{Page: i + 1, Limit: 50}, served(1, 100), src)
		sh.memoMu.Lock()
		n := len(sh.memo)
		sh.memoMu.Unlock()
		if n > 3 || n == 0 {
			t.Fatalf("memo holds %d verdicts after %d comparisons", n, i+1)
		}
	}
}

// TestShadowOffRequestGoroutine: the answers are written while the shadow
// read is still blocked; samples beyond the workers and the queue are
// skipped, the rest compared once the other side answers.
func TestShadowOffRequestGoroutine(t *testing.T) {
	oldSrc := &viewSource{block: make(chan struct{})}
	oldSrc.gen.Store(1)
	newSrc := &fixedSource{source: api.SourceSnapshot}
	sh := NewShadow(ShadowOptions{MaxInFlight: 2, QueueSize: 2, Logger: slog.New(slog.DiscardHandler)})
	cfg := pathstats.MigrationConfig{NewAPIPercentage: 100, EnableComparison: true, Version: 1}
	rt := NewRouter(RouterOptions{Config: func() pathstats.MigrationConfig { return cfg }, New: newSrc, Old: oldSrc, Shadow: sh})
	for range 5 {
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, httptest.NewRequest("GET", "/api/admin/paths", nil))
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	}
	// At most 2 workers hold a sample and 2 wait: at least 1 of 5 skipped.
	if sk := sh.Skipped.Load(); sk < 1 || sk > 3 || sh.Compared.Load() != 0 {
		t.Fatalf("skipped %d compared %d while blocked", sk, sh.Compared.Load())
	}
	close(oldSrc.block)
	waitUntil(t, func() bool { return sh.Compared.Load()+sh.Skipped.Load() == 5 })
}

func TestPageDiff(t *testing.T) {
	page := func(total int, items ...any) api.PathsResult {
		r := api.PathsResult{Total: total}
		for i := 0; i < len(items); i += 3 {
			r.Items = append(r.Items, api.PathItemJSON{Path: items[i].(string), RequestCount: int64(items[i+1].(int)), ErrorCount: int64(items[i+2].(int))})
		}
		return r
	}
	base := page(1000, "/a", 1000, 10, "/b", 500, 0)
	cases := []struct {
		name      string
		other     api.PathsResult
		tol       float64
		why       string
		tolerated bool
	}{
		{"equal", page(1000, "/a", 1000, 10, "/b", 500, 0), 0.01, "", false},
		{"counts within", page(1000, "/a", 1010, 10, "/b", 500, 0), 0.01, "", true},
		{"counts beyond", page(1000, "/a", 1011, 10, "/b", 500, 0), 0.01, "counts", false},
		{"errors beyond", page(1000, "/a", 1000, 11, "/b", 500, 0), 0.01, "counts", false},
		{"total within", page(1009, "/a", 1000, 10, "/b", 500, 0), 0.01, "", true},
		{"total beyond", page(1020, "/a", 1000, 10, "/b", 500, 0), 0.01, "total", false},
		{"order", page(1000, "/b", 500, 0, "/a", 1000, 10), 0.01, "order", false},
		{"length", page(1000, "/a", 1000, 10), 0.01, "length", false},
		{"exact tolerance", page(1000, "/a", 1001, 10, "/b", 500, 0), -1, "counts", false},
	}
	for _, c := range cases {
		v := pageDiff(base, c.other, c.tol)
		if v.why != c.why || v.tolerated != c.tolerated {
			t.Errorf("%s: %+v, want why %q tolerated %v", c.name, v, c.why, c.tolerated)
		}
	}
}

// BenchmarkShadowSample is the CPU one shadow sample costs at 100 %
// sampling once the verdict is remembered (the common case: same query,
// snapshot version and legacy view): After's scheduling, the view lookup
// and the memo hit, goroutine included.
func BenchmarkShadowSample(b *testing.B) {
	src := &viewSource{}
	src.gen.Store(1)
	sh := NewShadow(ShadowOptions{MaxInFlight: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	q, got := pathstats.PathQuery{Page: 1, Limit: 50}, served(1, 100)
	sh.After(q, got, src)
	waitUntil(b, func() bool { return sh.Compared.Load() == 1 })
	b.ReportAllocs()
	for b.Loop() {
		sh.After(q, got, src)
	}
	n := int64(b.N) + 1
	waitUntil(b, func() bool { return sh.Compared.Load() == n })
	if sh.Reused.Load() != n-1 || src.pages.Load() != 1 {
		b.Fatalf("reused %d pages %d", sh.Reused.Load(), src.pages.Load())
	}
}
