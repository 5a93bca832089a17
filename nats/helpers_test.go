package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
)

// envTestNATS names an external NATS server for the tests, e.g.
// nats://127.0.0.1:4222. When set and unreachable, tests fail.
const envTestNATS = "PATHSTATS_TEST_NATS"

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// startServer starts an embedded server on dir and shuts it down at cleanup.
func startServer(t testing.TB, opts EmbeddedOptions) *Server {
	t.Helper()
	s, err := StartEmbedded(testCtx(t), opts)
	if err != nil {
		t.Fatalf("start embedded: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func connect(t testing.TB, s *Server) *natsgo.Conn {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// testConfig names a stream, subject and durable unique to this test so
// runs on a shared external server do not collide. Timings are short.
func testConfig(t testing.TB) QueueConfig {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := strings.ToUpper(hex.EncodeToString(b))
	return QueueConfig{
		Stream:  "PSTEST_" + id,
		Subject: "pstest." + id + ".batches",
		Durable: "pstest-" + strings.ToLower(id),
		AckWait: 5 * time.Second,
	}
}

func openQueue(t testing.TB, nc *natsgo.Conn, cfg QueueConfig) *Queue {
	t.Helper()
	q, err := Open(testCtx(t), nc, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	cleanupQueue(t, q)
	return q
}

// cleanupQueue deletes the queue's stream and closes it at cleanup.
func cleanupQueue(t testing.TB, q *Queue) {
	t.Cleanup(func() {
		// Best effort, only logged: on a cluster that lost a node the
		// delete may never be answered, and the cluster goes anyway.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if q.nc.IsConnected() {
			if err := q.js.DeleteStream(ctx, q.cfg.Stream); err != nil {
				t.Logf("delete stream %s: %v", q.cfg.Stream, err)
			}
		}
		q.Close()
	})
}

func publishT(t testing.TB, q *Queue, id, data string) {
	t.Helper()
	if err := q.Publish(testCtx(t), id, []byte(data)); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
}
