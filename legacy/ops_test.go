package legacy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func TestExportRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	paths := []string{"/q\"uote\\d/\t/\x01/é/\u2028", "/ünï/cödé"}
	for i := range 1234 { // more than one export page
		paths = append(paths, fmt.Sprintf("/e/%d", i))
	}
	events := trafficEvents(t0, paths, rng)
	// Older traffic: in the totals and the hourly counters, not in the window.
	proxyOf := map[string]string{}
	for _, e := range events {
		proxyOf[e.path] = e.proxy
	}
	for i := range 50 {
		events = append(events, event{proxy: proxyOf[paths[i]], path: paths[i], status: 500, at: t0.Add(-30 * time.Hour)})
	}
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, nil)
	observeAll(s, events, 4)
	ref := reference(events)
	srv := serve(t, s, nil)

	var byFormat [2][]Record
	for i, format := range []string{FormatJSON, FormatNDJSON} {
		resp, err := http.Get(srv.URL + "/api/admin/paths/do/export?format=" + format)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("export %s: %d", format, resp.StatusCode)
		}
		byFormat[i] = readExport(t, resp.Body, format)
		resp.Body.Close()
		checkRecords(t, byFormat[i], ref, t0)
	}
	if fmt.Sprint(byFormat[0]) != fmt.Sprint(byFormat[1]) {
		t.Fatal("json and ndjson exports differ")
	}

	// Against stats and Paths.
	code, body := call(t, "GET", srv.URL+"/api/admin/paths/do/stats")
	data, _ := body["data"].(map[string]any)
	if code != http.StatusOK || data["instances"] != float64(len(paths)) || data["state"] != "active" || data["storedBytes"].(float64) <= 0 {
		t.Fatalf("stats %d %v", code, body)
	}
	since := pathstats.HourBucket(t0.Add(-24 * time.Hour))
	var exportWindow, pathsWindow int64
	for _, r := range byFormat[0] {
		for _, h := range r.Hourly {
			if h.HourBucket >= since {
				exportWindow += h.Requests
			}
		}
	}
	for p := 1; ; p++ {
		page, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: p, Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			pathsWindow += it.Requests
		}
		if p*200 >= page.Total {
			break
		}
	}
	if exportWindow != pathsWindow || exportWindow != int64(len(events)-50) {
		t.Fatalf("window requests: export %d, paths %d, events %d", exportWindow, pathsWindow, len(events)-50)
	}

	var calls []string
	var b strings.Builder
	if err := s.Export(testCtx(t), &b, FormatNDJSON, func(done, total int) { calls = append(calls, fmt.Sprint(done, "/", total)) }); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("[1000/%d %d/%d]", len(paths), len(paths), len(paths)); fmt.Sprint(calls) != want {
		t.Fatalf("progress %v, want %s", calls, want)
	}
	wantError(t, "GET", srv.URL+"/api/admin/paths/do/export?format=csv", http.StatusBadRequest, pathstats.EInvalidParameter)
	if err := s.Export(testCtx(t), &b, "xml", nil); pathstats.ErrorCode(err) != pathstats.EInvalidParameter {
		t.Fatalf("export xml: %v", err)
	}
}

func TestExportEmpty(t *testing.T) {
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, nil)
	var b strings.Builder
	if err := s.Export(testCtx(t), &b, "", nil); err != nil || strings.TrimSpace(b.String()) != "[\n]" {
		t.Fatalf("empty export %q %v", b.String(), err)
	}
	if recs := readExport(t, strings.NewReader(b.String()), FormatJSON); len(recs) != 0 {
		t.Fatal(recs)
	}
}

func observePaths(s *System, n int) {
	events := make([]event, n)
	for i := range n {
		events[i] = event{proxy: "p", path: fmt.Sprintf("/c/%05d", i), status: 200, at: t0}
	}
	observeAll(s, events, 4)
}

