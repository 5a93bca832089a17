package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/pathstats/pathstats/sqlite"
)

// The test binary doubles as the server: with PATHSTATS_E2E_CHILD set it
// runs `pathstats` with its arguments, so end-to-end tests start a real
// separate process they can SIGTERM or kill -9.
func TestMain(m *testing.M) {
	if os.Getenv("PATHSTATS_E2E_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "pathstats:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is a running `pathstats serve` process.
type child struct {
	t       *testing.T
	cmd     *exec.Cmd
	dataDir string
	admin   string // base URL
	gateway string // base URL, "" when off
	token   string
	logs    *testutil.LogBuffer
	done    chan error
}

// startServe starts `pathstats serve` on free ports with dataDir and extra
// args, and waits until it is ready.
func startServe(t *testing.T, dataDir string, args ...string) *child {
	t.Helper()
	_ = os.Remove(filepath.Join(dataDir, "serve.json"))
	all := append([]string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--flush-interval", "100ms", "--log-level", "debug"}, args...)
	cmd := exec.Command(os.Args[0], all...)
	cmd.Env = append(os.Environ(), "PATHSTATS_E2E_CHILD=1")
	c := &child{t: t, cmd: cmd, dataDir: dataDir, logs: &testutil.LogBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", c.logs.String())
		}
	})
	c.waitReady()
	return c
}

func (c *child) waitReady() {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.done:
			c.done <- err
			c.t.Fatalf("server exited at start: %v\n%s", err, c.logs.String())
		default:
		}
		if af, err := readAddrFile(c.dataDir); err == nil && af.PID == c.cmd.Process.Pid {
			c.admin = "http://" + af.Admin
			if af.Gateway != "" {
				c.gateway = "http://" + af.Gateway
			}
			tok, err := os.ReadFile(filepath.Join(c.dataDir, "admin-token"))
			if err != nil {
				c.t.Fatal(err)
			}
			c.token = strings.TrimSpace(string(tok))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("server not ready in 2m:\n%s", c.logs.String())
}

// stop sends SIGTERM and waits for a clean exit.
func (c *child) stop() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Fatalf("server exit: %v\n%s", err, c.logs.String())
		}
	case <-time.After(2 * time.Minute):
		c.t.Fatal("server did not stop in 2m")
	}
}

// kill9 kills the server without any chance to flush.
func (c *child) kill9() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// do sends an authenticated request to the admin listener.
func (c *child) do(method, path, contentType string, body []byte, hdr map[string]string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.admin+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

// sqlTotals opens the server's SQLite file and sums requests per (proxy,
// path) over all hours.
func sqlTotals(t *testing.T, dataDir string) map[string]pathstats.PathTotal {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "pathstats.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.PathTotals(context.Background(), 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]pathstats.PathTotal{}
	for _, r := range rows {
		out[r.ProxyID+" "+r.Path] = r
	}
	return out
}

func sumRequests(m map[string]pathstats.PathTotal) int64 {
	var n int64
	for _, r := range m {
		n += r.Requests
	}
	return n
}

// ndjson renders events as an NDJSON body.
func ndjson(events ...map[string]any) []byte {
	var b bytes.Buffer
	for _, e := range events {
		data, _ := json.Marshal(e)
		b.Write(data)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// metric reads one unlabelled metric value from /metrics (-1 when absent).
func (c *child) metric(name string) float64 {
	c.t.Helper()
	resp, err := http.Get(c.admin + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscanf(v, "%g", &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// waitMetric waits until a metric has the wanted value, failing after d.
func (c *child) waitMetric(name string, want float64, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := c.metric(name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s = %v after %s, want %v", name, got, d, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
