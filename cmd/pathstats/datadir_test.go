package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats/internal/datadir"
)

// runCLI runs `pathstats args…` as a child process and returns its exit
// code and combined output; it fails the test if the command does not
// finish within 60 s.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PATHSTATS_E2E_CHILD=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("pathstats %s did not finish in 60s:\n%s", strings.Join(args, " "), out)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// TestSecondServeSameDataDir: a second serve on a data dir in use exits 1
// naming the pid that holds it, before opening anything, and the first
// server keeps serving with its serve.json untouched.
func TestSecondServeSameDataDir(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir)
	before, err := os.ReadFile(filepath.Join(dir, "serve.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, out := runCLI(t, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-level", "debug")
	want := fmt.Sprintf("data dir %s is in use by pid %d", dir, c.cmd.Process.Pid)
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("second serve: exit %d, output:\n%s\nwant exit 1 and %q", code, out, want)
	}
	if strings.Contains(out, "listening") || strings.Contains(out, "nats") {
		t.Errorf("second serve opened something before giving up:\n%s", out)
	}
	after, err := os.ReadFile(filepath.Join(dir, "serve.json"))
	if err != nil || string(after) != string(before) {
		t.Fatalf("serve.json changed: %q → %q (%v)", before, after, err)
	}
	if code, _ := c.do("GET", "/api/admin/paths-v2", "", nil, nil); code != http.StatusOK {
		t.Fatalf("first server after the second tried: %d", code)
	}
	c.stop()
}

// TestCleanStopRemovesServeJSON: after SIGTERM serve.json is gone and the
// data dir lock is free.
func TestCleanStopRemovesServeJSON(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir)
	if held, err := datadir.InUse(dir); err != nil || !held {
		t.Errorf("data dir lock while serving: held=%v err=%v", held, err)
	}
	c.stop()
	if _, err := os.Stat(filepath.Join(dir, "serve.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve.json after a clean stop: %v", err)
	}
	if held, err := datadir.InUse(dir); err != nil || held {
		t.Errorf("data dir lock after a clean stop: held=%v err=%v", held, err)
	}
}

// TestCLIStaleServeJSON: a CLI command finds the server through serve.json;
// once that server was killed -9, it says there is no server running.
func TestCLIStaleServeJSON(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir)
	code, out := runCLI(t, "migrate", "status", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "newAPIPercentage") {
		t.Fatalf("migrate status against a live server: exit %d\n%s", code, out)
	}
	pid := c.cmd.Process.Pid
	c.kill9()
	if _, err := os.Stat(filepath.Join(dir, "serve.json")); err != nil {
		t.Fatalf("serve.json after kill -9 (the test needs a stale one): %v", err)
	}
	for _, args := range [][]string{{"migrate", "status"}, {"legacy", "stats"}, {"archive", "list"}} {
		code, out := runCLI(t, append(args, "--data-dir", dir)...)
		want := fmt.Sprintf("no server running (stale serve.json from pid %d", pid)
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("%s after kill -9: exit %d, output:\n%s\nwant non-zero and %q", strings.Join(args, " "), code, out, want)
		}
	}
}

// TestRestartAfterKill9FreshAtOnce: a node killed -9 and restarted on its
// data dir takes its snapshot lease back at once, so an event ingested
// after the restart shows in the snapshot within a few snapshot intervals,
// long before the lease it held could have expired.
func TestRestartAfterKill9FreshAtOnce(t *testing.T) {
	const ttl = 120 * time.Second
	dir := t.TempDir()
	args := []string{"--lease-ttl", ttl.String(), "--snapshot-interval", "300ms", "--snapshot-max-age", "1h"}
	c := startServe(t, dir, args...)
	ingestOne(t, c, "/before/kill")
	waitInSnapshot(t, c, "/before/kill", time.Now().Add(60*time.Second))
	killed := time.Now()
	c.kill9()
	c = startServe(t, dir, args...)
	ingestOne(t, c, "/after/restart")
	// The killed node renewed its lease at most ttl/3 before the kill, so
	// a node that waited for it could not take over before killed+2ttl/3.
	waitInSnapshot(t, c, "/after/restart", killed.Add(ttl/2))
	t.Logf("visible %s after the kill", time.Since(killed).Round(time.Millisecond))
	c.stop()
}

// ingestOne posts one event for path through the ingest API.
func ingestOne(t *testing.T, c *child, path string) {
	t.Helper()
	body := ndjson(map[string]any{"path": path, "status": 200, "latencyMs": 3})
	if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", body, nil); code != http.StatusAccepted {
		t.Fatalf("ingest %s: %d %v", path, code, out)
	}
}

// waitInSnapshot polls /paths-v2 until path is served from the KV snapshot
// with one request, failing at deadline.
func waitInSnapshot(t *testing.T, c *child, path string, deadline time.Time) {
	t.Helper()
	for {
		_, a := c.paths(t, "q="+path)
		if a.Metadata.DataSource == "kv-snapshot" && len(a.Data) == 1 && a.Data[0].Path == path && a.Data[0].RequestCount == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not in the snapshot by %s; last answer: %+v", path, deadline.Format(time.RFC3339), a)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNodeIDStableAndOverride: the node id is made once into
// <data-dir>/node-id and names the node in its leases after a restart too;
// --node-id overrides it without touching the file, and a bad one is
// refused.
func TestNodeIDStableAndOverride(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir)
	data, err := os.ReadFile(filepath.Join(dir, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(data))
	if err := datadir.ValidNodeID(id); err != nil {
		t.Fatalf("node-id file: %v", err)
	}
	c.stop()
	c = startServe(t, dir)
	waitLog(t, c, "holder="+id)
	c.stop()
	if again, _ := os.ReadFile(filepath.Join(dir, "node-id")); string(again) != string(data) {
		t.Fatalf("node-id changed across a restart: %q → %q", data, again)
	}
	c = startServe(t, dir, "--node-id", "edge-7")
	waitLog(t, c, "holder=edge-7")
	c.stop()
	if again, _ := os.ReadFile(filepath.Join(dir, "node-id")); string(again) != string(data) {
		t.Fatalf("--node-id rewrote the file: %q → %q", data, again)
	}
	code, out := runCLI(t, "serve", "--data-dir", dir, "--admin-listen", "127.0.0.1:0", "--node-id", "bad id")
	if code != 1 || !strings.Contains(out, `--node-id: node id "bad id"`) {
		t.Fatalf("serve --node-id 'bad id': exit %d\n%s", code, out)
	}
}

// waitLog waits until the server's logs contain s.
func waitLog(t *testing.T, c *child, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(c.logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("logs without %q after 60s:\n%s", s, c.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
