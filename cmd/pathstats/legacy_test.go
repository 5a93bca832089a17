package main

// End-to-end tests of the legacy system; delete with legacy.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	deadline := time.Now().Add(10 * time.Second)
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
	if !strings.Contains(c.logs.String(), "decommissioned") {
		t.Error("no warning that --legacy on is ignored")
	}
}
