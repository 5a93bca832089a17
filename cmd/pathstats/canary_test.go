package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/pathstats/pathstats/redis"
)

// routeOf asks GET /api/admin/paths and returns the route reason and the
// data source.
func (c *child) routeOf(t *testing.T) (string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.admin+"/api/admin/paths?limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/paths: %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Pathstats-Route"), resp.Header.Get("X-Pathstats-Data-Source")
}

func putConfig(t *testing.T, c *child, body string) map[string]any {
	t.Helper()
	code, out := c.do("PUT", "/api/admin/paths/migration-config", "application/json", []byte(body), nil)
	if code != 200 {
		t.Fatalf("PUT %s: %d %v", body, code, out)
	}
	return out
}

// TestConfigChangeSeenByOtherNode: two servers share one NATS; a change on
// one routes on the other. The delay (about a second, see the README) is
// logged; the wait only bounds a hang, and migration's
// TestPropagatesToSecondStore shows the change comes by the watch.
func TestConfigChangeSeenByOtherNode(t *testing.T) {
	natsSrv := testutil.MustStartNATS(t, -1)
	a := startServe(t, t.TempDir(), "--queue", natsSrv.ClientURL())
	b := startServe(t, t.TempDir(), "--queue", natsSrv.ClientURL())
	if reason, src := b.routeOf(t); reason != "percentage" || src != "do-legacy" {
		t.Fatalf("default route on b: %s %s", reason, src)
	}
	putConfig(t, a, `{"forceNewAPIIPs":["127.0.0.1"]}`)
	start := time.Now()
	for {
		reason, src := b.routeOf(t)
		if reason == "forced-new" && (src == "kv-snapshot" || src == "d1-fallback") {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("b still routes %s/%s %s after the change on a", reason, src, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("seen on the other node after %s", time.Since(start))
	putConfig(t, a, `{"forceOldAPIIPs":["127.0.0.0/8"]}`)
	deadline := time.Now().Add(time.Minute)
	for reason, _ := b.routeOf(t); reason != "forced-old"; reason, _ = b.routeOf(t) {
		if time.Now().After(deadline) {
			t.Fatal("forceOld (CIDR) over forceNew not applied on b within 1m")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRolloutAdvancesTo100 runs a staged rollout with tiny dwell times on a
// real server while clients use the new path.
func TestRolloutAdvancesTo100(t *testing.T) {
	c := startServe(t, t.TempDir())
	putConfig(t, c, `{"forceNewAPIIPs":["127.0.0.1"]}`)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // traffic on the new path feeds the router's window
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", c.admin+"/api/admin/paths?limit=1", nil)
			req.Header.Set("Authorization", "Bearer "+c.token)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	plan := `{"steps":[1,10,50,100],"dwell":"300ms","gates":{"minAccuracy":0,"maxErrorRate":1,"maxP99Ms":2000},"minSamples":5}`
	if code, out := c.do("POST", "/api/admin/paths/migration-config/rollout", "application/json", []byte(plan), nil); code != 201 {
		t.Fatalf("start rollout: %d %v", code, out)
	}
	if code, _ := c.do("POST", "/api/admin/paths/migration-config/rollout", "application/json", []byte(plan), nil); code != 409 {
		t.Fatalf("second rollout: %d, want 409", code)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, out := c.do("GET", "/api/admin/paths/migration-config/rollout", "", nil, nil)
		data, _ := out["data"].(map[string]any)
		if data["status"] == "completed" {
			break
		}
		if data["status"] == "rolled-back" || time.Now().After(deadline) {
			t.Fatalf("rollout: %v", data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, out := c.do("GET", "/api/admin/paths/migration-config", "", nil, nil)
	if data, _ := out["data"].(map[string]any); data["newAPIPercentage"] != float64(100) {
		t.Fatalf("config after rollout: %v", data)
	}
	_, hist := c.do("GET", "/api/admin/paths/migration-config/history?limit=200", "", nil, nil)
	raw, _ := json.Marshal(hist)
	if n := strings.Count(string(raw), `"source":"rollout"`); n != 4 {
		t.Fatalf("%d rollout steps in history, want 4", n)
	}
}

// TestRedisKV runs the server with its KV on Redis: the snapshot read path
// and the migration config work the same.
func TestRedisKV(t *testing.T) {
	url := os.Getenv("PATHSTATS_TEST_REDIS")
	if url == "" {
		t.Skip("PATHSTATS_TEST_REDIS not set")
	}
	// A fresh key prefix keeps runs apart; its keys are deleted afterwards.
	prefix := fmt.Sprintf("pstest-%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		kv, err := redis.Open(context.Background(), url, redis.Options{Prefix: prefix})
		if err != nil {
			return
		}
		defer kv.Close()
		keys, _ := kv.Keys(context.Background(), "")
		for _, k := range keys {
			_ = kv.Delete(context.Background(), k)
		}
	})
	c := startServe(t, t.TempDir(), "--kv", url+"?prefix="+prefix, "--snapshot-interval", "200ms")
	ref := ingestReference(t, c)
	waitSource(t, c, "kv-snapshot", len(ref))
	checkRandomQueries(t, c, ref, "kv-snapshot", 20)
	putConfig(t, c, `{"forceNewAPIIPs":["127.0.0.1"]}`)
	deadline := time.Now().Add(time.Minute)
	for reason, _ := c.routeOf(t); reason != "forced-new"; reason, _ = c.routeOf(t) {
		if time.Now().After(deadline) {
			t.Fatal("config change not applied with redis KV")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
