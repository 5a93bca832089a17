package readpath

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/pathstats/pathstats/nats"
	"github.com/pathstats/pathstats/snapshot"
)

var quiet = slog.New(slog.DiscardHandler)

func newService(t *testing.T) (*Service, *nats.KV) {
	t.Helper()
	kv := testutil.MustOpenKV(t, testutil.MustStartNATS(t, 0), "pathstats")
	st := testutil.MustOpenSQLite(t)
	s := New(Options{KV: kv, Loader: snapshot.NewReader(kv, snapshot.ReaderOptions{}), SQL: st,
		Configs: NewConfigCache(st, time.Second), Logger: quiet})
	return s, kv
}

// TestBothSourcesFailGive503: no snapshot and a SQL store that fails →
// UNAVAILABLE, never an internal error.
func TestBothSourcesFailGive503(t *testing.T) {
	s, _ := newService(t)
	st := s.opts.SQL.(interface{ Close() error })
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Paths(context.Background(), pathstats.PathQuery{Page: 1, Limit: 10})
	if pathstats.ErrorCode(err) != pathstats.EUnavailable {
		t.Fatalf("got %v, want UNAVAILABLE", err)
	}
	if s.Stats().Unavailable.Load() != 1 {
		t.Fatal("not counted")
	}
}

// TestNoSnapshotFallsBackWithReason: without a config the SQL answers and
// says why.
func TestNoSnapshotFallsBackWithReason(t *testing.T) {
	s, _ := newService(t)
	if err := s.Reload(testutil.Context(t)); err == nil {
		t.Fatal("reload without a snapshot succeeded")
	}
	res, err := s.Paths(context.Background(), pathstats.PathQuery{Page: 1, Limit: 10})
	if err != nil || res.Meta.DataSource != "d1-fallback" || res.Meta.Reason != "snapshot config missing" {
		t.Fatalf("%+v %v", res.Meta, err)
	}
}

// TestStaleAsksOnce: many answers from one stale version ask for one
// refresh; a new version may ask again.
func TestStaleAsksOnce(t *testing.T) {
	s, _ := newService(t)
	asked := 0
	s.opts.Refresh = func() { asked++ }
	s.opts.MaxAge = time.Second
	old := snapshot.NewView(snapshot.Config{Version: 3, Timestamp: time.Now().Add(-time.Hour)}, nil)
	s.state.Store(&state{view: old})
	for i := 0; i < 50; i++ {
		res, err := s.Paths(context.Background(), pathstats.PathQuery{Page: 1, Limit: 10})
		if err != nil || !res.Meta.Stale || *res.Meta.Version != 3 {
			t.Fatalf("%+v %v", res.Meta, err)
		}
	}
	if asked != 1 {
		t.Fatalf("asked %d times", asked)
	}
	s.state.Store(&state{view: snapshot.NewView(snapshot.Config{Version: 4, Timestamp: time.Now().Add(-time.Hour)}, nil)})
	_, _ = s.Paths(context.Background(), pathstats.PathQuery{Page: 1, Limit: 10})
	if asked != 2 {
		t.Fatalf("asked %d times after a new stale version", asked)
	}
}
