package main

import (
	"bufio"
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
	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/pathstats/pathstats/lease"
	"github.com/pathstats/pathstats/redis"
)

// jobAnswer is the job of a POST or GET answer.
type jobAnswer struct {
	ID       string `json:"id"`
	Op       string `json:"op"`
	State    string `json:"state"`
	Node     string `json:"node"`
	Progress *struct {
		Op    string `json:"op"`
		Done  int    `json:"done"`
		Total int    `json:"total"`
		Rows  int64  `json:"rows"`
	} `json:"progress"`
	Result *struct {
		Hours    int   `json:"hours"`
		Parts    int   `json:"parts"`
		Rows     int64 `json:"rows"`
		Requests int64 `json:"requests"`
	} `json:"result"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt"`
}

// startJobHTTP POSTs path and expects 202 with a running or finished job
// and its Location. It tries again while the answer is 409 (the elected
// archiver's own run holds the lease) or 503 (a backend coming back).
func startJobHTTP(t *testing.T, c *child, path string) jobAnswer {
	t.Helper()
	var resp *http.Response
	var env map[string]any
	waitFor(t, 60*time.Second, func() bool {
		req, err := http.NewRequest("POST", c.admin+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		env = nil
		_ = json.NewDecoder(resp.Body).Decode(&env)
		return resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusServiceUnavailable
	}, "POST "+path+" to start a job")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %d %v", path, resp.StatusCode, env)
	}
	var out struct {
		Job jobAnswer `json:"job"`
	}
	decodeData(t, env, &out)
	if len(out.Job.ID) != 16 || resp.Header.Get("Location") != "/api/admin/jobs/"+out.Job.ID || out.Job.Node == "" {
		t.Fatalf("POST %s: job %+v, Location %q", path, out.Job, resp.Header.Get("Location"))
	}
	return out.Job
}

// waitJob polls a job until it is no longer running.
func waitJob(t *testing.T, c *child, id string) jobAnswer {
	t.Helper()
	var job jobAnswer
	waitFor(t, 90*time.Second, func() bool {
		code, env := c.do("GET", "/api/admin/jobs/"+id, "", nil, nil)
		if code != http.StatusOK {
			t.Fatalf("GET job %s: %d %v", id, code, env)
		}
		var out struct {
			Job jobAnswer `json:"job"`
		}
		decodeData(t, env, &out)
		job = out.Job
		return job.State != "running"
	}, "job "+id+" to end")
	return job
}

// ingestOldHours runs a server with a long retention, ingests two old
// hours (7 paths / 300 requests and 5 paths / 100 requests) and stops it;
// it returns the two hours.
func ingestOldHours(t *testing.T, dir string, extra ...string) (int64, int64) {
	t.Helper()
	c := startServe(t, dir, append([]string{"--retention", "48h", "--legacy", "off"}, extra...)...)
	h1, h2 := time.Now().Add(-31*time.Hour), time.Now().Add(-30*time.Hour)
	var evs []map[string]any
	for i := range 300 {
		evs = append(evs, map[string]any{"timestamp": h1.UnixMilli(), "path": fmt.Sprintf("/a/%c", 'a'+i%7), "status": 200})
	}
	for i := range 100 {
		evs = append(evs, map[string]any{"timestamp": h2.UnixMilli(), "path": fmt.Sprintf("/b/%c", 'a'+i%5), "status": 503})
	}
	if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", ndjson(evs...), nil); code != http.StatusAccepted {
		t.Fatalf("ingest: %d %v", code, out)
	}
	c.waitMetric("pathstats_aggregator_consumer_lag_messages", 0, 60*time.Second)
	c.stop()
	return pathstats.HourBucket(h1), pathstats.HourBucket(h2)
}

// waitArchivedHours waits until the archive lists n hours.
func waitArchivedHours(t *testing.T, c *child, n int) {
	t.Helper()
	waitFor(t, 90*time.Second, func() bool {
		code, out := c.do("GET", "/api/admin/archive", "", nil, nil)
		if code != http.StatusOK {
			t.Fatalf("list: %d %v", code, out)
		}
		var listed struct {
			Hours []any `json:"hours"`
		}
		decodeData(t, out, &listed)
		return len(listed.Hours) == n
	}, fmt.Sprintf("%d hours in the archive", n))
}