func TestCleanupInterruptedThenResumed(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return t0 }
	s := openSys(t, dir, now, nil)
	observePaths(s, 2500)
	ctx, cancel := context.WithCancel(testCtx(t))
	batches := 0
	deleted, remaining, err := s.Cleanup(ctx, 300, func(d, r int) {
		if batches++; batches == 3 {
			cancel() // interrupted after three batches
		}
	})
	if !errors.Is(err, context.Canceled) || deleted != 900 || remaining != 1600 {
		t.Fatalf("interrupted cleanup: deleted %d remaining %d err %v", deleted, remaining, err)
	}
	mustClose(t, s) // and restart, as after a crash

	s = openSys(t, dir, now, nil)
	if n := s.Instances(); n != 1600 {
		t.Fatalf("instances after restart %d, want 1600", n)
	}
	var last [2]int
	deleted, remaining, err = s.Cleanup(testCtx(t), 0, func(d, r int) { last = [2]int{d, r} })
	if err != nil || deleted != 1600 || remaining != 0 || last != [2]int{1600, 0} {
		t.Fatalf("resumed cleanup: deleted %d remaining %d err %v progress %v", deleted, remaining, err, last)
	}
	deleted, remaining, err = s.Cleanup(testCtx(t), 0, nil)
	if err != nil || deleted != 0 || remaining != 0 {
		t.Fatalf("idempotent cleanup: %d %d %v", deleted, remaining, err)
	}
	if recs := exportRecords(t, s); len(recs) != 0 {
		t.Fatalf("export after cleanup has %d records", len(recs))
	}
	st, err := s.Stats(testCtx(t))
	if err != nil || st.Instances != 0 || st.StoredBytes != 0 || st.ActiveActors != 0 {
		t.Fatalf("stats after cleanup %+v %v", st, err)
	}
	// A deleted path observed again starts from zero.
	s.Observe("p", "/c/00001", 200, 0, t0)
	page, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 10})
	if err != nil || page.Total != 1 || page.Items[0].Requests != 1 {
		t.Fatalf("paths after cleanup %+v %v", page, err)
	}
}

func TestCleanupHTTP(t *testing.T) {
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, nil)
	observePaths(s, 250)
	inUse, gateErr := true, error(nil)
	srv := serve(t, s, func(context.Context) (bool, error) { return inUse, gateErr })
	u := srv.URL + "/api/admin/paths/do/batch-cleanup"

	wantError(t, "POST", u, http.StatusConflict, pathstats.EConflict)
	wantError(t, "POST", u+"?force=false", http.StatusConflict, pathstats.EConflict)
	for _, bad := range []string{"?batchSize=0", "?batchSize=10001", "?batchSize=x", "?batchSize=", "?batchSize=-5", "?force=maybe"} {
		wantError(t, "POST", u+bad, http.StatusBadRequest, pathstats.EInvalidParameter)
	}
	gateErr = errors.New("kv down")
	wantError(t, "POST", u, http.StatusServiceUnavailable, pathstats.EUnavailable)
	if s.Instances() != 250 {
		t.Fatal("a refused cleanup deleted data")
	}

	code, body := call(t, "POST", u+"?force=true&batchSize=100")
	if data, _ := body["data"].(map[string]any); code != http.StatusOK || data["deleted"] != float64(250) || data["remaining"] != float64(0) {
		t.Fatalf("forced cleanup %d %v", code, body)
	}
	inUse, gateErr = false, nil
	code, body = call(t, "POST", u)
	if data, _ := body["data"].(map[string]any); code != http.StatusOK || data["deleted"] != float64(0) || data["remaining"] != float64(0) {
		t.Fatalf("cleanup with nothing left %d %v", code, body)
	}
}

func TestDecommission(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return t0 }
	s := openSys(t, dir, now, nil)
	observePaths(s, 20)
	inUse := func(context.Context) (bool, error) { return true, nil }
	srv := serve(t, s, inUse)
	u := srv.URL + "/api/admin/paths/do/"

	code, body := call(t, "POST", u+"decommission")
	if msg, _ := body["message"].(string); code != http.StatusConflict || !strings.Contains(msg, "pathstats migrate set --percent 100") ||
		!strings.Contains(msg, "pathstats legacy decommission --force") {
		t.Fatalf("decommission while legacy in use: %d %v", code, body)
	}
	if s.Decommissioned() || s.Instances() != 20 {
		t.Fatal("decommissioned or cleaned by a refused call")
	}
	code, body = call(t, "POST", u+"decommission?force=true")
	if code != http.StatusOK || !s.Decommissioned() {
		t.Fatalf("forced decommission %d %v", code, body)
	}
	checkGone := func(s *System, srv string) {
		t.Helper()
		u := srv + "/api/admin/paths/do/"
		wantError(t, "GET", u+"stats", http.StatusGone, pathstats.EGone)
		wantError(t, "GET", u+"export?format=ndjson", http.StatusGone, pathstats.EGone)
		wantError(t, "GET", u+"export?format=bad", http.StatusGone, pathstats.EGone)
		wantError(t, "POST", u+"batch-cleanup?force=true", http.StatusGone, pathstats.EGone)
		wantError(t, "POST", u+"decommission?force=true", http.StatusGone, pathstats.EGone)
		wantError(t, "GET", srv+"/api/admin/paths", http.StatusGone, pathstats.EGone)
		n := s.Instances()
		s.Observe("p", "/new/after/decommission", 200, 0, t0)
		if s.Instances() != n || s.awake.Load() != 0 {
			t.Fatal("Observe is not a no-op after decommission")
		}
		if _, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 1}); pathstats.ErrorCode(err) != pathstats.EGone {
			t.Fatalf("paths after decommission: %v", err)
		}
		if _, _, err := s.Cleanup(testCtx(t), 0, nil); pathstats.ErrorCode(err) != pathstats.EGone {
			t.Fatalf("cleanup after decommission: %v", err)
		}
	}
	checkGone(s, srv.URL)
	mustClose(t, s)

	s2 := openSys(t, dir, now, nil)
	if !s2.Decommissioned() {
		t.Fatal("decommission did not survive a restart")
	}
	checkGone(s2, serve(t, s2, nil).URL)
	st, err := s2.Stats(testCtx(t))
	if err != nil || st.State != StateDecommissioned || st.Instances != 20 {
		t.Fatalf("stats after decommission %+v %v (forced: data stays stored)", st, err)
	}
}

