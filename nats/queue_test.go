package nats

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func fetchAll(t *testing.T, q *Queue, n int) []pathstats.Message {
	t.Helper()
	var got []pathstats.Message
	for deadline := time.Now().Add(time.Minute); len(got) < n && time.Now().Before(deadline); {
		msgs, err := q.Fetch(testCtx(t), n-len(got), time.Second)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		got = append(got, msgs...)
	}
	if len(got) != n {
		t.Fatalf("fetched %d messages, want %d", len(got), n)
	}
	return got
}

func expectNone(t *testing.T, q *Queue, wait time.Duration) {
	t.Helper()
	msgs, err := q.Fetch(testCtx(t), 10, wait)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("fetched %d messages (first %q), want none", len(msgs), msgs[0].ID())
	}
}

func TestOpenTwiceSameStream(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	cfg := testConfig(t)
	q1 := openQueue(t, connect(t, s), cfg)
	q2, err := Open(testCtx(t), connect(t, s), cfg)
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	defer q2.Close()
	publishT(t, q1, "b1", "one")
	got := fetchAll(t, q2, 1)
	if got[0].ID() != "b1" || string(got[0].Data()) != "one" {
		t.Fatalf("got (%q, %q), want (b1, one)", got[0].ID(), got[0].Data())
	}
	if err := got[0].Ack(); err != nil {
		t.Fatalf("ack: %v", err)
	}
	// Reopening with changed limits updates the stream and consumer.
	cfg.AckWait = 7 * time.Second
	q3, err := Open(testCtx(t), connect(t, s), cfg)
	if err != nil {
		t.Fatalf("reopen with new ack wait: %v", err)
	}
	defer q3.Close()
	info, err := q3.cons.Info(testCtx(t))
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	if info.Config.AckWait != 7*time.Second {
		t.Fatalf("ack wait = %s after update, want 7s", info.Config.AckWait)
	}
}

