package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runLoadgen drives load against a running server from a separate process:
// "ingest" posts NDJSON event batches, "http" sends GET requests to a URL.
func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "pipeline" {
		return runPipelineLoad(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "canary" {
		return runCanaryLoad(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "visibility" {
		return runVisibility(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "paths" {
		return runPathsLoad(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "ingest" && args[0] != "http") {
		return fmt.Errorf("usage: pathstats loadgen ingest|http|pipeline|paths|visibility|canary [flags]")
	}
	mode := args[0]
	fs := flag.NewFlagSet("loadgen "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "admin base URL (default: from <data-dir>/serve.json)")
	dataDir := fs.String("data-dir", "./pathstats-data", "data dir of the server (for its address and token)")
	target := fs.String("url", "", "http mode: URL to GET")
	conc := fs.Int("concurrency", 8, "concurrent clients")
	dur := fs.Duration("duration", 10*time.Second, "how long to run")
	perReq := fs.Int("events", 1000, "ingest mode: events per request")
	paths := fs.Int("paths", 10_000, "ingest mode: distinct paths")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	base, token, err := serverAndToken(*server, *dataDir)
	if err != nil {
		return err
	}
	*server = base
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2}, Timeout: 30 * time.Second}
	var send func(ctx context.Context, rng *rand.Rand) (events int, ok bool)
	switch mode {
	case "ingest":
		send = ingestSender(client, *server+"/api/v1/events", token, *perReq, *paths)
	case "http":
		if *target == "" {
			return fmt.Errorf("loadgen http: --url is required")
		}
		send = getSender(client, *target, token)
	}
	res := drive(ctx, *conc, *dur, send)
	fmt.Fprintf(stdout, "mode=%s concurrency=%d duration=%s requests=%d failed=%d events=%d\n",
		mode, *conc, res.elapsed.Round(time.Millisecond), res.requests, res.failed, res.events)
	fmt.Fprintf(stdout, "requests/s=%.0f events/s=%.0f p50=%s p99=%s max=%s\n",
		float64(res.requests)/res.elapsed.Seconds(), float64(res.events)/res.elapsed.Seconds(),
		res.percentile(0.50), res.percentile(0.99), res.percentile(1))
	if res.failed > 0 {
		return fmt.Errorf("%d requests failed", res.failed)
	}
	return nil
}

type loadResult struct {
	requests, failed, events int64
	elapsed                  time.Duration
	latencies                []time.Duration
}

func (r *loadResult) percentile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := min(int(q*float64(len(r.latencies))), len(r.latencies)-1)
	return r.latencies[i]
}

// drive runs send from conc goroutines for dur and collects latencies.
func drive(ctx context.Context, conc int, dur time.Duration, send func(context.Context, *rand.Rand) (int, bool)) *loadResult {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var res loadResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	var requests, failed, events atomic.Int64
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
			var lat []time.Duration
			for ctx.Err() == nil {
				t := time.Now()
				n, ok := send(ctx, rng)
				if ctx.Err() != nil && !ok {
					break
				}
				lat = append(lat, time.Since(t))
				requests.Add(1)
				if !ok {
					failed.Add(1)
					continue
				}
				events.Add(int64(n))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		}(uint64(g))
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests, res.failed, res.events = requests.Load(), failed.Load(), events.Load()
	slices.Sort(res.latencies)
	return &res
}

// ingestSender posts NDJSON bodies from a pool built up front, so the load
// process spends its CPU on sending, not on formatting; every request gets
// a fresh Idempotency-Key.
func ingestSender(client *http.Client, url, token string, perReq, paths int) func(context.Context, *rand.Rand) (int, bool) {
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := make([][]byte, 64)
	now := time.Now().UnixMilli()
	for b := range bodies {
		var body bytes.Buffer
		for i := 0; i < perReq; i++ {
			status := 200
			if rng.IntN(50) == 0 {
				status = 500
			}
			fmt.Fprintf(&body, `{"timestamp":%d,"path":"/api/v1/res%d/items","method":"GET","status":%d,"latencyMs":%d,"proxyId":"load"}`+"\n",
				now, rng.IntN(paths), status, rng.IntN(300))
		}
		bodies[b] = body.Bytes()
	}
	var seq atomic.Int64
	prefix := fmt.Sprintf("load-%x", time.Now().UnixNano())
	return func(ctx context.Context, rng *rand.Rand) (int, bool) {
		n := seq.Add(1)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[n%int64(len(bodies))]))
		if err != nil {
			return 0, false
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", prefix, n))
		return perReq, doRequest(client, req, http.StatusAccepted)
	}
}

func getSender(client *http.Client, url, token string) func(context.Context, *rand.Rand) (int, bool) {
	return func(ctx context.Context, _ *rand.Rand) (int, bool) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, false
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return 1, doRequest(client, req, 0)
	}
}

// doRequest sends req and reports success: the wanted status, or any status
// below 500 when want is 0.
func doRequest(client *http.Client, req *http.Request, want int) bool {
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if want != 0 {
		return resp.StatusCode == want
	}
	return resp.StatusCode < 500
}

// serverAndToken finds the admin URL (flag, else <data-dir>/serve.json) and
// the token (PATHSTATS_ADMIN_TOKEN, else <data-dir>/admin-token).
func serverAndToken(server, dataDir string) (string, string, error) {
	token := os.Getenv("PATHSTATS_ADMIN_TOKEN")
	if token == "" {
		b, _ := os.ReadFile(filepath.Join(dataDir, "admin-token"))
		token = strings.TrimSpace(string(b))
	}
	if server == "" {
		af, err := runningServer(dataDir)
		if err != nil {
			return "", "", err
		}
		server = "http://" + af.Admin
	}
	return server, token, nil
}

func readAddrFile(dataDir string) (*addrFile, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, addrFileName))
	if err != nil {
		return nil, fmt.Errorf("no running server found (use --server): %w", err)
	}
	var af addrFile
	if err := jsonUnmarshal(data, &af); err != nil {
		return nil, fmt.Errorf("read %s: %w", addrFileName, err)
	}
	return &af, nil
}
