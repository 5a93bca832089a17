package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/s3test"
	"github.com/pathstats/pathstats/sqlite"
)

// hourRows reads one hour's rows from the server's SQLite file.
func hourRows(t *testing.T, dataDir string, hour int64) []pathstats.HourlyRow {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "pathstats.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.HourRows(context.Background(), hour)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// rowCounts renders rows without their UpdatedAt (a restore stamps it).
func rowCounts(rows []pathstats.HourlyRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%s|%s|%v\n", r.Path, r.ProxyID, r.Counts)
	}
	return b.String()
}

// TestArchiveAndRestore ingests an old hour under a long retention, then
// restarts with --retention 25h: the elected archiver moves the hour to
// Parquet in the archive and out of SQL; `pathstats archive restore` brings
// it back identical, and the hold keeps it in SQL.
func TestArchiveAndRestore(t *testing.T) {
	archiveRoundTrip(t, "")
}

// TestArchiveOnS3 is the same round trip on a real S3-compatible server.
func TestArchiveOnS3(t *testing.T) {
	if os.Getenv(s3test.EnvBinary) == "" {
		t.Skip(s3test.EnvBinary + " not set")
	}
	archiveRoundTrip(t, s3test.Start(t))
}

func archiveRoundTrip(t *testing.T, bucketURL string) {
	dir := t.TempDir()
	extra := []string{"--legacy", "off"}
	if bucketURL != "" {
		extra = append(extra, "--archive", bucketURL)
	}
	c := startServe(t, dir, append([]string{"--retention", "48h"}, extra...)...)
	old := time.Now().Add(-30 * time.Hour)
	oldHour := pathstats.HourBucket(old)
	var evs []map[string]any
	for i := range 300 {
		evs = append(evs, map[string]any{"timestamp": old.UnixMilli(), "path": fmt.Sprintf("/old/%c", 'a'+i%7), "status": []int{200, 404, 503}[i%3], "latencyMs": i % 40})
		evs = append(evs, map[string]any{"path": fmt.Sprintf("/new/%c", 'a'+i%5), "status": 200})
	}
	if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", ndjson(evs...), nil); code != http.StatusAccepted {
		t.Fatalf("ingest: %d %v", code, out)
	}
	c.waitMetric("pathstats_aggregator_consumer_lag_messages", 0, 90*time.Second)
	c.stop()
	before := hourRows(t, dir, oldHour)
	if len(before) != 7 {
		t.Fatalf("old hour has %d rows before archiving, want 7", len(before))
	}

	c = startServe(t, dir, append([]string{"--retention", "25h", "--archive-interval", "1s"}, extra...)...)
	var listed struct {
		Hours []struct {
			Hour     int64 `json:"hour"`
			Rows     int64 `json:"rows"`
			Requests int64 `json:"requests"`
		} `json:"hours"`
	}
	var last map[string]any
	defer func() {
		if t.Failed() {
			t.Logf("last list answer: %v", last)
		}
	}()
	waitFor(t, 90*time.Second, func() bool {
		code, out := c.do("GET", "/api/admin/archive", "", nil, nil)
		if code != 200 {
			t.Fatalf("list: %d %v", code, out)
		}
		decodeData(t, out, &listed)
		last = out
		return len(listed.Hours) == 1
	}, "the old hour in the archive")
	if h := listed.Hours[0]; h.Hour != oldHour || h.Rows != 7 || h.Requests != 300 {
		t.Fatalf("archived %+v, want hour %d with 7 rows and 300 requests", h, oldHour)
	}
	if rows := hourRows(t, dir, oldHour); len(rows) != 0 {
		t.Fatalf("archived hour still has %d rows in SQL", len(rows))
	}
	if n := sumRequests(sqlTotals(t, dir)); n != 300 {
		t.Fatalf("SQL keeps %d requests, want the 300 recent ones", n)
	}
	if bucketURL == "" {
		parts, _ := filepath.Glob(filepath.Join(dir, "archive", "hourly", "date=*", "hour=*", "part-*.parquet"))
		if len(parts) != 1 || !strings.Contains(parts[0], time.Unix(oldHour, 0).UTC().Format("date=2006-01-02")) {
			t.Fatalf("parquet parts %v", parts)
		}
	}

	// Bad parameters are 400s.
	for _, q := range []string{"", "?from=2026-01-01", "?from=yesterday&to=2026-01-02", "?from=2026-01-02&to=2026-01-01", "?from=2026-01-01&to=2026-01-02&hold=-1h"} {
		if code, out := c.do("POST", "/api/admin/archive/restore"+q, "", nil, nil); code != http.StatusBadRequest || out["error"] != "INVALID_PARAMETER" {
			t.Errorf("restore%s: %d %v", q, code, out)
		}
	}

	// Restore through the CLI: identical rows, kept by the hold.
	from := time.Unix(oldHour, 0).UTC().Format("2006-01-02T15")
	to := time.Unix(oldHour+3600, 0).UTC().Format("2006-01-02T15")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"archive", "restore", "--data-dir", dir, "--from", from, "--to", to}, &out, &errOut); err != nil {
		t.Fatalf("archive restore: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), `"rows":7`) {
		t.Fatalf("restore output %q", out.String())
	}
	after := hourRows(t, dir, oldHour)
	if rowCounts(after) != rowCounts(before) {
		t.Fatalf("restored rows differ:\n%s\nwant\n%s", rowCounts(after), rowCounts(before))
	}
	time.Sleep(2500 * time.Millisecond) // two archiver rounds: the hold keeps the hour in SQL
	if rows := hourRows(t, dir, oldHour); len(rows) != 7 {
		t.Fatalf("held hour has %d rows, want 7", len(rows))
	}
	out.Reset()
	if err := run(context.Background(), []string{"archive", "list", "--data-dir", dir}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "0 hours") {
		t.Fatalf("list after restore: %s", out.String())
	}
	c.stop()
}

// decodeData decodes the "data" of an envelope answer into v.
func decodeData(t *testing.T, env map[string]any, v any) {
	t.Helper()
	b, err := json.Marshal(env["data"])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseHour(f *testing.F) {
	for _, s := range []string{"2026-11-01", "2026-11-01T13", "2026-11-01T13:00:00Z", "", "x", "2026-13-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseHour(s)
		if err == nil && tm.IsZero() && s != "0001-01-01" && !strings.HasPrefix(s, "0001-01-01") {
			t.Fatalf("%q parsed to the zero time", s)
		}
	})
}
