package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// runSeed posts events that create `paths` distinct paths over 4 proxies,
// spread over the last 24 hours, for read-path benchmarks.
func runSeed(ctx context.Context, server, token string, paths int, stdout io.Writer) error {
	client := &http.Client{Timeout: 60 * time.Second}
	now := time.Now()
	const perReq = 5000
	for start := 0; start < paths; start += perReq {
		var body bytes.Buffer
		for i := start; i < min(start+perReq, paths); i++ {
			ts := now.Add(-time.Duration(i%23) * time.Hour).UnixMilli()
			fmt.Fprintf(&body, `{"timestamp":%d,"path":"/bench/res%d/items","status":%d,"latencyMs":%d,"proxyId":"p%d"}`+"\n",
				ts, i, 200+100*(i%4), i%300, i%4)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+"/api/v1/events", &body)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Idempotency-Key", fmt.Sprintf("seed-%d-%d", paths, start))
		if !doRequest(client, req, http.StatusAccepted) {
			return fmt.Errorf("seed request at %d failed", start)
		}
	}
	fmt.Fprintf(stdout, "seeded %d paths\n", paths)
	return nil
}

// runPathsLoad sends a mix of /paths-v2 queries (no filter, q, proxyId, deep
// pages) and GET /healthz from the same clients, and reports the p50/p99 of
// each: healthz is the HTTP floor the read path is held against.
func runPathsLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen paths", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "admin base URL (default: from <data-dir>/serve.json)")
	dataDir := fs.String("data-dir", "./pathstats-data", "data dir of the server")
	conc := fs.Int("concurrency", 64, "concurrent clients")
	dur := fs.Duration("duration", 20*time.Second, "how long to run")
	seed := fs.Int("seed", 0, "first ingest this many distinct paths")
	endpoint := fs.String("endpoint", "/api/admin/paths-v2", "path list endpoint")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, token, err := serverAndToken(*server, *dataDir)
	if err != nil {
		return err
	}
	if *seed > 0 {
		if err := runSeed(ctx, base, token, *seed, stdout); err != nil {
			return err
		}
	}
	queries := []string{"limit=50", "limit=50&page=2", "limit=200&page=400", "q=res12", "q=RES9&limit=20",
		"proxyId=p1", "proxyId=p2&page=100", "q=items&proxyId=p3&page=5", "q=nothing-matches"}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2}, Timeout: 30 * time.Second}
	var mu sync.Mutex
	var pathsLat, healthLat []time.Duration
	var failed int
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	var wg sync.WaitGroup
	for g := 0; g < *conc; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			var pl, hl []time.Duration
			bad := 0
			for ctx.Err() == nil {
				health := rng.IntN(4) == 0
				url := base + "/healthz"
				if !health {
					url = base + *endpoint + "?" + queries[rng.IntN(len(queries))]
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				t := time.Now()
				ok := doRequest(client, req, http.StatusOK)
				d := time.Since(t)
				if ctx.Err() != nil {
					break
				}
				if !ok {
					bad++
				}
				if health {
					hl = append(hl, d)
				} else {
					pl = append(pl, d)
				}
			}
			mu.Lock()
			pathsLat, healthLat, failed = append(pathsLat, pl...), append(healthLat, hl...), failed+bad
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	slices.Sort(pathsLat)
	slices.Sort(healthLat)
	pct := func(l []time.Duration, q float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(int(q*float64(len(l))), len(l)-1)].Round(time.Microsecond)
	}
	fmt.Fprintf(stdout, "clients=%d duration=%s failed=%d\n", *conc, *dur, failed)
	fmt.Fprintf(stdout, "%s: n=%d rps=%.0f p50=%s p99=%s\n", *endpoint, len(pathsLat), float64(len(pathsLat))/dur.Seconds(), pct(pathsLat, .5), pct(pathsLat, .99))
	fmt.Fprintf(stdout, "/healthz: n=%d p50=%s p99=%s\n", len(healthLat), pct(healthLat, .5), pct(healthLat, .99))
	if p := pct(healthLat, .99); p > 0 {
		fmt.Fprintf(stdout, "paths p99 / healthz p99 = %.2f\n", float64(pct(pathsLat, .99))/float64(p))
	}
	if failed > 0 {
		return fmt.Errorf("%d requests failed", failed)
	}
	return nil
}
