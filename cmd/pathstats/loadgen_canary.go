package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// runCanaryLoad steps the canary percentage while sending a bounded request
// rate to GET /api/admin/paths from many client IPs (as X-Forwarded-For; the
// server must trust 127.0.0.1 for that header), and reports per step the
// share answered by the new path and the non-2xx count.
func runCanaryLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen canary", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./pathstats-data", "data dir of the server")
	steps := fs.String("steps", "0,1,10,50,100,0", "percentages")
	per := fs.Duration("step-duration", 5*time.Second, "time at each step")
	rate := fs.Int("rate", 200, "requests/s")
	clients := fs.Int("ips", 1000, "distinct client IPs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, token, err := serverAndToken("", *dataDir)
	if err != nil {
		return err
	}
	c := &adminClient{base: base, token: token, http: &http.Client{Timeout: 10 * time.Second}}
	rng := rand.New(rand.NewPCG(42, 7))
	ips := make([]string, *clients)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{byte(11 + rng.IntN(200)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))}).String()
	}
	for _, s := range strings.Split(*steps, ",") {
		pct, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("--steps: %q", s)
		}
		if status, body, err := c.send(ctx, "PUT", "/api/admin/paths/migration-config", map[string]any{"newAPIPercentage": pct}, nil); err != nil || status != 200 {
			return fmt.Errorf("set %v%%: %d %s %v", pct, status, body, err)
		}
		time.Sleep(1100 * time.Millisecond) // every node applies a change within 1 s
		var total, newPath, bad int
		tick := time.NewTicker(time.Second / time.Duration(*rate))
		end := time.Now().Add(*per)
		for time.Now().Before(end) {
			<-tick.C
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/admin/paths?limit=10", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("X-Forwarded-For", ips[rng.IntN(len(ips))])
			resp, err := c.http.Do(req)
			total++
			if err != nil {
				bad++
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				bad++
			}
			if src := resp.Header.Get("X-Pathstats-Data-Source"); src == "kv-snapshot" || src == "d1-fallback" {
				newPath++
			}
		}
		tick.Stop()
		share := 100 * float64(newPath) / float64(max(total, 1))
		fmt.Fprintf(stdout, "step %6.2f%%: requests=%d new-path share=%6.2f%% (off by %+.2f points) non-2xx=%d\n", pct, total, share, share-pct, bad)
	}
	return nil
}
