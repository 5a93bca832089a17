package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pathstats/pathstats/internal/testutil"
)

// TestQueueDown: with the external queue gone, ingest answers 503 and the
// gateway keeps proxying; once it is back, buffered traffic arrives.
func TestQueueDown(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	natsSrv := testutil.MustStartNATS(t, -1)
	dir := t.TempDir()
	c := startServe(t, dir, "--upstream", upstream.URL, "--queue", natsSrv.ClientURL())
	natsSrv.Shutdown()

	body := ndjson(map[string]any{"path": "/x", "status": 200})
	start := time.Now()
	code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", body, nil)
	if code != http.StatusServiceUnavailable || out["error"] != "UNAVAILABLE" {
		t.Fatalf("ingest with queue down: %d %v", code, out)
	}
	t.Logf("ingest 503 after %s", time.Since(start))
	for i := 0; i < 20; i++ {
		resp, err := http.Get(c.gateway + "/still/works")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("gateway with queue down: %d", resp.StatusCode)
		}
	}
	code, out = c.do("GET", "/readyz", "", nil, nil)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with queue down: %d %v", code, out)
	}
}
