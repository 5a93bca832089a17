package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
)

// brokenWindow is a WindowReader whose reads fail (SQL down).
type brokenWindow struct{ err error }

func (b brokenWindow) WindowTotals(context.Context) ([]pathstats.PathItem, int64, error) {
	return nil, 0, b.err
}

func (b brokenWindow) QueryPaths(context.Context, pathstats.PathQuery) (pathstats.PathPage, error) {
	return pathstats.PathPage{}, b.err
}

// TestBuildErrorLogged: a build counted as builds_total{result="error"}
// logs a warning carrying the error.
func TestBuildErrorLogged(t *testing.T) {
	kv, _ := testKV(t)
	log, buf := testutil.NewLogger()
	w := NewWriter(kv, brokenWindow{errors.New("injected: sql down")}, WriterOptions{Holder: "a", Logger: log})
	if _, err := w.Build(testCtx(t)); err == nil {
		t.Fatal("build succeeded on a broken window")
	}
	if n := buildCount(w, resultError); n != 1 {
		t.Fatalf("builds error = %d, want 1", n)
	}
	lines := buf.Lines(`msg="snapshot build failed"`)
	if len(lines) != 1 || !strings.Contains(lines[0], `err="read window: injected: sql down"`) ||
		!strings.Contains(lines[0], "level=WARN") {
		t.Fatalf("want one warning with the error; log:\n%s", buf.String())
	}
}

// TestBuildCutByLeaseLossLogsWhy is the demo's case: another holder takes
// the snapshotter lease during a build. The build counted as an error logs
// the error with the loss as its cause, and the "lease lost" warning names
// the holder that took it.
func TestBuildCutByLeaseLossLogsWhy(t *testing.T) {
	kv, _ := testKV(t)
	log, buf := testutil.NewLogger()
	win := newWindow(realisticItems(10))
	win.gate = make(chan struct{}) // the build reads the window until its context ends
	w := NewWriter(kv, win, WriterOptions{Holder: "a", LeaseTTL: 3 * time.Second, Logger: log})
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx, time.Hour) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(60 * time.Second); win.calls.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no build started within 60s")
		}
	}

	rec, _ := json.Marshal(map[string]any{"holder": "usurper", "expiresAtMs": time.Now().Add(time.Minute).UnixMilli()})
	if _, err := kv.Put(testCtx(t), "lease:"+leaseName, rec); err != nil {
		t.Fatal(err)
	}
	line := buf.WaitLine(t, `msg="snapshot build failed"`)
	for _, want := range []string{`err="read window: context canceled"`, "cause=", `another holder took it (holder \"usurper\")`} {
		if !strings.Contains(line, want) {
			t.Fatalf("build failure line lacks %s: %s", want, line)
		}
	}
	lost := buf.WaitLine(t, `msg="lease lost"`)
	if !strings.Contains(lost, `another holder took it (holder \"usurper\")`) {
		t.Fatalf("lease lost line does not say why: %s", lost)
	}
	if n := buildCount(w, resultError); n != 1 {
		t.Fatalf("builds error = %d, want 1", n)
	}
}
