package testutil

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogBuffer collects the lines of a text slog.Logger for assertions. It is
// safe for concurrent use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// NewLogger returns a logger writing text lines (Debug and above) into a
// new LogBuffer.
func NewLogger() (*slog.Logger, *LogBuffer) {
	b := new(LogBuffer)
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Lines returns the lines logged so far that contain every one of subs.
func (b *LogBuffer) Lines(subs ...string) []string {
	var out []string
	for line := range strings.Lines(b.String()) {
		if containsAll(line, subs) {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	return out
}

// WaitLine waits (up to 60 s) for a line containing every one of subs and
// returns the first; it fails the test with the whole log otherwise.
func (b *LogBuffer) WaitLine(t testing.TB, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if lines := b.Lines(subs...); len(lines) > 0 {
			return lines[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within 60s; log:\n%s", subs, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
