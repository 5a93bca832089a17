package demo

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder counts the requests that reach Upstream.
type recorder struct {
	mu    sync.Mutex
	paths map[string]int
	xff   map[string]int
	n     atomic.Int64
}

func newRecorder() *recorder {
	return &recorder{paths: map[string]int{}, xff: map[string]int{}}
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.n.Add(1)
		rec.mu.Lock()
		rec.paths[r.URL.RequestURI()]++
		rec.xff[r.Header.Get("X-Forwarded-For")]++
		rec.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func TestTrafficRateAndStop(t *testing.T) {
	rec := newRecorder()
	srv := httptest.NewServer(rec.wrap(Upstream()))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	tr := &Traffic{Target: srv.URL, Rate: 50, Clients: 4}
	began := time.Now()
	go func() { done <- tr.Run(ctx) }()

	// At least 50 requests come (a busy machine only makes that slower);
	// never faster than the rate, with a little burst.
	for deadline := time.Now().Add(time.Minute); rec.n.Load() < 50; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in a minute at rate 50", rec.n.Load())
		}
	}
	elapsed, n := time.Since(began), rec.n.Load()
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		// Far below the minute: Run watches ctx, with room for a busy machine.
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Run returned %v after cancel", d)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after cancel")
	}

	if limit := int64(50*elapsed.Seconds()*1.5) + 5; n > limit {
		t.Errorf("%d requests in %s at rate 50, want at most %d", n, elapsed.Round(time.Millisecond), limit)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	t.Logf("%d requests in %s, %d distinct paths", n, elapsed.Round(time.Millisecond), len(rec.paths))
	userRE := regexp.MustCompile(`^/api(/v[12])?/users/\d+(/orders)?$`)
	var users []string
	for p := range rec.paths {
		if userRE.MatchString(p) {
			users = append(users, p)
		}
	}
	if len(rec.paths) < 10 || len(users) < 3 {
		t.Errorf("%d distinct paths, %d with user ids; want a varied mix: %v", len(rec.paths), len(users), rec.paths)
	}
	for ip := range rec.xff {
		a, err := netip.ParseAddr(ip)
		if err != nil || !netip.MustParsePrefix("10.0.0.0/8").Contains(a) {
			t.Errorf("X-Forwarded-For %q, want a 10.x address", ip)
		}
	}
	if len(rec.xff) < 3 {
		t.Errorf("only %d distinct client IPs: %v", len(rec.xff), rec.xff)
	}
}

// Requests fail while the gateway is not listening yet; Run carries on
// without logging each failure and reaches it once it is up.
func TestTrafficGatewayStartsLate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	tr := &Traffic{Target: "http://" + addr + "/", Rate: 100, Logger: log}
	go func() { done <- tr.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	time.Sleep(300 * time.Millisecond) // ~30 refused connections
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", addr, err)
	}
	rec := newRecorder()
	srv := &http.Server{Handler: rec.wrap(newUpstream(nil, nil))}
	go srv.Serve(ln)
	defer srv.Close()

	deadline := time.Now().Add(time.Minute)
	for rec.n.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := rec.n.Load(); got < 10 {
		t.Fatalf("%d requests reached the gateway after it started", got)
	}
	out := logs.String()
	if lines := strings.Count(out, "\n"); lines != 2 ||
		!strings.Contains(out, "gateway unreachable") || !strings.Contains(out, "gateway reachable") {
		t.Errorf("want one 'unreachable' and one 'reachable' line, got:\n%s", out)
	}
}

func TestTrafficInvalidTarget(t *testing.T) {
	for _, target := range []string{"", "localhost:8080", "ftp://example.com", "http://", "http://[::1"} {
		tr := &Traffic{Target: target}
		if err := tr.Run(context.Background()); err == nil {
			t.Errorf("Run with target %q: want an error", target)
		}
	}
}

// Every request in the mix gets the status it is meant to get from Upstream:
// no 400s, 404 only for the deliberately unknown paths.
func TestPickerMatchesUpstream(t *testing.T) {
	h := newUpstream(nil, nil)
	p := newPicker(1)
	const n = 20_000
	statuses := map[int]int{}
	userHits := map[string]int{}
	for range n {
		rq := p.next()
		code := serve(h, rq.method, rq.path, rq.header).Code
		statuses[code]++
		unknown := slices.Contains(unknownPaths, rq.path)
		if unknown != (code == 404) {
			t.Fatalf("%s %s: status %d", rq.method, rq.path, code)
		}
		if code == 400 {
			t.Fatalf("%s %s: bad request", rq.method, rq.path)
		}
		if rq.method == "GET" && strings.HasPrefix(rq.path, "/api/users/") && !strings.HasSuffix(rq.path, "/orders") {
			userHits[rq.path]++
		}
	}
	for _, code := range []int{200, 201, 204, 301, 304, 401, 404} {
		if statuses[code] == 0 {
			t.Errorf("mix never produced %d: %v", code, statuses)
		}
	}
	if statuses[200] < n/2 {
		t.Errorf("want mostly 200: %v", statuses)
	}

	// Hot and cold: the hottest user is a good share, yet many users appear.
	var top int
	for _, c := range userHits {
		top = max(top, c)
	}
	total := 0
	for _, c := range userHits {
		total += c
	}
	t.Logf("statuses %v; hottest user %d of %d user requests, %d distinct", statuses, top, total, len(userHits))
	if top*20 < total || len(userHits) < 200 {
		t.Errorf("user ids: hottest %d of %d, %d distinct; want a few hot and many cold", top, total, len(userHits))
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