// TestArchiveJobs: restore and run through the real server are jobs (202,
// Location, progress, result) followed to completion with the right
// totals; GET /api/admin/jobs lists them; bad ids and a hold below 1s are
// 400s; the NDJSON stream is still there when asked for; the CLI starts and
// follows jobs and re-attaches to one.
func TestArchiveJobs(t *testing.T) {
	dir := t.TempDir()
	h1, h2 := ingestOldHours(t, dir)
	c := startServe(t, dir, "--retention", "25h", "--archive-interval", "1h", "--legacy", "off")
	waitArchivedHours(t, c, 2) // the elected archiver's first run
	from := time.Unix(h1, 0).UTC().Format("2006-01-02T15")
	to := time.Unix(h2+3600, 0).UTC().Format("2006-01-02T15")

	for _, hold := range []string{"500ms", "1ns", "0s", "2161h", "soon"} {
		code, out := c.do("POST", "/api/admin/archive/restore?from="+from+"&to="+to+"&hold="+hold, "", nil, nil)
		msg, _ := out["message"].(string)
		if code != http.StatusBadRequest || out["error"] != "INVALID_PARAMETER" || !strings.Contains(msg, "hold") || !strings.Contains(msg, "between 1s and 2160h") {
			t.Errorf("hold=%s: %d %v", hold, code, out)
		}
	}

	restoreJob := startJobHTTP(t, c, "/api/admin/archive/restore?from="+from+"&to="+to+"&hold=1s")
	if restoreJob.Op != "restore" {
		t.Fatalf("restore job %+v", restoreJob)
	}
	job := waitJob(t, c, restoreJob.ID)
	if job.State != "succeeded" || job.Error != nil || job.Result == nil || job.Result.Hours != 2 || job.Result.Parts != 2 ||
		job.Result.Rows != 12 || job.Result.Requests != 400 || job.FinishedAt == nil {
		t.Fatalf("restore job ended %+v (result %+v)", job, job.Result)
	}
	if p := job.Progress; p == nil || p.Op != "restore" || p.Done != 2 || p.Total != 2 || p.Rows != 12 {
		t.Fatalf("restore progress %+v", job.Progress)
	}
	if n := len(hourRows(t, dir, h1)) + len(hourRows(t, dir, h2)); n != 12 {
		t.Fatalf("%d rows back in SQL, want 12", n)
	}

	// The holds (1s from each hour's restore) are over: a run archives both
	// hours again.
	time.Sleep(time.Until(job.FinishedAt.Add(1100 * time.Millisecond)))
	runJob := startJobHTTP(t, c, "/api/admin/archive/run")
	job = waitJob(t, c, runJob.ID)
	if job.State != "succeeded" || job.Result == nil || job.Result.Hours != 2 || job.Result.Rows != 12 || job.Result.Requests != 400 {
		t.Fatalf("run job ended %+v (result %+v)", job, job.Result)
	}
	if n := len(hourRows(t, dir, h1)) + len(hourRows(t, dir, h2)); n != 0 {
		t.Fatalf("%d rows left in SQL after the run", n)
	}
	waitArchivedHours(t, c, 2)

	// The list has both, newest first.
	code, env := c.do("GET", "/api/admin/jobs", "", nil, nil)
	var listed struct {
		Jobs []jobAnswer `json:"jobs"`
	}
	decodeData(t, env, &listed)
	if code != 200 || len(listed.Jobs) != 2 || listed.Jobs[0].ID != runJob.ID || listed.Jobs[1].ID != restoreJob.ID ||
		listed.Jobs[1].State != "succeeded" {
		t.Fatalf("jobs list: %d %+v", code, listed.Jobs)
	}
	for id, want := range map[string]int{"nope": 400, "0123456789ABCDEF": 400, "0123456789abcdef0": 400, "0123456789abcdef": 404} {
		if code, out := c.do("GET", "/api/admin/jobs/"+id, "", nil, nil); code != want {
			t.Errorf("GET job %s: %d %v, want %d", id, code, out, want)
		}
	}

	// NDJSON on request: the job, then its result.
	lines := streamJob(t, c, "/api/admin/archive/restore?from="+from+"&to="+to+"&hold=1h")
	if len(lines) < 2 || lines[0]["job"] == nil || !strings.Contains(fmt.Sprint(lines[len(lines)-1]["result"]), "rows:12") {
		t.Fatalf("stream: %v", lines)
	}

	// The CLI starts a job and follows it; `archive job ID` re-attaches.
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"archive", "run", "--data-dir", dir}, &out, &errOut); err != nil {
		t.Fatalf("archive run: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), `"hours":0`) || !strings.Contains(out.String(), `"held":2`) || !strings.Contains(errOut.String(), "succeeded") {
		t.Fatalf("archive run printed %q / %q", out.String(), errOut.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"archive", "job", "--data-dir", dir, restoreJob.ID}, &out, &errOut); err != nil {
		t.Fatalf("archive job: %v", err)
	}
	if !strings.Contains(out.String(), `"rows":12`) || !strings.Contains(out.String(), `"requests":400`) {
		t.Fatalf("archive job printed %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"archive", "jobs", "--data-dir", dir}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "succeeded") != 4 || !strings.Contains(out.String(), restoreJob.ID) {
		t.Fatalf("archive jobs printed %q", out.String())
	}
	c.stop()
}

// streamJob POSTs with Accept: application/x-ndjson and returns the lines.
func streamJob(t *testing.T, c *child, path string) []map[string]any {
	t.Helper()
	req, err := http.NewRequest("POST", c.admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("stream %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var lines []map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// timedDo sends a request and returns its status, answer and duration.
func timedDo(c *child, method, path string) (int, map[string]any, time.Duration) {
	start := time.Now()
	code, out := c.do(method, path, "", nil, nil)
	return code, out, time.Since(start)
}

// answerLimit bounds an admin answer with a backend down: generous for a
// busy machine, far below the 60 s the lease wait used to take.
const answerLimit = 15 * time.Second

// TestArchiveJobsBounded runs the server on Redis through a proxy that can
// cut it: while another contender holds the archive-writer lease, run and
// restore answer 409 at once; with the KV store cut off they answer 503
// UNAVAILABLE within seconds, and a job of this node is still readable.
func TestArchiveJobsBounded(t *testing.T) {
	redisBase := os.Getenv("PATHSTATS_TEST_REDIS")
	if redisBase == "" {
		t.Skip("PATHSTATS_TEST_REDIS is needed")
	}
	prefix := fmt.Sprintf("jobs%d:", time.Now().UnixNano())
	proxy := testutil.StartCutProxy(t, hostPort(t, redisBase))
	c := startServe(t, t.TempDir(), "--kv", "redis://"+proxy.Addr()+"/0?prefix="+prefix, "--legacy", "off")
	restore := "/api/admin/archive/restore?from=2020-01-01&to=2020-01-02"
	done := waitJob(t, c, startJobHTTP(t, c, "/api/admin/archive/run").ID)
	if done.State != "succeeded" {
		t.Fatalf("run: %+v", done)
	}

	// Another contender (a run on another node) holds the writer lease.
	kv, err := redis.Open(context.Background(), redisBase, redis.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	other := lease.New(kv, "archive-writer", "other-node", time.Minute)
	waitFor(t, 60*time.Second, func() bool {
		ok, err := other.TryAcquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}, "the test to take the archive-writer lease")
	for _, path := range []string{"/api/admin/archive/run", restore} {
		code, out, took := timedDo(c, "POST", path)
		if code != http.StatusConflict || out["error"] != "CONFLICT" || took > answerLimit {
			t.Fatalf("POST %s with the lease held elsewhere: %d %v after %s", path, code, out, took)
		}
	}
	if err := other.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, c, startJobHTTP(t, c, restore).ID); j.State != "succeeded" || j.Result == nil || j.Result.Hours != 0 {
		t.Fatalf("restore after the release: %+v", j)
	}

	// The KV store gone: 503 within seconds, never a 409 after a minute.
	proxy.Cut()
	for _, path := range []string{"/api/admin/archive/run", restore, "/api/admin/jobs", "/api/admin/jobs/0123456789abcdef"} {
		method := "POST"
		if strings.HasPrefix(path, "/api/admin/jobs") {
			method = "GET"
		}
		code, out, took := timedDo(c, method, path)
		if code != http.StatusServiceUnavailable || out["error"] != "UNAVAILABLE" || took > answerLimit {
			t.Fatalf("%s %s with the KV store down: %d %v after %s", method, path, code, out, took)
		}
		t.Logf("%s %s with the KV store down: %d after %s", method, path, code, took.Round(time.Millisecond))
	}
	if code, out := c.do("GET", "/api/admin/jobs/"+done.ID, "", nil, nil); code != http.StatusOK {
		t.Fatalf("this node's job with the KV store down: %d %v", code, out)
	}
	proxy.Restore()
	if j := waitJob(t, c, startJobHTTP(t, c, "/api/admin/archive/run").ID); j.State != "succeeded" {
		t.Fatalf("run after the KV store is back: %+v", j)
	}
	c.stop()
}

// TestArchiveBroken: an archive that cannot be read answers 503
// UNAVAILABLE, not 200 with no hours, and the message names no file system
// path.
func TestArchiveBroken(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir, "--legacy", "off")
	arc := filepath.Join(dir, "archive")
	manifest := filepath.Join(arc, "manifests", "date=2020-01-01", "hour=05.json")
	write := func(data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(manifest), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(manifest, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	expect503 := func(what string) {
		t.Helper()
		code, out := c.do("GET", "/api/admin/archive", "", nil, nil)
		msg, _ := out["message"].(string)
		if code != http.StatusServiceUnavailable || out["error"] != "UNAVAILABLE" || msg == "" || strings.Contains(msg, dir) {
			t.Errorf("%s: %d %v", what, code, out)
		}
	}
	write(`{"hour": 15778`)
	expect503("truncated manifest")
	write(`{"hour":1577854800,"revision":1,"parts":[{"id":"p1","key":"hourly/date=2020-01-01/hour=05/part-p1.parquet","rows":3,"bytes":100,"sha256":"00"}]}`)
	expect503("part listed but missing")
	part := filepath.Join(arc, "hourly", "date=2020-01-01", "hour=05", "part-p1.parquet")
	if err := os.MkdirAll(filepath.Dir(part), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(part, bytes.Repeat([]byte{1}, 99), 0o600); err != nil {
		t.Fatal(err)
	}
	expect503("part of the wrong size")
	if err := os.RemoveAll(arc); err != nil {
		t.Fatal(err)
	}
	expect503("archive directory gone")
	c.stop()
}