func TestOpenConcurrent(t *testing.T) {
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	cfg := testConfig(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			q, err := Open(testCtx(t), connect(t, s), cfg)
			if err == nil {
				q.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}
}

func TestMessagesSurviveRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(t)
	s := startServer(t, EmbeddedOptions{StoreDir: dir})
	nc := connect(t, s)
	q, err := Open(testCtx(t), nc, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	for i := range 3 {
		publishT(t, q, fmt.Sprintf("r%d", i), fmt.Sprintf("data %d", i))
	}
	q.Close()
	nc.Close()
	s.Shutdown()

	s2 := startServer(t, EmbeddedOptions{StoreDir: dir})
	q2 := openQueue(t, connect(t, s2), cfg)
	if n, err := q2.Pending(testCtx(t)); err != nil || n != 3 {
		t.Fatalf("pending after restart = %d, %v; want 3", n, err)
	}
	for i, m := range fetchAll(t, q2, 3) {
		if m.ID() != fmt.Sprintf("r%d", i) || string(m.Data()) != fmt.Sprintf("data %d", i) {
			t.Fatalf("message %d = (%q, %q)", i, m.ID(), m.Data())
		}
		if err := m.Ack(); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
}

func TestDuplicatePublishStoresOne(t *testing.T) {
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	q := openQueue(t, connect(t, s), testConfig(t))
	publishT(t, q, "same", "a")
	publishT(t, q, "same", "b")
	st, err := q.js.Stream(testCtx(t), q.cfg.Stream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(testCtx(t))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
}

func TestRedeliveryAfterAckWait(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	cfg := testConfig(t)
	cfg.AckWait = 300 * time.Millisecond
	q := openQueue(t, connect(t, s), cfg)
	publishT(t, q, "slow", "payload")
	publishT(t, q, "bad", "poison")

	first := fetchAll(t, q, 2)
	if err := first[1].Term(); err != nil { // "bad" never comes back
		t.Fatalf("term: %v", err)
	}
	// "slow" is neither acked nor nak'd: it comes back after AckWait.
	start := time.Now()
	again := fetchAll(t, q, 1)
	if again[0].ID() != "slow" || string(again[0].Data()) != "payload" {
		t.Fatalf("redelivered (%q, %q), want (slow, payload)", again[0].ID(), again[0].Data())
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("redelivery took %s with ack wait %s", d, cfg.AckWait)
	}
	if err := again[0].Ack(); err != nil {
		t.Fatalf("ack: %v", err)
	}
	expectNone(t, q, 3*cfg.AckWait)
	if n, err := q.Pending(testCtx(t)); err != nil || n != 0 {
		t.Fatalf("pending = %d, %v; want 0", n, err)
	}
}

func TestNakDelay(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	cfg := testConfig(t)
	cfg.NakDelay = 500 * time.Millisecond
	q := openQueue(t, connect(t, s), cfg)
	publishT(t, q, "later", "x")
	m := fetchAll(t, q, 1)[0]
	if err := m.Nak(); err != nil {
		t.Fatalf("nak: %v", err)
	}
	expectNone(t, q, 200*time.Millisecond)
	if again := fetchAll(t, q, 1); again[0].ID() != "later" {
		t.Fatalf("redelivered %q, want later", again[0].ID())
	}
}

func TestPublishEmptyIDRejected(t *testing.T) {
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	q := openQueue(t, connect(t, s), testConfig(t))
	if err := q.Publish(testCtx(t), "", []byte("x")); err == nil {
		t.Fatal("publish with an empty id succeeded")
	}
}

func TestStreamFullIsUnavailable(t *testing.T) {
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	cfg := testConfig(t)
	cfg.MaxBytes = 1024
	q := openQueue(t, connect(t, s), cfg)
	big := make([]byte, 600)
	publishT(t, q, "fits", string(big))
	err := q.Publish(testCtx(t), "overflow", big)
	if !errors.Is(err, pathstats.ErrUnavailable) {
		t.Fatalf("publish into a full stream = %v, want ErrUnavailable", err)
	}
	if got := fetchAll(t, q, 1); got[0].ID() != "fits" {
		t.Fatalf("stored message %q, want fits (discard new keeps old)", got[0].ID())
	}
}

func expectUnavailable(t *testing.T, what string, timeout time.Duration, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	t.Logf("%s took %s: %v", what, time.Since(start), err)
	if !errors.Is(err, pathstats.ErrUnavailable) {
		t.Fatalf("%s with the server down = %v, want ErrUnavailable", what, err)
	}
	// The slack covers a busy machine's scheduling delay, and stays below
	// nats.go's 5 s default request timeout that an op ignoring ctx would hit.
	if d := time.Since(start); d > timeout+2*time.Second {
		t.Fatalf("%s with the server down took %s (ctx timeout %s)", what, d, timeout)
	}
}

func TestServerDownInProcess(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	q := openQueue(t, connect(t, s), testConfig(t))
	publishT(t, q, "before", "x")
	s.Shutdown()
	checkDown(t, q)
}

func TestServerDownTCP(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	q, err := OpenURL(testCtx(t), s.ClientURL(), testConfig(t))
	if err != nil {
		t.Fatalf("open url: %v", err)
	}
	defer q.Close()
	publishT(t, q, "before", "x")
	s.Shutdown()
	checkDown(t, q)
}

func checkDown(t *testing.T, q *Queue) {
	t.Helper()
	expectUnavailable(t, "publish", time.Second, func(ctx context.Context) error {
		return q.Publish(ctx, "after", []byte("y"))
	})
	expectUnavailable(t, "ping", 2*time.Second, q.Ping)
	expectUnavailable(t, "pending", 2*time.Second, func(ctx context.Context) error {
		_, err := q.Pending(ctx)
		return err
	})
}

func TestOpenURLUnreachable(t *testing.T) {
	expectUnavailable(t, "open", 3*time.Second, func(ctx context.Context) error {
		q, err := OpenURL(ctx, "nats://127.0.0.1:1", testConfig(t))
		if err == nil {
			q.Close()
		}
		return err
	})
}

func TestStartEmbeddedErrors(t *testing.T) {
	if _, err := StartEmbedded(testCtx(t), EmbeddedOptions{}); err == nil {
		t.Fatal("start without a store dir succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if s, err := StartEmbedded(ctx, EmbeddedOptions{StoreDir: file}); err == nil {
		s.Shutdown()
		t.Fatal("start with a regular file as store dir succeeded")
	} else {
		t.Logf("store dir is a file: %v", err)
	}
}

func TestEmbeddedOptions(t *testing.T) {
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir(), SyncAlways: true})
	if !s.ns.JetStreamConfig().SyncAlways {
		t.Fatal("SyncAlways not passed to the server")
	}
	if s.ClientURL() != "" {
		t.Fatalf("client url without listener = %q, want empty", s.ClientURL())
	}
	q := openQueue(t, connect(t, s), testConfig(t))
	publishT(t, q, "strict", "fsynced")
	if got := fetchAll(t, q, 1); string(got[0].Data()) != "fsynced" {
		t.Fatalf("data = %q", got[0].Data())
	}
}
