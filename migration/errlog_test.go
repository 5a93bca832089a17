package migration

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
)

// TestRouterFailureLogged: answers counted in the canary's errors_total
// are logged with the target and the error, once per interval per target.
func TestRouterFailureLogged(t *testing.T) {
	log, buf := testutil.NewLogger()
	bad, good := &fixedSource{source: "kv-snapshot"}, &fixedSource{source: "legacy"}
	bad.fail.Store(true)
	rt := NewRouter(RouterOptions{Config: func() pathstats.MigrationConfig { return cfgWith(1, 100, nil, nil) },
		New: bad, Old: good, Logger: log})
	for range 3 {
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/admin/paths", nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", rec.Code)
		}
	}
	if n := rt.Stats().NewErrors; n != 3 {
		t.Fatalf("new errors %d, want 3", n)
	}
	lines := buf.Lines(`msg="canary: paths answer failed"`)
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1; log:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{"level=WARN", "target=new", "reason=percentage", "code=UNAVAILABLE", "injected fault"} {
		if !strings.Contains(lines[0], want) {
			t.Fatalf("line lacks %s: %s", want, lines[0])
		}
	}
}

// TestShadowFailureLogged: comparisons counted as failed log why the other
// side could not be read.
func TestShadowFailureLogged(t *testing.T) {
	log, buf := testutil.NewLogger()
	sh := NewShadow(ShadowOptions{Logger: log})
	src := &viewSource{}
	src.fail.Store(true)
	q := pathstats.PathQuery{Q: "users", Page: 1, Limit: 50}
	for range 2 {
		sh.compare(context.Background(), q, served(1, 1), src)
	}
	if n := sh.Failed.Load(); n != 2 {
		t.Fatalf("failed %d, want 2", n)
	}
	lines := buf.Lines(`msg="shadow comparison failed: other source unreadable"`)
	if len(lines) != 1 || !strings.Contains(lines[0], "injected fault") || !strings.Contains(lines[0], "q=users") {
		t.Fatalf("want one line with the error; log:\n%s", buf.String())
	}
}
