package aggregator

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/pathstats/pathstats/nats"
)

var quiet = slog.New(slog.DiscardHandler)

var hour = pathstats.HourBucket(time.Now())

func batch(id string, path string, n int64) *pathstats.Batch {
	d := pathstats.Delta{Key: pathstats.Key{Hour: hour, Path: path, ProxyID: "p"}}
	d.Status[1] = n
	d.Latency[3] = n
	return &pathstats.Batch{ID: id, Deltas: []pathstats.Delta{d}}
}

func publish(t *testing.T, q pathstats.Queue, b *pathstats.Batch) {
	t.Helper()
	data, err := pathstats.EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Publish(testutil.Context(t), b.ID, data); err != nil {
		t.Fatal(err)
	}
}

func total(t *testing.T, st pathstats.StatsStore, path string) int64 {
	t.Helper()
	rows, err := st.PathTotals(testutil.Context(t), 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Path == path {
			return r.Requests
		}
	}
	return 0
}

// drain applies until the queue is empty. A Drain can end before a
// redelivery (after the ack wait) or an acknowledgement reached the server
// on a busy machine, so it drains again until nothing is pending, failing
// after a minute.
func drain(t *testing.T, a *Aggregator, q pathstats.Queue) {
	t.Helper()
	ctx := testutil.Context(t)
	deadline := time.Now().Add(time.Minute)
	for {
		if err := a.Drain(ctx, 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		n, err := q.Pending(ctx)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending after drain: %d %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestManyMessagesOneTransaction(t *testing.T) {
	srv := testutil.MustStartNATS(t, 0)
	q := testutil.MustOpenQueue(t, srv, nats.QueueConfig{})
	st := testutil.MustOpenSQLite(t)
	for i := 0; i < 100; i++ {
		publish(t, q, batch(fmt.Sprintf("b%d", i), "/many", 3))
	}
	a := New(Config{Logger: quiet, MaxMessages: 500}, q, st, nil)
	drain(t, a, q)
	if got := total(t, st, "/many"); got != 300 {
		t.Fatalf("total %d, want 300", got)
	}
}

// TestRedeliveryAfterCommitCountedOnce simulates a crash between the SQL
// commit and the ack: the message comes back and the ledger skips it.
func TestRedeliveryAfterCommitCountedOnce(t *testing.T) {
	srv := testutil.MustStartNATS(t, 0)
	// An ack wait long enough that a slow apply is not redelivered a second
	// time; drain polls until the redelivery came and was acknowledged.
	q := testutil.MustOpenQueue(t, srv, nats.QueueConfig{AckWait: 2 * time.Second})
	st := testutil.MustOpenSQLite(t)
	publish(t, q, batch("once", "/once", 5))
	ctx := testutil.Context(t)
	msgs, err := q.Fetch(ctx, 10, time.Minute) // returns as soon as it has one
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v %d", err, len(msgs))
	}
	b, err := pathstats.DecodeBatch(msgs[0].Data())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, []*pathstats.Batch{b}, nil); err != nil {
		t.Fatal(err)
	}
	// no ack: the "crashed" process never got there
	a := New(Config{Logger: quiet}, q, st, nil)
	drain(t, a, q)
	if got := total(t, st, "/once"); got != 5 {
		t.Fatalf("total %d, want 5", got)
	}
	if d := testutilCounter(a.m.duplicates); d != 1 {
		t.Fatalf("duplicates %v, want 1", d)
	}
}

func TestDeadLetterDoesNotStall(t *testing.T) {
	srv := testutil.MustStartNATS(t, 0)
	q := testutil.MustOpenQueue(t, srv, nats.QueueConfig{})
	st := testutil.MustOpenSQLite(t)
	ctx := testutil.Context(t)
	for i, bad := range []string{"not json", `{"id":""}`, `{"id":"x","deltas":[{"h":5,"p":"/a"}]}`} {
		if err := q.Publish(ctx, fmt.Sprintf("bad%d", i), []byte(bad)); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, q, batch("good", "/good", 2))
	a := New(Config{Logger: quiet}, q, st, nil)
	drain(t, a, q)
	if got := total(t, st, "/good"); got != 2 {
		t.Fatalf("good total %d", got)
	}
	n, err := st.DeadLetters(ctx)
	if err != nil || n != 3 {
		t.Fatalf("dead letters %d %v", n, err)
	}
	// terminated: never redelivered
	msgs, err := q.Fetch(ctx, 10, 200*time.Millisecond)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("redelivered %d %v", len(msgs), err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	srv := testutil.MustStartNATS(t, 0)
	q := testutil.MustOpenQueue(t, srv, nats.QueueConfig{})
	st := testutil.MustOpenSQLite(t)
	a := New(Config{Logger: quiet}, q, st, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	publish(t, q, batch("r1", "/run", 4))
	deadline := time.Now().Add(time.Minute)
	for total(t, st, "/run") != 4 {
		if time.Now().After(deadline) {
			t.Fatal("not applied by Run in 1m")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not stop")
	}
}
