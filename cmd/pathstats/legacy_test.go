package main

// End-to-end tests of the legacy system; delete with legacy.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/legacy"
	"github.com/pathstats/pathstats/snapshot"
)

// TestLegacyCountsEqualPipeline sends the same traffic (gateway and
// ingest) to both systems and compares the legacy export with SQL.
func TestLegacyCountsEqualPipeline(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/err") {
			w.WriteHeader(503)
		}
	}))
	defer upstream.Close()
	dir := t.TempDir()
	c := startServe(t, dir, "--upstream", upstream.URL)
	for i := 0; i < 300; i++ {
		resp, err := http.Get(fmt.Sprintf("%s/%s/%d", c.gateway, []string{"users", "orders", "err"}[i%3], i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	now := time.Now().UnixMilli()
	var evs []map[string]any
	for i := 0; i < 200; i++ {
		evs = append(evs, map[string]any{"timestamp": now, "path": fmt.Sprintf("/ingested/p%dq", i%20), "status": 200 + (i%5)*100 - (i%5)/4*100})
	}
	if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", ndjson(evs...), nil); code != 202 {
		t.Fatalf("ingest %d %v", code, out)
	}
	c.stop()
	c = startServe(t, dir)
	export := exportNDJSON(t, c)
	code, out := c.do("GET", "/api/admin/paths/compare", "", nil, nil)
	rep, _ := out["data"].(map[string]any)
	if code != 200 || rep["accuracy"] != float64(100) || len(rep["diffs"].([]any)) != 0 {
		t.Fatalf("compare on a drained system: %d %v", code, out)
	}
	if totals := rep["totals"].(map[string]any); totals["d1Requests"] != float64(500) || totals["doRequests"] != float64(500) {
		t.Fatalf("compare totals %v", totals)
	}
	if code, out := c.do("GET", "/api/admin/paths/compare/latest", "", nil, nil); code != 200 || out["data"].(map[string]any)["accuracy"] != float64(100) {
		t.Fatalf("compare/latest: %d %v", code, out)
	}
	if code, out := c.do("GET", "/api/admin/paths/compare?window=abc", "", nil, nil); code != 400 || out["error"] != "INVALID_PARAMETER" {
		t.Fatalf("bad window: %d %v", code, out)
	}
	c.stop()
	sql := map[string]int64{}
	for _, r := range sqlTotals(t, dir) {
		sql[r.Path] += r.Requests
	}
	if len(export) != len(sql) {
		t.Fatalf("legacy has %d paths, SQL %d", len(export), len(sql))
	}
	var total int64
	for p, n := range sql {
		if export[p] != n {
			t.Errorf("%s: legacy %d, SQL %d", p, export[p], n)
		}
		total += n
	}
	if total != 500 {
		t.Fatalf("total %d, want 500", total)
	}
}

func exportNDJSON(t *testing.T, c *child) map[string]int64 {
	t.Helper()
	req, _ := http.NewRequest("GET", c.admin+"/api/admin/paths/do/export?format=ndjson", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("export: %d", resp.StatusCode)
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var r struct {
			Path         string `json:"path"`
			RequestCount int64  `json:"requestCount"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		out[r.Path] += r.RequestCount
	}
	return out
}

// TestLegacyRetirement runs the runbook through the CLI: export, cleanup
// (refused without force while clients use legacy), decommission, restart.
func TestLegacyRetirement(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir)
	var evs []map[string]any
	for i := 0; i < 50; i++ {
		evs = append(evs, map[string]any{"path": fmt.Sprintf("/r/p%dq", i), "status": 200})
	}
	if code, _ := c.do("POST", "/api/v1/events", "application/x-ndjson", ndjson(evs...), nil); code != 202 {
		t.Fatal("ingest")
	}
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append(append([]string{"legacy"}, args[0]), append([]string{"--server", c.admin, "--data-dir", dir}, args[1:]...)...), &out, &out)
		return out.String(), err
	}
	// Legacy actors flush write-behind; wait until all 50 are stored.
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := cli("stats")
		if err == nil && strings.Contains(out, "instances=50 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats: %q %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	file := filepath.Join(t.TempDir(), "backup.ndjson")
	if out, err := cli("export", "-o", file); err != nil || !strings.Contains(out, "exported 50 instances") {
		t.Fatalf("export: %q %v", out, err)
	}
	if data, _ := os.ReadFile(file); bytes.Count(data, []byte("\n")) != 50 {
		t.Fatalf("backup has %d lines", bytes.Count(data, []byte("\n")))
	}
	if _, err := cli("decommission"); err == nil || !strings.Contains(err.Error(), "CONFLICT") {
		t.Fatalf("decommission with data left: %v", err)
	}
	if _, err := cli("cleanup"); err == nil || !strings.Contains(err.Error(), "CONFLICT") {
		t.Fatalf("cleanup while legacy in use: %v", err)
	}
	if out, err := cli("cleanup", "--force", "--batch-size", "7"); err != nil || !strings.Contains(out, "0 remaining") {
		t.Fatalf("cleanup --force: %q %v", out, err)
	}
	if out, err := cli("cleanup", "--force"); err != nil || !strings.Contains(out, "0 instances deleted, 0 remaining") {
		t.Fatalf("cleanup again: %q %v", out, err)
	}
	if _, err := cli("decommission"); err == nil || !strings.Contains(err.Error(), "CONFLICT") {
		t.Fatalf("decommission while legacy in use: %v", err)
	}
	if code, out := c.do("PUT", "/api/admin/paths/migration-config", "application/json", []byte(`{"newAPIPercentage":100}`), nil); code != http.StatusOK {
		t.Fatalf("set 100 %%: %d %v", code, out)
	}
	if _, err := cli("decommission"); err != nil {
		t.Fatalf("decommission: %v", err)
	}
	c.stop()
	c = startServe(t, dir, "--legacy", "on")
	for _, ep := range []string{"GET /api/admin/paths/do/stats", "GET /api/admin/paths/do/export", "POST /api/admin/paths/do/batch-cleanup", "POST /api/admin/paths/do/decommission"} {
		method, path, _ := strings.Cut(ep, " ")
		if code, out := c.do(method, path, "", nil, nil); code != http.StatusGone || out["error"] != "GONE" {
			t.Errorf("%s after decommission: %d %v", ep, code, out)
		}
	}
	if code, _ := c.paths(t, "limit=5"); code != 200 {
		t.Fatalf("/paths-v2 after decommission: %d", code)
	}
	if code, out := c.do("GET", "/api/admin/paths/compare", "", nil, nil); code != http.StatusGone {
		t.Errorf("compare after decommission: %d %v", code, out)
	}
	if reason, src := c.routeOf(t); reason != "legacy-off" || src == "do-legacy" {
		t.Fatalf("/paths after decommission routed %s to %s", reason, src)
	}
	if !strings.Contains(c.logs.String(), "decommissioned") {
		t.Error("no warning that --legacy on is ignored")
	}
}

// BenchmarkPathsLegacyVsV2 answers the same /paths queries from the legacy
// fan-out and from the new read path's decoded snapshot, with the same data,
// in one run: the table that motivates the migration.
func BenchmarkPathsLegacyVsV2(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("paths=%d", n), func(b *testing.B) {
			ctx := context.Background()
			sys, err := legacy.Open(ctx, legacy.Config{Dir: b.TempDir(), IdleTimeout: time.Hour, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer sys.Close(ctx)
			now := time.Now()
			for i := 0; i < n; i++ {
				path := fmt.Sprintf("/bench/res%d/items", i)
				for j := 0; j <= i%7; j++ {
					sys.Observe(fmt.Sprintf("p%d", i%4), path, 200+100*(j%4), time.Millisecond, now)
				}
			}
			queries := []pathstats.PathQuery{{Page: 1, Limit: 50}, {Page: 100, Limit: 50}, {Q: "res12", Page: 1, Limit: 50}, {ProxyID: "p2", Page: 3, Limit: 50}}
			var items []pathstats.PathItem
			for deadline := time.Now().Add(time.Minute); ; {
				page, err := sys.Paths(ctx, pathstats.PathQuery{Page: 1, Limit: 200})
				if err != nil {
					b.Fatal(err)
				}
				if page.Total == n {
					all, _ := sys.Paths(ctx, pathstats.PathQuery{Page: 1, Limit: n})
					items = all.Items
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("legacy has %d of %d paths", page.Total, n)
				}
				time.Sleep(50 * time.Millisecond)
			}
			view := snapshot.NewView(snapshot.Config{Version: 1, Timestamp: now}, items)
			var legacyLat, v2Lat []time.Duration
			for i := 0; b.Loop(); i++ {
				q := queries[i%len(queries)]
				t0 := time.Now()
				lp, err := sys.Paths(ctx, q)
				legacyLat = append(legacyLat, time.Since(t0))
				t1 := time.Now()
				vp := view.Query(q)
				v2Lat = append(v2Lat, time.Since(t1))
				if err != nil || lp.Total != vp.Total {
					b.Fatalf("%+v: legacy total %d, v2 %d (%v)", q, lp.Total, vp.Total, err)
				}
			}
			report := func(name string, l []time.Duration) {
				slices.Sort(l)
				b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, name+"-p50-ms")
				b.ReportMetric(float64(l[min(len(l)-1, len(l)*99/100)].Microseconds())/1000, name+"-p99-ms")
			}
			report("legacy", legacyLat)
			report("v2", v2Lat)
		})
	}
}
