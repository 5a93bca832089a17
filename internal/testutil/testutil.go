// Package testutil holds helpers shared by tests of several packages: real
// backends (embedded NATS, SQLite in a temp dir) started and cleaned up per
// test.
package testutil

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pathstats/pathstats/nats"
	"github.com/pathstats/pathstats/sqlite"
)

// Context returns a context cancelled at the end of the test or after two
// minutes, which bound a hang. A test with a long CPU-bound phase takes a
// new one after it rather than spend what the phase left of this one.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// MustStartNATS starts an embedded JetStream server storing in a temp dir.
// port 0 means in-process only; -1 a random TCP port.
func MustStartNATS(t testing.TB, port int) *nats.Server {
	t.Helper()
	s, err := nats.StartEmbedded(Context(t), nats.EmbeddedOptions{StoreDir: t.TempDir(), Port: port})
	if err != nil {
		t.Fatalf("start embedded nats: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// MustOpenQueue opens the batch queue on an embedded server.
func MustOpenQueue(t testing.TB, s *nats.Server, cfg nats.QueueConfig) *nats.Queue {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	q, err := nats.Open(Context(t), nc, cfg)
	if err != nil {
		nc.Close()
		t.Fatalf("open queue: %v", err)
	}
	t.Cleanup(func() { _ = q.Close(); nc.Close() })
	return q
}

// MustOpenSQLite opens a SQLite store in a temp dir.
func MustOpenSQLite(t testing.TB) *sqlite.StatsStore {
	t.Helper()
	st, err := sqlite.Open(Context(t), filepath.Join(t.TempDir(), "stats.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// MustOpenKV opens a KV bucket on an embedded server (in-process
// connection), closed at the end of the test.
func MustOpenKV(t testing.TB, s *nats.Server, bucket string) *nats.KV {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	kv, err := nats.OpenKV(Context(t), nc, nats.KVConfig{Bucket: bucket})
	if err != nil {
		t.Fatalf("open kv: %v", err)
	}
	t.Cleanup(func() { _ = kv.Close() })
	return kv
}

// LongestCommonRun is the length of the longest common substring of a and
// b: how much of an input an error message echoes.
func LongestCommonRun(a, b string) int {
	best := 0
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cur[j] = 0
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
				best = max(best, cur[j])
			}
		}
		prev, cur = cur, prev
	}
	return best
}