// TestDecommissionWithTrafficFlowing: decommission (not forced) stops the
// dual write, then deletes every instance and turns the system off, while
// increments keep arriving; nothing is left and traffic cannot recreate it.
func TestDecommissionWithTrafficFlowing(t *testing.T) {
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, func(c *Config) { c.FlushInterval = 5 * time.Millisecond })
	observePaths(s, 50)
	stopTraffic := traffic(s, func(i int) {
		s.ObserveBatch(&pathstats.Batch{Deltas: []pathstats.Delta{deltaOf(fmt.Sprintf("/b/%d", i%100), t0, 1, 0, 0)}})
	})
	waitFor(t, "traffic created instances", func() bool { return s.Instances() > 100 })
	srv := serve(t, s, func(context.Context) (bool, error) { return false, nil })
	code, body := call(t, "POST", srv.URL+"/api/admin/paths/do/decommission")
	stopTraffic()
	data, _ := body["data"].(map[string]any)
	if code != http.StatusOK || data["state"] != "decommissioned" || data["instances"] != float64(0) || data["deleted"].(float64) < 100 {
		t.Fatalf("decommission with traffic: %d %v", code, body)
	}
	if !s.Decommissioned() || s.Instances() != 0 {
		t.Fatalf("decommissioned %v, instances %d", s.Decommissioned(), s.Instances())
	}
	n, _, err := s.store.usage(testCtx(t))
	if err != nil || n != 0 {
		t.Fatalf("stored instances %d %v", n, err)
	}
}

func TestDecommissionAfterCleanup(t *testing.T) {
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, nil)
	observePaths(s, 30)
	if _, _, err := s.Cleanup(testCtx(t), 7, nil); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, s, nil)
	code, body := call(t, "POST", srv.URL+"/api/admin/paths/do/decommission")
	if data, _ := body["data"].(map[string]any); code != http.StatusOK || data["state"] != "decommissioned" || data["instances"] != float64(0) {
		t.Fatalf("decommission %d %v", code, body)
	}
}

// traffic observes 100 paths in a loop (and calls more, if set, each turn)
// until the returned stop is called; stop waits for the loop to end.
func traffic(s *System, more func(i int)) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			s.Observe("p", fmt.Sprintf("/t/%d", i%100), 200, 0, t0)
			if more != nil {
				more(i)
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// TestCleanupDuringTraffic deletes while paths keep receiving increments:
// deleted paths come back as new instances, and a final cleanup after the
// traffic stops leaves nothing.
func TestCleanupDuringTraffic(t *testing.T) {
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, func(c *Config) { c.FlushInterval = 5 * time.Millisecond })
	stopTraffic := traffic(s, nil)
	for range 5 {
		if _, _, err := s.Cleanup(testCtx(t), 10, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	stopTraffic()
	if _, remaining, err := s.Cleanup(testCtx(t), 10, nil); err != nil || remaining != 0 {
		t.Fatalf("final cleanup: remaining %d, err %v", remaining, err)
	}
	if recs := exportRecords(t, s); len(recs) != 0 {
		t.Fatalf("%d records left", len(recs))
	}
	page, err := s.Paths(testCtx(t), pathstats.PathQuery{Page: 1, Limit: 1})
	if err != nil || page.Total != 0 {
		t.Fatalf("paths after cleanup %+v %v", page, err)
	}
}
