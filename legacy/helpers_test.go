package legacy

import (
	"bufio"
	"context"
	"encoding/json"
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// t0 is the tests' fixed "now": 12:30 UTC, mid-hour.
var t0 = time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)

// clock is a settable clock.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.Set(t)
	return c
}

func (c *clock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openSys opens a system in dir with test defaults, closed at the end.
func openSys(t testing.TB, dir string, now func() time.Time, mod func(*Config)) *System {
	t.Helper()
	cfg := Config{Dir: dir, FlushInterval: 50 * time.Millisecond, MailboxSize: 4096, Now: now, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Open(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func mustClose(t testing.TB, s *System) {
	t.Helper()
	if err := s.Close(testCtx(t)); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// event is one observed response.
type event struct {
	proxy, path string
	status      int
	at          time.Time
}

// expect is the reference state of one path.
type expect struct {
	proxy                          string
	requests, errors, clientErrors int64 // all time
	last                           int64
	hours                          map[int64][3]int64 // hour -> requests, errors, clientErrors
}

// reference computes per-path expectations from events.
func reference(events []event) map[string]*expect {
	out := map[string]*expect{}
	for _, e := range events {
		x := out[e.path]
		if x == nil {
			x = &expect{hours: map[int64][3]int64{}}
			out[e.path] = x
		}
		x.proxy = e.proxy
		x.requests++
		var er, ce int64
		switch pathstats.StatusClass(e.status) {
		case 4:
			er = 1
		case 3:
			ce = 1
		}
		x.errors += er
		x.clientErrors += ce
		x.last = max(x.last, e.at.UnixMilli())
		h := x.hours[pathstats.HourBucket(e.at)]
		x.hours[pathstats.HourBucket(e.at)] = [3]int64{h[0] + 1, h[1] + er, h[2] + ce}
	}
	return out
}

// windowItems are the reference Paths items over the 24-hour window at now.
func windowItems(ref map[string]*expect, now time.Time) []pathstats.PathItem {
	since := pathstats.HourBucket(now.Add(-24 * time.Hour))
	var items []pathstats.PathItem
	for p, x := range ref {
		it := pathstats.PathItem{Path: p, ProxyID: x.proxy, LastAccessedMs: x.last}
		for h, c := range x.hours {
			if h >= since {
				it.Requests += c[0]
				it.Errors += c[1]
				it.ClientErrors += c[2]
			}
		}
		it.Status[3], it.Status[4] = it.ClientErrors, it.Errors
		if it.Requests > 0 {
			items = append(items, it)
		}
	}
	slices.SortFunc(items, func(a, b pathstats.PathItem) int { return pathstats.ComparePathItems(&a, &b) })
	return items
}

// queryRef applies a query to reference items.
func queryRef(items []pathstats.PathItem, q pathstats.PathQuery) pathstats.PathPage {
	var match []pathstats.PathItem
	for _, it := range items {
		if q.ProxyID != "" && it.ProxyID != q.ProxyID {
			continue
		}
		if !strings.Contains(strings.ToLower(it.Path), strings.ToLower(q.Q)) {
			continue
		}
		match = append(match, it)
	}
	page := pathstats.PathPage{Total: len(match)}
	if off := q.Offset(); off < len(match) {
		page.Items = match[off:min(off+q.Limit, len(match))]
	}
	return page
}

// observeAll replays events from n goroutines.
func observeAll(s *System, events []event, n int) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for i := w; i < len(events); i += n {
				e := events[i]
				s.Observe(e.proxy, e.path, e.status, time.Millisecond, e.at)
			}
		})
	}
	wg.Wait()
}

// serve mounts the system's handlers (and /paths) on a test server.
func serve(t testing.TB, s *System, gate Gate) *httptest.Server {
	mux := http.NewServeMux()
	for pattern, h := range s.Handlers(gate) {
		mux.Handle(pattern, h)
	}
	mux.Handle("GET /api/admin/paths", s.HandlerPaths())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// call does a request and decodes the JSON envelope.
func call(t testing.TB, method, url string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: decode: %v", method, url, err)
	}
	return resp.StatusCode, body
}

// wantError checks an error answer's status and code.
func wantError(t testing.TB, method, url string, status int, code string) {
	t.Helper()
	got, body := call(t, method, url)
	if got != status || body["error"] != code || body["success"] != false {
		t.Fatalf("%s %s = %d %v, want %d %s", method, url, got, body, status, code)
	}
}

// readExport parses a json or ndjson export.
func readExport(t testing.TB, r io.Reader, format string) []Record {
	t.Helper()
	var recs []Record
	if format == FormatJSON {
		if err := json.NewDecoder(r).Decode(&recs); err != nil {
			t.Fatalf("decode json export: %v", err)
		}
		if recs == nil {
			t.Fatal("json export is not an array")
		}
		return recs
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("decode ndjson line %q: %v", sc.Text(), err)
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// exportRecords exports through the Go method.
func exportRecords(t testing.TB, s *System) []Record {
	t.Helper()
	var b strings.Builder
	if err := s.Export(testCtx(t), &b, FormatJSON, nil); err != nil {
		t.Fatalf("export: %v", err)
	}
	return readExport(t, strings.NewReader(b.String()), FormatJSON)
}

// checkRecords compares export records with the reference, with hours
// older than the retention at now dropped.
func checkRecords(t testing.TB, recs []Record, ref map[string]*expect, now time.Time) {
	t.Helper()
	if len(recs) != len(ref) {
		t.Fatalf("export has %d records, want %d", len(recs), len(ref))
	}
	oldest := pathstats.HourBucket(now.Add(-Retention))
	for i, r := range recs {
		if i > 0 && recs[i-1].Name >= r.Name {
			t.Fatalf("export not in name order at %d", i)
		}
		x := ref[r.Path]
		if x == nil {
			t.Fatalf("unexpected path %q", r.Path)
		}
		if r.Name != Name(r.Path) || r.ProxyID != x.proxy || r.RequestCount != x.requests ||
			r.ErrorCount != x.errors || r.ClientErrorCount != x.clientErrors || r.LastAccessed != x.last {
			t.Fatalf("record %+v, want %+v", r, *x)
		}
		var want []HourCount
		for h, c := range x.hours {
			if h >= oldest {
				want = append(want, HourCount{HourBucket: h, Requests: c[0], Errors: c[1], ClientErrors: c[2]})
			}
		}
		slices.SortFunc(want, func(a, b HourCount) int { return cmpInt(a.HourBucket, b.HourBucket) })
		if !slices.Equal(r.Hourly, want) && !(len(r.Hourly) == 0 && len(want) == 0) {
			t.Fatalf("%s hourly %v, want %v", r.Path, r.Hourly, want)
		}
	}
}

// waitFor polls cond for up to a minute (a bound on a hang, not a speed).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hashOf(s *System, path string) uint64 { return maphash.String(s.seed, path) }

// holdActor keeps the awake actor of path busy (running a function) until
// the returned release is called; release waits for the actor to answer.
func holdActor(t testing.TB, s *System, path string) (release func()) {
	t.Helper()
	a := s.index.Load().find(hashOf(s, path), path)
	entered, done := make(chan struct{}), make(chan struct{})
	answered := make(chan error, 1)
	go func() {
		r := newRequest(reqRun)
		r.fn = func() { close(entered); <-done }
		answered <- s.ask(testCtx(t), a, r)
	}()
	<-entered
	return func() {
		t.Helper()
		close(done)
		if err := <-answered; err != nil {
			t.Fatal(err)
		}
	}
}
