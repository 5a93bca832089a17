package main

// End-to-end tests of the plan's data acceptance in the comparison
// (issue 12, item 4): path counts of both sides, lastAccessed alignment
// within ±5 minutes as its own difference kind, and legacy /paths answers
// without the fields the legacy system does not keep.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCompareAcceptance ingests traffic into a real server (both systems),
// then checks the comparison summary, a lastAccessed misalignment made in
// the pipeline's SQL rows, the CLI table and the legacy /paths items.
func TestCompareAcceptance(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir)
	at := time.Now().Add(-2 * time.Hour).Truncate(time.Hour).Add(10 * time.Minute)
	var evs []map[string]any
	for i, p := range []string{"/acc/a", "/acc/b", "/acc/b", "/acc/c", "/acc/c", "/acc/c"} {
		evs = append(evs, map[string]any{"timestamp": at.Add(time.Duration(i) * time.Second).UnixMilli(), "path": p, "status": []int{200, 404, 503}[i%3], "latencyMs": 12})
	}
	if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", ndjson(evs...), nil); code != 202 {
		t.Fatalf("ingest %d %v", code, out)
	}
	// A drained system: 3 paths on each side, everything aligned.
	rep := waitCompare(t, c, func(r map[string]any) bool { return r["d1Paths"] == 3.0 && r["doPaths"] == 3.0 })
	if rep["totalPaths"] != 3.0 || rep["diffsTotal"] != 0.0 || rep["accuracy"] != 100.0 || rep["lastAccessedToleranceSeconds"] != 300.0 {
		t.Fatalf("drained report %v", rep)
	}
	if is := rep["issues"].(map[string]any); is["timestamp_mismatch"] != 0.0 || is["count_mismatch"] != 0.0 || len(is) != 4 {
		t.Fatalf("issues %v", is)
	}

	// The pipeline's lastAccessed of /acc/c moves 6 minutes later: the
	// counts still match, the timestamps do not.
	shiftLastSeen(t, dir, "/acc/c", 6*time.Minute)
	rep = waitCompare(t, c, func(r map[string]any) bool { return r["diffsTotal"] == 1.0 })
	d := rep["diffs"].([]any)[0].(map[string]any)
	if d["path"] != "/acc/c" || d["issue"] != "timestamp_mismatch" || d["lastAccessedSkewMs"] != float64(6*time.Minute/time.Millisecond) ||
		d["d1Requests"] != 3.0 || d["doRequests"] != 3.0 {
		t.Fatalf("diff %v", d)
	}
	if rep["d1Paths"] != 3.0 || rep["doPaths"] != 3.0 || rep["matchedPaths"] != 2.0 || rep["issues"].(map[string]any)["timestamp_mismatch"] != 1.0 {
		t.Fatalf("report %v", rep)
	}

	// The CLI shows the path counts and the new kind, and exits non-zero
	// below --min-accuracy (the timestamp check counts).
	var out bytes.Buffer
	err := run(context.Background(), []string{"migrate", "compare", "--server", c.admin, "--data-dir", dir}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "below") {
		t.Fatalf("CLI compare: %v\n%s", err, out.String())
	}
	for _, want := range []string{"3 paths (pipeline 3, legacy 3)", "timestamp_mismatch 1 (lastAccessed within ±5m0s)", "SKEW", "+360s  /acc/c"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("CLI output lacks %q:\n%s", want, out.String())
		}
	}

	// Legacy-routed /paths (0% new by default): no statusClasses, no
	// latency; the new read path has both.
	items, src := pathItems(t, c, "/api/admin/paths")
	if src != "do-legacy" || len(items) != 3 {
		t.Fatalf("legacy /paths: %s %v", src, items)
	}
	for _, it := range items {
		for _, k := range []string{"statusClasses", "latency"} {
			if _, ok := it[k]; ok {
				t.Errorf("legacy item has %s: %v", k, it)
			}
		}
		if it["path"] == "/acc/c" && (it["requestCount"] != 3.0 || it["errorCount"] != 1.0 || it["clientErrorCount"] != 1.0 || it["lastAccessed"] == nil) {
			t.Errorf("legacy item %v", it)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		v2, src := pathItems(t, c, "/api/admin/paths-v2")
		if len(v2) == 3 {
			if src == "do-legacy" || v2[0]["statusClasses"] == nil || v2[0]["latency"] == nil {
				t.Fatalf("v2 /paths: %s %v", src, v2)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v2 /paths after 60s: %s %v", src, v2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitCompare runs GET /api/admin/paths/compare until ok accepts the report
// (at most 60 s) and returns it.
func waitCompare(t *testing.T, c *child, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out := c.do("GET", "/api/admin/paths/compare", "", nil, nil)
		rep, _ := out["data"].(map[string]any)
		if code == 200 && ok(rep) {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("compare not as expected after 60s: %d %v", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shiftLastSeen moves the pipeline's latest event time of path by d in the
// server's SQLite hourly rows (the running server keeps writing to the same
// file; SQLite's locking serialises the two writers).
func shiftLastSeen(t *testing.T, dataDir, path string, d time.Duration) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "pathstats.db")+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE path_stats_hourly SET last_seen_ms = last_seen_ms + ? WHERE path = ?`, d.Milliseconds(), path)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("shifted %d rows of %s, want 1", n, path)
	}
}

// pathItems reads a path list as raw JSON objects and its data source.
func pathItems(t *testing.T, c *child, path string) ([]map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var body struct {
		Data     []map[string]any `json:"data"`
		Metadata struct {
			DataSource string `json:"dataSource"`
		} `json:"metadata"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(data, &body) != nil {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, data)
	}
	return body.Data, body.Metadata.DataSource
}
