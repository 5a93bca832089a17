package gateway

import (
	"sync"
	"testing"
	"time"
)

// call is one Record call.
type call struct {
	proxyID, path string
	status        int
	latency       time.Duration
	at            time.Time
}

// testRecorder keeps every Record call: it is the unit under observation.
// Records happen after the response is written, so a client can see its
// response first; next waits for them.
type testRecorder struct {
	mu    sync.Mutex
	calls []call
	ch    chan call
}

func newTestRecorder() *testRecorder { return &testRecorder{ch: make(chan call, 1024)} }

func (r *testRecorder) Record(proxyID, path string, status int, latency time.Duration, at time.Time) {
	c := call{proxyID, path, status, latency, at}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	select {
	case r.ch <- c:
	default:
	}
}

// next returns the next recorded call, failing after a minute.
func (r *testRecorder) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-r.ch:
		return c
	case <-time.After(time.Minute):
		t.Fatal("nothing recorded")
		return call{}
	}
}

func (r *testRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// nopRecorder drops everything, for benchmarks.
type nopRecorder struct{}

func (nopRecorder) Record(string, string, int, time.Duration, time.Time) {}
