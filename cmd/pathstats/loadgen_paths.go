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

// runVisibility measures how long a request through the gateway takes to
// show in the read path: probes with unique paths are sent through the
// gateway at an interval, and each is polled in /paths-v2 until it appears.
func runVisibility(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen visibility", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./pathstats-data", "data dir of the server (gateway must be on)")
	probes := fs.Int("probes", 40, "number of probes")
	every := fs.Duration("every", 300*time.Millisecond, "time between probes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	af, err := runningServer(*dataDir)
	if err != nil {
		return err
	}
	if af.Gateway == "" {
		return fmt.Errorf("the server runs no gateway (use --upstream or --demo)")
	}
	base, token, err := serverAndToken("", *dataDir)
	if err != nil {
		return err
	}
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	var mu sync.Mutex
	var delays []time.Duration
	var wg sync.WaitGroup
	for i := 0; i < *probes; i++ {
		name := fmt.Sprintf("vis%s%c%c", letters(run), 'a'+rune(i/26), 'a'+rune(i%26))
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := http.Get("http://" + af.Gateway + "/probe/" + name)
			if err != nil {
				return
			}
			resp.Body.Close()
			for time.Since(start) < time.Minute && ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/admin/paths-v2?limit=1&q="+name, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				if r, err := http.DefaultClient.Do(req); err == nil {
					data, _ := io.ReadAll(r.Body)
					r.Body.Close()
					if bytes.Contains(data, []byte(`"total":1`)) {
						mu.Lock()
						delays = append(delays, time.Since(start))
						mu.Unlock()
						return
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		time.Sleep(*every)
	}
	wg.Wait()
	slices.Sort(delays)
	if len(delays) < *probes {
		return fmt.Errorf("only %d of %d probes became visible within a minute", len(delays), *probes)
	}
	pct := func(q float64) time.Duration {
		return delays[min(int(q*float64(len(delays))), len(delays)-1)].Round(time.Millisecond)
	}
	fmt.Fprintf(stdout, "probes=%d visible in /paths-v2 after: p50=%s p99=%s max=%s\n", len(delays), pct(.5), pct(.99), pct(1))
	return nil
}

// letters maps hex digits to letters so a probe path has no id-like segment.
func letters(hex string) string {
	b := []byte(hex)
	for i, c := range b {
		if c >= '0' && c <= '9' {
			b[i] = 'g' + (c - '0')
		}
	}
	return string(b)
}
