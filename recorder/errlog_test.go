package recorder

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats/internal/testutil"
)

// TestQueueDownLogsRateLimited: while the queue is down every failed
// publish is counted, but logged once per interval with its error, and a
// flush dropped for a full buffer is logged with the publish error that
// filled it.
func TestQueueDownLogsRateLimited(t *testing.T) {
	log, buf := testutil.NewLogger()
	pub := &memPublisher{failing: true}
	r := New(Config{Logger: log, MaxPendingDeltas: 2, FlushInterval: time.Hour}, pub)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	r.Record("p", "/a", 200, 0, t0)
	r.Flush()
	waitForLong(t, func() bool { return r.Stats().PublishFailures.Load() >= 3 })
	lines := buf.Lines(`msg="publish batch failed; will retry"`)
	if len(lines) != 1 || !strings.Contains(lines[0], "queue down: backend unavailable") {
		t.Fatalf("%d publish failures logged in %d lines, want 1 line with the error; log:\n%s",
			r.Stats().PublishFailures.Load(), len(lines), buf.String())
	}

	for i := range 3 {
		r.Record("p", fmt.Sprintf("/m%dz", i), 200, 0, t0)
	}
	r.Flush()
	if n := r.Stats().DroppedEvents.Load(); n != 3 {
		t.Fatalf("dropped %d events, want 3", n)
	}
	drop := buf.WaitLine(t, `msg="recorder buffer full, dropping events"`)
	for _, want := range []string{"level=WARN", "dropped=3", `lastPublishError="queue down: backend unavailable"`} {
		if !strings.Contains(drop, want) {
			t.Fatalf("drop line lacks %s: %s", want, drop)
		}
	}
}
