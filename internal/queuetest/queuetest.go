// Package queuetest is the shared test suite every pathstats.Queue backend
// runs (embedded and external JetStream, …).
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// fetchWait is how long one fetch of the suite waits for messages.
const fetchWait = 3 * time.Second

// patience bounds every wait for something that must happen (messages
// expected, a pending count reached): a bound on a hang, generous for a
// busy machine, never a speed.
const patience = time.Minute

// Run runs the suite. open must return a fresh, empty queue private to the
// calling (sub)test and arrange its cleanup with t.Cleanup.
func Run(t *testing.T, name string, open func(t *testing.T) pathstats.Queue) {
	t.Helper()
	t.Logf("queue backend: %s", name)
	cases := []struct {
		name string
		fn   func(t *testing.T, q pathstats.Queue)
	}{
		{"PublishFetchAckInOrder", testPublishFetchAck},
		{"DuplicateIDStoredOnce", testDuplicate},
		{"NakRedelivers", testNak},
		{"TermDrops", testTerm},
		{"FetchEmptyWaits", testFetchEmpty},
		{"FetchReturnsWithoutFillingMax", testFetchPartial},
		{"FetchCancelled", testFetchCancelled},
		{"PendingCounts", testPending},
		{"Ping", testPing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, open(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func publish(t *testing.T, q pathstats.Queue, id, data string) {
	t.Helper()
	if err := q.Publish(ctxT(t), id, []byte(data)); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
}

// fetchN fetches until n messages arrived, in batches of at most max.
func fetchN(t *testing.T, q pathstats.Queue, n, max int) []pathstats.Message {
	t.Helper()
	var got []pathstats.Message
	deadline := time.Now().Add(patience)
	for len(got) < n && time.Now().Before(deadline) {
		msgs, err := q.Fetch(ctxT(t), max, fetchWait)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if len(msgs) > max {
			t.Fatalf("fetch returned %d messages, max %d", len(msgs), max)
		}
		got = append(got, msgs...)
	}
	if len(got) != n {
		t.Fatalf("fetched %d messages, want %d", len(got), n)
	}
	return got
}

func fetchOne(t *testing.T, q pathstats.Queue) pathstats.Message {
	t.Helper()
	return fetchN(t, q, 1, 1)[0]
}

func expectEmpty(t *testing.T, q pathstats.Queue, wait time.Duration) {
	t.Helper()
	msgs, err := q.Fetch(ctxT(t), 10, wait)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("fetch returned %d messages (first %q), want none", len(msgs), msgs[0].ID())
	}
}

func pending(t *testing.T, q pathstats.Queue) int64 {
	t.Helper()
	n, err := q.Pending(ctxT(t))
	if err != nil {
		t.Fatalf("pending: %v", err)
	}
	return n
}

// expectPending polls Pending until it is want (backends may apply acks
// asynchronously) and fails after patience.
func expectPending(t *testing.T, q pathstats.Queue, want int64) {
	t.Helper()
	var got int64
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = pending(t, q); got == want {
			return
		}
	}
	t.Fatalf("pending = %d, want %d", got, want)
}

func ack(t *testing.T, m pathstats.Message) {
	t.Helper()
	if err := m.Ack(); err != nil {
		t.Fatalf("ack %s: %v", m.ID(), err)
	}
}

func testPublishFetchAck(t *testing.T, q pathstats.Queue) {
	const n = 25
	for i := range n {
		publish(t, q, fmt.Sprintf("batch-%03d", i), fmt.Sprintf("payload %d", i))
	}
	expectPending(t, q, n)
	got := fetchN(t, q, n, 10)
	for i, m := range got {
		wantID, wantData := fmt.Sprintf("batch-%03d", i), fmt.Sprintf("payload %d", i)
		if m.ID() != wantID || string(m.Data()) != wantData {
			t.Fatalf("message %d = (%q, %q), want (%q, %q)", i, m.ID(), m.Data(), wantID, wantData)
		}
	}
	expectPending(t, q, n) // delivered but not acknowledged
	for _, m := range got {
		ack(t, m)
	}
	expectPending(t, q, 0)
	expectEmpty(t, q, 200*time.Millisecond)
}

func testDuplicate(t *testing.T, q pathstats.Queue) {
	publish(t, q, "dup-1", "first")
	publish(t, q, "dup-1", "second") // a duplicate is acknowledged, not stored
	publish(t, q, "dup-2", "other")
	expectPending(t, q, 2)
	got := fetchN(t, q, 2, 10)
	if got[0].ID() != "dup-1" || string(got[0].Data()) != "first" || got[1].ID() != "dup-2" {
		t.Fatalf("got (%q, %q), (%q), want (dup-1, first), (dup-2)", got[0].ID(), got[0].Data(), got[1].ID())
	}
	ack(t, got[0])
	ack(t, got[1])
	expectEmpty(t, q, 200*time.Millisecond)
}

func testNak(t *testing.T, q pathstats.Queue) {
	publish(t, q, "nak-1", "retry me")
	m := fetchOne(t, q)
	if err := m.Nak(); err != nil {
		t.Fatalf("nak: %v", err)
	}
	again := fetchOne(t, q)
	if again.ID() != "nak-1" || string(again.Data()) != "retry me" {
		t.Fatalf("redelivered (%q, %q), want (nak-1, retry me)", again.ID(), again.Data())
	}
	ack(t, again)
	expectPending(t, q, 0)
}

func testTerm(t *testing.T, q pathstats.Queue) {
	publish(t, q, "term-1", "poison")
	publish(t, q, "term-2", "fine")
	got := fetchN(t, q, 2, 10)
	if err := got[0].Term(); err != nil {
		t.Fatalf("term: %v", err)
	}
	ack(t, got[1])
	expectPending(t, q, 0)
	expectEmpty(t, q, 300*time.Millisecond)
}

func testFetchEmpty(t *testing.T, q pathstats.Queue) {
	const wait = 400 * time.Millisecond
	start := time.Now()
	msgs, err := q.Fetch(ctxT(t), 10, wait)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("fetch returned %d messages from an empty queue", len(msgs))
	}
	if elapsed < wait/2 || elapsed > wait+10*time.Second { // room for a busy machine
		t.Fatalf("empty fetch took %s, want about %s", elapsed, wait)
	}
	msgs, err = q.Fetch(ctxT(t), 10, 0)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("fetch without wait = %d messages, %v; want none", len(msgs), err)
	}
}

