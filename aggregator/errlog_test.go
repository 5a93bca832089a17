package aggregator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/pathstats/pathstats/nats"
)

// failingStore is a real store whose Apply fails (the database down).
type failingStore struct {
	pathstats.StatsStore
}

func (failingStore) Apply(context.Context, []*pathstats.Batch, []pathstats.DeadLetter) (pathstats.ApplyResult, error) {
	return pathstats.ApplyResult{}, errors.New("injected: database is locked")
}

// TestApplyErrorLogged: a failed transaction, counted in
// errors_total{op="apply"}, is logged with its error, once per interval
// however often it repeats.
func TestApplyErrorLogged(t *testing.T) {
	srv := testutil.MustStartNATS(t, 0)
	q := testutil.MustOpenQueue(t, srv, nats.QueueConfig{})
	publish(t, q, batch("b1", "/x", 1))
	log, buf := testutil.NewLogger()
	a := New(Config{Logger: log}, q, failingStore{testutil.MustOpenSQLite(t)}, nil)
	ctx := testutil.Context(t)
	for range 3 {
		if err := a.Step(ctx); err == nil {
			t.Fatal("step succeeded on a failing store")
		}
	}
	if n := testutilCounter(a.m.errors.WithLabelValues("apply")); n != 3 {
		t.Fatalf("apply errors = %v, want 3", n)
	}
	lines := buf.Lines(`msg="aggregator operation failed"`)
	if len(lines) != 1 || !strings.Contains(lines[0], "op=apply") ||
		!strings.Contains(lines[0], `err="injected: database is locked"`) || !strings.Contains(lines[0], "level=WARN") {
		t.Fatalf("want one apply warning with the error; log:\n%s", buf.String())
	}
}

// TestFetchErrorLogged: a failed fetch (queue server gone), counted in
// errors_total{op="fetch"}, is logged with its error.
func TestFetchErrorLogged(t *testing.T) {
	srv := testutil.MustStartNATS(t, 0)
	q := testutil.MustOpenQueue(t, srv, nats.QueueConfig{})
	log, buf := testutil.NewLogger()
	a := New(Config{Logger: log}, q, testutil.MustOpenSQLite(t), nil)
	srv.Shutdown()
	err := a.Step(testutil.Context(t))
	if err == nil {
		t.Fatal("step succeeded with the queue server gone")
	}
	if n := testutilCounter(a.m.errors.WithLabelValues("fetch")); n != 1 {
		t.Fatalf("fetch errors = %v, want 1", n)
	}
	lines := buf.Lines(`msg="aggregator operation failed"`, "op=fetch")
	if len(lines) != 1 || !strings.Contains(lines[0], err.Error()) {
		t.Fatalf("want one fetch warning with %q; log:\n%s", err, buf.String())
	}
}

// TestDeadLettersLogRateLimited: a burst of undecodable messages is logged
// once (then held back and counted), while every one is counted.
func TestDeadLettersLogRateLimited(t *testing.T) {
	srv := testutil.MustStartNATS(t, 0)
	q := testutil.MustOpenQueue(t, srv, nats.QueueConfig{})
	ctx := testutil.Context(t)
	for i := range 5 {
		if err := q.Publish(ctx, fmt.Sprintf("bad%d", i), []byte("not json")); err != nil {
			t.Fatal(err)
		}
	}
	log, buf := testutil.NewLogger()
	a := New(Config{Logger: log}, q, testutil.MustOpenSQLite(t), nil)
	drain(t, a, q)
	if n := testutilCounter(a.m.dead); n != 5 {
		t.Fatalf("dead lettered = %v, want 5", n)
	}
	if lines := buf.Lines(`msg="dead-lettered undecodable message"`, "reason="); len(lines) != 1 {
		t.Fatalf("%d dead-letter lines, want 1; log:\n%s", len(lines), buf.String())
	}
}
