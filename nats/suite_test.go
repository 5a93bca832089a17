package nats

import (
	"os"
	"testing"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/queuetest"
)

func TestQueueEmbeddedInProcess(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	queuetest.Run(t, "nats embedded (in-process connection)", func(t *testing.T) pathstats.Queue {
		return openQueue(t, connect(t, s), testConfig(t))
	})
}

func TestQueueEmbeddedTCP(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	url := s.ClientURL()
	queuetest.Run(t, "nats embedded over tcp "+url, func(t *testing.T) pathstats.Queue {
		return openURLQueue(t, url)
	})
}

// TestQueueExternal runs the suite on the server named by
// PATHSTATS_TEST_NATS; it fails when that server cannot be reached.
func TestQueueExternal(t *testing.T) {
	t.Parallel()
	url := os.Getenv(envTestNATS)
	if url == "" {
		t.Skip(envTestNATS + " not set")
	}
	nc, err := connectURL(testCtx(t), url)
	if err != nil {
		t.Fatalf("%s=%s: %v", envTestNATS, url, err)
	}
	nc.Close()
	queuetest.Run(t, "nats external "+url, func(t *testing.T) pathstats.Queue {
		return openURLQueue(t, url)
	})
}

func openURLQueue(t *testing.T, url string) *Queue {
	t.Helper()
	q, err := OpenURL(testCtx(t), url, testConfig(t))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	cleanupQueue(t, q)
	return q
}