func testFetchPartial(t *testing.T, q pathstats.Queue) {
	for i := range 3 {
		publish(t, q, fmt.Sprintf("p-%d", i), "x")
	}
	// A fetch that waited to fill max would take the whole minute; half
	// of it leaves room for a busy machine.
	start := time.Now()
	msgs, err := q.Fetch(ctxT(t), 100, patience)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if elapsed := time.Since(start); elapsed > patience/2 {
		t.Fatalf("fetch of 3 available messages with max 100 took %s", elapsed)
	}
	if len(msgs) != 3 {
		t.Fatalf("fetched %d messages, want 3", len(msgs))
	}
	for _, m := range msgs {
		ack(t, m)
	}
	// A message published while Fetch waits is returned at once.
	done := make(chan []pathstats.Message, 1)
	ctx := ctxT(t)
	go func() {
		msgs, _ := q.Fetch(ctx, 100, patience)
		done <- msgs
	}()
	time.Sleep(200 * time.Millisecond)
	publish(t, q, "late", "y")
	select {
	case msgs := <-done:
		if len(msgs) != 1 || msgs[0].ID() != "late" {
			t.Fatalf("waiting fetch got %d messages, want [late]", len(msgs))
		}
		ack(t, msgs[0])
	case <-time.After(patience / 2):
		t.Fatal("waiting fetch did not return after a publish")
	}
}

func testFetchCancelled(t *testing.T, q pathstats.Queue) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(150*time.Millisecond, cancel)
	start := time.Now()
	msgs, err := q.Fetch(ctx, 10, patience)
	elapsed := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fetch = %d messages, %v; want context.Canceled", len(msgs), err)
	}
	if elapsed > patience/2 { // not the whole wait: the cancel ended it
		t.Fatalf("cancelled fetch returned after %s", elapsed)
	}
}

func testPending(t *testing.T, q pathstats.Queue) {
	if n := pending(t, q); n != 0 {
		t.Fatalf("pending of a new queue = %d", n)
	}
	for i := range 5 {
		publish(t, q, fmt.Sprintf("pend-%d", i), "z")
	}
	expectPending(t, q, 5)
	got := fetchN(t, q, 2, 2)
	expectPending(t, q, 5)
	ack(t, got[0])
	ack(t, got[1])
	expectPending(t, q, 3)
	rest := fetchN(t, q, 3, 10)
	for _, m := range rest {
		ack(t, m)
	}
	expectPending(t, q, 0)
}

func testPing(t *testing.T, q pathstats.Queue) {
	if err := q.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
}
