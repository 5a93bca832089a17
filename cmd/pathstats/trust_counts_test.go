package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/pathstats/pathstats/nats"
)

// restartableNATS is an external NATS server that a test stops and starts
// again on the same port and store.
type restartableNATS struct {
	t    *testing.T
	dir  string
	port int
	srv  *nats.Server
}

func startRestartableNATS(t *testing.T) *restartableNATS {
	n := &restartableNATS{t: t, dir: t.TempDir(), port: -1}
	n.start()
	u, err := url.Parse(n.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	n.port, _ = strconv.Atoi(u.Port())
	t.Cleanup(func() { n.srv.Shutdown() })
	return n
}

func (n *restartableNATS) start() {
	srv, err := nats.StartEmbedded(testutil.Context(n.t), nats.EmbeddedOptions{StoreDir: n.dir, Port: n.port})
	if err != nil {
		n.t.Fatalf("start nats: %v", err)
	}
	n.srv = srv
}

// TestLegacyCountsWhatThePipelineAccepted: refused requests (queue down),
// their retry, identical resends, another body under a used key, a
// 10,000-event burst to one path and a gateway burst leave the legacy
// system with exactly the pipeline's counts: the comparison of the drained
// system is 100 %.
func TestLegacyCountsWhatThePipelineAccepted(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	ns := startRestartableNATS(t)
	c := startServe(t, t.TempDir(), "--upstream", upstream.URL, "--queue", ns.srv.ClientURL())

	now := time.Now().UnixMilli()
	body := ndjson(
		map[string]any{"timestamp": now, "path": "/retried/a", "status": 200},
		map[string]any{"timestamp": now, "path": "/retried/b", "status": 503},
	)
	key := map[string]string{"Idempotency-Key": "retry-1"}

	// Queue down: three refusals, nothing counted anywhere.
	ns.srv.Shutdown()
	for i := range 3 {
		if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", body, key); code != http.StatusServiceUnavailable {
			t.Fatalf("refusal %d: %d %v", i, code, out)
		}
	}
	ns.start()
	waitFor(t, 2*time.Minute, func() bool {
		code, _ := c.do("POST", "/api/v1/events", "application/x-ndjson", body, key)
		return code == http.StatusAccepted
	}, "ingest accepted after the queue came back")

	// An identical resend is a duplicate; another body under the key is refused.
	code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", body, key)
	if data, _ := out["data"].(map[string]any); code != http.StatusAccepted || data["duplicate"] != true {
		t.Fatalf("identical resend: %d %v", code, out)
	}
	other := ndjson(map[string]any{"timestamp": now, "path": "/retried/c", "status": 200})
	if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", other, key); code != http.StatusUnprocessableEntity || out["error"] != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("other body under a used key: %d %v", code, out)
	}

	// A burst of 10,000 events to one path in one request.
	burst := make([]map[string]any, 10_000)
	for i := range burst {
		burst[i] = map[string]any{"timestamp": now, "path": "/burst", "status": 200 + 300*(i%10/9)}
	}
	if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", ndjson(burst...), map[string]string{"Idempotency-Key": "burst"}); code != http.StatusAccepted {
		t.Fatalf("burst: %d %v", code, out)
	}

	// A gateway burst to one path from 8 clients.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 250 {
				resp, err := http.Get(c.gateway + "/gw/hot")
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()

	want := map[string]float64{"/retried/a": 1, "/retried/b": 1, "/burst": 10_000, "/gw/hot": 2000}
	var rep map[string]any
	waitFor(t, 2*time.Minute, func() bool {
		code, out := c.do("GET", "/api/admin/paths/compare", "", nil, nil)
		rep, _ = out["data"].(map[string]any)
		if code != http.StatusOK {
			t.Fatalf("compare: %d %v", code, out)
		}
		totals, _ := rep["totals"].(map[string]any)
		return totals["d1Requests"] == float64(12_002)
	}, "pipeline applied every accepted event")
	totals := rep["totals"].(map[string]any)
	if rep["accuracy"] != float64(100) || len(rep["diffs"].([]any)) != 0 || totals["doRequests"] != float64(12_002) {
		t.Fatalf("compare on a drained system: %v", rep)
	}
	export := exportNDJSON(t, c)
	for p, n := range want {
		if float64(export[p]) != n {
			t.Errorf("legacy %s = %d, want %v", p, export[p], n)
		}
	}
	if dropped := c.metric("pathstats_legacy_dropped_total"); dropped != 0 {
		t.Fatalf("legacy dropped %v events", dropped)
	}
	if len(export) != len(want) {
		t.Fatalf("legacy paths %v, want %v", export, want)
	}
}
