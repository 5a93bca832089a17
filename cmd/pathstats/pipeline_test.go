package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/pathstats/pathstats/gateway"
	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/pathstats/pathstats/recorder"
)

// TestMillionRandomPathsBounded sends a million distinct random paths through
// the recording middleware into the real pipeline: memory and SQL rows stay
// bounded by the cardinality guard, and every event is still counted.
func TestMillionRandomPathsBounded(t *testing.T) {
	ctx := testutil.Context(t)
	const cap = 10_000
	p, err := openPipeline(ctx, t.TempDir(), recorder.Config{FlushInterval: 100 * time.Millisecond, MaxPathsPerProxy: cap, MaxPaths: cap})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	h := gateway.Middleware(p.rec, "default", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rng := rand.New(rand.NewPCG(7, 9))
	w := httptest.NewRecorder()
	const n = 1_000_000
	start := time.Now()
	for i := 0; i < n; i++ {
		r := httptest.NewRequest("GET", fmt.Sprintf("/scan/w%xq/z", rng.Uint64()), nil)
		h.ServeHTTP(w, r)
	}
	t.Logf("%d requests recorded in %s", n, time.Since(start).Round(time.Millisecond))
	// The loop is CPU-bound: half a minute alone, minutes on a busy machine.
	// Publishing what is left and draining get a context of their own, not
	// what the loop left of the first one (which then ran out in Close:
	// "recorder close: N events not published: context deadline exceeded").
	ctx = testutil.Context(t)
	if err := p.finish(ctx); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 128<<20 {
		t.Errorf("heap grew %d MiB", grown>>20)
	}
	rows, err := p.store.PathTotals(ctx, 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	var events, other int64
	for _, r := range rows {
		events += r.Requests
		if r.Path == recorder.OtherPath {
			other = r.Requests
		}
	}
	if len(rows) != cap+1 {
		t.Errorf("%d rows, want %d paths + /:other", len(rows), cap)
	}
	if events != n || other != n-cap {
		t.Errorf("events %d (want %d), /:other %d (want %d)", events, n, other, n-cap)
	}
}
