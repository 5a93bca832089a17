package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGatewayToSQL sends traffic through the real gateway and checks the
// hourly rows after a graceful stop (which must flush the recorder).
func TestGatewayToSQL(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/boom"):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasPrefix(r.URL.Path, "/missing"):
			w.WriteHeader(http.StatusNotFound)
		default:
			fmt.Fprint(w, "ok ", r.Header.Get("X-Forwarded-For"))
		}
	}))
	defer upstream.Close()
	dir := t.TempDir()
	c := startServe(t, dir, "--upstream", upstream.URL)
	get := func(path string, want int) {
		resp, err := http.Get(c.gateway + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	for i := 0; i < 50; i++ {
		get(fmt.Sprintf("/users/%d?x=%d", 1000+i, i), 200)
		get("/boom", 500)
	}
	for i := 0; i < 7; i++ {
		get("/missing/page", 404)
	}
	c.stop()
	tot := sqlTotals(t, dir)
	users, boom, missing := tot["default /users/:id"], tot["default /boom"], tot["default /missing/page"]
	if users.Requests != 50 || users.Errors != 0 {
		t.Errorf("users: %+v", users)
	}
	if boom.Requests != 50 || boom.Errors != 50 {
		t.Errorf("boom: %+v", boom)
	}
	if missing.Requests != 7 || missing.ClientErrors != 7 {
		t.Errorf("missing: %+v", missing)
	}
	if len(tot) != 3 {
		t.Errorf("rows: %v", tot)
	}
}

// TestIngestIdempotencyAndRejections posts through the real admin listener.
func TestIngestIdempotencyAndRejections(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir)
	now := time.Now().UnixMilli()
	body := ndjson(
		map[string]any{"timestamp": now, "path": "/a", "status": 200, "latencyMs": 5},
		map[string]any{"timestamp": now, "path": "/a", "status": 503, "latencyMs": 50},
		map[string]any{"path": "/b/42", "status": 404, "proxyId": "edge"},
	)
	key := map[string]string{"Idempotency-Key": "req-1"}
	for i := 0; i < 2; i++ {
		code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", body, key)
		if code != http.StatusAccepted {
			t.Fatalf("ingest: %d %v", code, out)
		}
		if data, _ := out["data"].(map[string]any); data["accepted"] != float64(3) {
			t.Fatalf("ingest answer %v", out)
		}
	}
	bad := []struct {
		name, ctype string
		body        []byte
		code        int
		errCode     string
	}{
		{"malformed", "application/x-ndjson", []byte(`{"path":`), 400, "INVALID_BODY"},
		{"content type", "text/plain", body, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"status 600", "application/json", []byte(`[{"path":"/x","status":600}]`), 400, "INVALID_BODY"},
		{"one bad of two", "application/json", []byte(`[{"path":"/x","status":200},{"path":"/y","status":200,"latencyMs":-1}]`), 400, "INVALID_BODY"},
		{"6 MiB", "application/x-ndjson", bytes.Repeat([]byte(`{"path":"/x","status":200}`+"\n"), 6<<20/27), 413, "PAYLOAD_TOO_LARGE"},
	}
	for _, b := range bad {
		code, out := c.do("POST", "/api/v1/events", b.ctype, b.body, nil)
		if code != b.code || out["error"] != b.errCode {
			t.Errorf("%s: %d %v, want %d %s", b.name, code, out["error"], b.code, b.errCode)
		}
	}
	req, _ := http.NewRequest("POST", c.admin+"/api/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	c.stop()
	tot := sqlTotals(t, dir)
	if a := tot["default /a"]; a.Requests != 2 || a.Errors != 1 {
		t.Errorf("/a: %+v", a)
	}
	if b := tot["edge /b/:id"]; b.Requests != 1 || b.ClientErrors != 1 {
		t.Errorf("/b/:id: %+v", b)
	}
	if n := sumRequests(tot); n != 3 {
		t.Errorf("total %d, want 3 (duplicates or rejected events counted)", n)
	}
}

// TestKill9ExactlyOnce kills the server in the middle of an ingest load,
// restarts it on the same data dir, resends every request with its key and
// checks SQL holds exactly the events sent.
func TestKill9ExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir, "--ack-wait", "1s")
	const requests, perRequest = 60, 200
	bodies := make([][]byte, requests)
	now := time.Now().UnixMilli()
	for i := range bodies {
		var evs []map[string]any
		for j := 0; j < perRequest; j++ {
			evs = append(evs, map[string]any{"timestamp": now - int64(j), "path": fmt.Sprintf("/k/p%dx", (i*perRequest+j)%500), "status": 200 + (j%4)*100})
		}
		bodies[i] = ndjson(evs...)
	}
	send := func(c *child, i int) int {
		req, _ := http.NewRequest("POST", c.admin+"/api/v1/events", bytes.NewReader(bodies[i]))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Idempotency-Key", fmt.Sprintf("kill9-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < requests; i += 4 {
				if send(c, i) == http.StatusAccepted {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
				if i == requests/2 {
					c.kill9()
				}
			}
		}(g)
	}
	wg.Wait()
	if accepted == 0 || accepted == requests {
		t.Logf("accepted %d of %d before the kill", accepted, requests)
	}
	// Batches the killed process had fetched but not acknowledged come
	// back after the ack wait; wait until the queue is empty.
	c2 := startServe(t, dir, "--ack-wait", "1s")
	for i := 0; i < requests; i++ {
		if code := send(c2, i); code != http.StatusAccepted {
			t.Fatalf("resend %d: %d", i, code)
		}
	}
	c2.waitMetric("pathstats_aggregator_consumer_lag_messages", 0, 90*time.Second)
	c2.stop()
	if n := sumRequests(sqlTotals(t, dir)); n != requests*perRequest {
		t.Fatalf("SQL holds %d events, sent %d", n, requests*perRequest)
	}
}
