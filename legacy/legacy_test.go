package legacy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/prometheus/client_golang/prometheus"
)

func TestName(t *testing.T) {
	sum := sha256.Sum256([]byte("PathCollector:/api/users/:id"))
	if got, want := Name("/api/users/:id"), hex.EncodeToString(sum[:16]); got != want || len(got) != 32 {
		t.Fatalf("Name = %q, want %q", got, want)
	}
	if Name("/a") == Name("/A") {
		t.Fatal("names must differ by path case")
	}
}

// specialPaths exercise q matching: LIKE metacharacters, backslashes and
// mixed-case Unicode.
var specialPaths = []string{
	"/api/users", "/API/Users/:id", "/100%/off", "/100/off", "/a_b/c", "/axb/c",
	`/back\slash`, `/back/slash`, "/Straße/ÄPFEL", "/straße/äpfel", "/ÉCOLE", "/école/x",
}

// trafficEvents builds known traffic within the last 24 hours of now.
func trafficEvents(now time.Time, paths []string, rng *rand.Rand) []event {
	statuses := []int{200, 404, 500, 302, 503, 201, 429, 101}
	var events []event
	for i, p := range paths {
		proxy := "p1"
		if i%3 == 0 {
			proxy = "p2"
		}
		for j := range 1 + i%9 {
			at := now.Add(-time.Duration(j%23)*time.Hour - time.Duration(rng.IntN(1000))*time.Millisecond)
			events = append(events, event{proxy: proxy, path: p, status: statuses[(i+j)%len(statuses)], at: at})
		}
	}
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	return events
}

func TestObserveConcurrentPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := append([]string{}, specialPaths...)
	for i := range 300 {
		paths = append(paths, fmt.Sprintf("/gen/%03d", i))
	}
	events := trafficEvents(t0, paths, rng)
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, nil)
	observeAll(s, events, 8)
	if d := s.dropped.Load(); d != 0 {
		t.Fatalf("dropped %d increments", d)
	}
	ref := windowItems(reference(events), t0)
	queries := []pathstats.PathQuery{
		{Page: 1, Limit: 50},
		{Page: 2, Limit: 50},
		{Page: 7, Limit: 50},
		{Page: 100, Limit: 50},
		{Q: "%", Page: 1, Limit: 200},
		{Q: "_", Page: 1, Limit: 200},
		{Q: `\`, Page: 1, Limit: 200},
		{Q: "äpfel", Page: 1, Limit: 200},
		{Q: "STRASSE", Page: 1, Limit: 200},
		{Q: "STRAßE/Ä", Page: 1, Limit: 200},
		{Q: "école", Page: 1, Limit: 200},
		{Q: "users", Page: 1, Limit: 200},
		{ProxyID: "p2", Page: 1, Limit: 200},
		{ProxyID: "p2", Page: 2, Limit: 30},
		{ProxyID: "nope", Page: 1, Limit: 200},
		{Q: "GEN/0", ProxyID: "p1", Page: 3, Limit: 7},
	}
	for _, q := range queries {
		got, err := s.Paths(testCtx(t), q)
		if err != nil {
			t.Fatalf("paths %+v: %v", q, err)
		}
		want := queryRef(ref, q)
		if got.Total != want.Total || len(got.Items) != len(want.Items) {
			t.Fatalf("paths %+v: total %d items %d, want %d %d", q, got.Total, len(got.Items), want.Total, len(want.Items))
		}
		for i := range want.Items {
			if got.Items[i] != want.Items[i] {
				t.Fatalf("paths %+v item %d: %+v, want %+v", q, i, got.Items[i], want.Items[i])
			}
		}
	}
	if n := s.Instances(); n != len(paths) {
		t.Fatalf("instances %d, want %d", n, len(paths))
	}

	srv := serve(t, s, nil)
	code, body := call(t, "GET", srv.URL+"/api/admin/paths?"+url.Values{"q": {"ÄPFEL"}, "limit": {"1"}}.Encode())
	meta, _ := body["metadata"].(map[string]any)
	pag, _ := body["pagination"].(map[string]any)
	data, _ := body["data"].([]any)
	if code != http.StatusOK || meta["dataSource"] != "do-legacy" || pag["total"] != float64(2) || len(data) != 1 {
		t.Fatalf("GET /paths = %d %v", code, body)
	}
	if item := data[0].(map[string]any); item["requestCount"] == nil || item["lastAccessed"] == nil {
		t.Fatalf("item %v", item)
	}
	wantError(t, "GET", srv.URL+"/api/admin/paths?page=0", http.StatusBadRequest, pathstats.EInvalidParameter)
}

func TestWindowAndRetention(t *testing.T) {
	clk := newClock(t0)
	s := openSys(t, t.TempDir(), clk.Now, nil)
	var events []event
	add := func(at time.Time, status int) {
		events = append(events, event{proxy: "p", path: "/w", status: status, at: at})
		s.Observe("p", "/w", status, 0, at)
	}
	// now, -23h, -24h (bucket of now-24h: in the window), -25h (out),
	// -47h (kept hourly), -49h (older than the retention: totals only).
	for _, ago := range []time.Duration{0, 23, 24, 25, 47, 49} {
		add(t0.Add(-ago*time.Hour), 500)
	}
	check := func(wantWindow int64) {
		t.Helper()
		page, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		want := windowItems(reference(events), clk.Now())
		if len(page.Items) != 1 || page.Items[0] != want[0] || want[0].Requests != wantWindow {
			t.Fatalf("paths %+v, want %+v (window %d)", page.Items, want, wantWindow)
		}
		checkRecords(t, exportRecords(t, s), reference(events), clk.Now())
	}
	check(3)
	if recs := exportRecords(t, s); len(recs[0].Hourly) != 5 || recs[0].RequestCount != 6 {
		t.Fatalf("hourly %v (want 5 hours, 49h dropped), requests %d", recs[0].Hourly, recs[0].RequestCount)
	}
	// Two hours later: -23h and -24h leave the window, -47h the retention.
	clk.Set(t0.Add(2 * time.Hour))
	add(clk.Now(), 404)
	check(2)
	if recs := exportRecords(t, s); len(recs[0].Hourly) != 5 {
		t.Fatalf("hourly after 2h %v", recs[0].Hourly)
	}
}

func TestCloseReopenRestores(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	var paths []string
	for i := range 120 {
		paths = append(paths, fmt.Sprintf("/r/%d", i))
	}
	events := trafficEvents(t0, paths, rng)
	now := func() time.Time { return t0 }
	s := openSys(t, dir, now, func(c *Config) { c.FlushInterval = time.Hour })
	observeAll(s, events[:len(events)/2], 4)
	if err := s.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	observeAll(s, events[len(events)/2:], 4) // only Close persists these
	before, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)

	s2 := openSys(t, dir, now, nil)
	if n := s2.Instances(); n != len(paths) {
		t.Fatalf("instances after reopen %d, want %d", n, len(paths))
	}
	after, err := s2.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	if after.Total != before.Total || fmt.Sprint(after.Items) != fmt.Sprint(before.Items) {
		t.Fatalf("paths after reopen differ:\n%v\n%v", after, before)
	}
	checkRecords(t, exportRecords(t, s2), reference(events), t0)
	// Actors restored lazily keep counting from their stored state.
	s2.Observe("p9", "/r/1", 200, 0, t0)
	ref := reference(events)
	ref["/r/1"].proxy = "p9"
	ref["/r/1"].requests++
	h := ref["/r/1"].hours[pathstats.HourBucket(t0)]
	ref["/r/1"].hours[pathstats.HourBucket(t0)] = [3]int64{h[0] + 1, h[1], h[2]}
	ref["/r/1"].last = max(ref["/r/1"].last, t0.UnixMilli())
	checkRecords(t, exportRecords(t, s2), ref, t0)
}

func TestHibernation(t *testing.T) {
	now := func() time.Time { return t0 }
	s := openSys(t, t.TempDir(), now, func(c *Config) { c.IdleTimeout = 40 * time.Millisecond })
	for i := range 10 {
		s.Observe("p", fmt.Sprintf("/h/%d", i%3), 200, 0, t0)
	}
	if a := s.awake.Load(); a != 3 {
		t.Fatalf("awake %d, want 3", a)
	}
	waitFor(t, "actors to hibernate", func() bool { return s.awake.Load() == 0 })
	page, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 10})
	if err != nil || page.Total != 3 || page.Items[0].Requests != 4 || s.awake.Load() != 0 {
		t.Fatalf("paths while asleep %+v %v (awake %d)", page, err, s.awake.Load())
	}
	s.Observe("p", "/h/0", 200, 0, t0)
	if a := s.awake.Load(); a != 1 {
		t.Fatalf("awake after a new increment %d, want 1", a)
	}
	page, _ = s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 10})
	if page.Items[0].Path != "/h/0" || page.Items[0].Requests != 5 {
		t.Fatalf("paths after wake %+v", page.Items)
	}
}

func TestMailboxFullDropsWithoutBlocking(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, func(c *Config) {
		c.MailboxSize = 4
		c.Registerer = reg
		c.FlushInterval = time.Hour // no snapshot request takes a mailbox slot
	})
	s.Observe("p", "/slow", 200, 0, t0)
	release := holdActor(t, s, "/slow")
	start := time.Now()
	for range 100 {
		s.Observe("p", "/slow", 500, 0, t0)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("100 observes on a full mailbox took %v", d)
	}
	if d := s.dropped.Load(); d != 96 {
		t.Fatalf("dropped %d, want 96", d)
	}
	if v := gather(t, reg, "pathstats_legacy_dropped_total"); v != 96 {
		t.Fatalf("metric dropped %v, want 96", v)
	}
	release()
	page, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 10})
	if err != nil || page.Items[0].Requests != 5 || page.Items[0].Errors != 4 {
		t.Fatalf("paths %+v %v, want 5 requests (1 + 4 queued)", page, err)
	}
}

func TestObserveAfterCloseIsNoop(t *testing.T) {
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, nil)
	s.Observe("p", "/x", 200, 0, t0)
	mustClose(t, s)
	s.Observe("p", "/y", 200, 0, t0)
	if n := s.Instances(); n != 1 {
		t.Fatalf("instances after close %d", n)
	}
	if _, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 1}); pathstats.ErrorCode(err) != pathstats.EUnavailable {
		t.Fatalf("paths after close: %v", err)
	}
}

func gather(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// TestStressSleepWakeFlush observes while actors constantly go to sleep and
// wake, flushes run and reads fan out; no increment may be lost or doubled.
func TestStressSleepWakeFlush(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return t0 }
	s := openSys(t, dir, now, func(c *Config) {
		c.IdleTimeout = 2 * time.Millisecond
		c.FlushInterval = 5 * time.Millisecond
	})
	var paths []string
	for i := range 150 {
		paths = append(paths, fmt.Sprintf("/s/%d", i))
	}
	rng := rand.New(rand.NewPCG(7, 8))
	var events []event
	for range 6 {
		events = append(events, trafficEvents(t0, paths, rng)...)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 5}); err != nil {
				done <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for i := 0; i < len(events); i += 500 {
		observeAll(s, events[i:min(i+500, len(events))], 3)
		waitFor(t, "actors asleep between bursts", func() bool { return s.awake.Load() == 0 })
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := s.dropped.Load(); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	if w := s.wakes.Load(); w < 3*int64(len(paths)) {
		t.Fatalf("only %d wakes for %d actors: the test did not exercise sleep and wake", w, len(paths))
	}
	t.Logf("%d wakes", s.wakes.Load())
	want := windowItems(reference(events), t0)
	got, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 200})
	if err != nil || fmt.Sprint(got.Items) != fmt.Sprint(want) {
		t.Fatalf("after stress:\n%v\nwant\n%v (err %v)", got.Items, want, err)
	}
	mustClose(t, s)
	s2 := openSys(t, dir, now, nil)
	checkRecords(t, exportRecords(t, s2), reference(events), t0)
}
