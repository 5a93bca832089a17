package lograte

import (
	"bytes"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a manual clock for a Limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func allow(t *testing.T, l *Limiter, key string, wantOK bool, wantSuppressed int64) {
	t.Helper()
	ok, n := l.Allow(key)
	if ok != wantOK || n != wantSuppressed {
		t.Fatalf("Allow(%q) = (%v, %d), want (%v, %d)", key, ok, n, wantOK, wantSuppressed)
	}
}

func TestAllowSuppressesAndCounts(t *testing.T) {
	c := newClock()
	l := &Limiter{Every: 10 * time.Second, Now: c.Now}
	allow(t, l, "a", true, 0) // the first line of a key always passes
	for range 5 {
		allow(t, l, "a", false, 0)
	}
	c.advance(9 * time.Second)
	allow(t, l, "a", false, 0) // still within the interval: 6 held back
	c.advance(time.Second)
	allow(t, l, "a", true, 6) // the next line reports them
	allow(t, l, "a", false, 0)
	c.advance(10 * time.Second)
	allow(t, l, "a", true, 1)
	c.advance(time.Hour)
	allow(t, l, "a", true, 0) // nothing held back since
}

func TestAllowPerKey(t *testing.T) {
	c := newClock()
	l := &Limiter{Now: c.Now} // DefaultEvery
	allow(t, l, "a", true, 0)
	allow(t, l, "b", true, 0) // another key is not held back by "a"
	allow(t, l, "a", false, 0)
	allow(t, l, "a", false, 0)
	allow(t, l, "b", false, 0)
	c.advance(DefaultEvery - time.Nanosecond)
	allow(t, l, "a", false, 0)
	c.advance(time.Nanosecond)
	allow(t, l, "a", true, 3)
	allow(t, l, "b", true, 1)
}

func TestAllowKeysBounded(t *testing.T) {
	c := newClock()
	l := &Limiter{Now: c.Now}
	for i := range MaxKeys {
		allow(t, l, fmt.Sprint("k", i), true, 0)
	}
	// Further keys share one overflow key: one line, then held back.
	allow(t, l, "new-1", true, 0)
	allow(t, l, "new-2", false, 0)
	allow(t, l, "k0", false, 0) // known keys keep their own state
	if n := l.count.Load(); n != MaxKeys+1 {
		t.Fatalf("tracked %d keys, want %d", n, MaxKeys+1)
	}
}

// TestAllowConcurrent: of many goroutines logging one key at once, exactly
// one line passes and every other one is counted.
func TestAllowConcurrent(t *testing.T) {
	c := newClock()
	l := &Limiter{Now: c.Now}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		passed int
	)
	const n = 64
	for range n {
		wg.Go(func() {
			if ok, _ := l.Allow("k"); ok {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if passed != 1 {
		t.Fatalf("%d lines passed, want 1", passed)
	}
	c.advance(DefaultEvery)
	allow(t, l, "k", true, n-1)
}

func TestWarnWritesSuppressedCount(t *testing.T) {
	c := newClock()
	l := &Limiter{Every: time.Second, Now: c.Now}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{AddSource: true}))
	for i := range 4 {
		l.Warn(log, "write failed", "try", i, "err", "disk full")
	}
	c.advance(time.Second)
	l.Error(log, "write failed", "try", 4, "err", "disk full")
	l.Log(log, slog.LevelWarn, "other", "write failed", "try", 5) // its own key
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	for i, want := range [][2]string{
		{"level=WARN", `msg="write failed" try=0 err="disk full"`},
		{"level=ERROR", `msg="write failed" try=4 err="disk full" suppressed=3`},
		{"level=WARN", `msg="write failed" try=5`},
	} {
		if !strings.Contains(lines[i], want[0]) || !strings.HasSuffix(lines[i], want[1]) {
			t.Errorf("line %d = %s\nwant %s and ending %s", i, lines[i], want[0], want[1])
		}
		if !strings.Contains(lines[i], "source="+sourceFile(t)) {
			t.Errorf("line %d = %s\nwant the caller as its source", i, lines[i])
		}
	}
}

// sourceFile is this test file's path, as slog's source attribute names it.
func sourceFile(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return file + ":"
}

// TestDisabledLevelStillLimits: a line below the logger's level is not
// written but still takes its key's turn.
func TestDisabledLevelStillLimits(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	var l Limiter
	if !l.Warn(log, "m") || l.Warn(log, "m") {
		t.Fatal("want the first line allowed and the second held back")
	}
	if buf.Len() != 0 {
		t.Fatalf("wrote %q below the logger's level", buf.String())
	}
}
