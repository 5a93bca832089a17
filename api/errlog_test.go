package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
)

// TestIngestQueueDownLoggedOnce: ingest requests answered 503 because the
// queue is down (counted in ingest_requests_total{code="503"}) log the
// queue's error, once per interval however many requests fail.
func TestIngestQueueDownLoggedOnce(t *testing.T) {
	log, buf := testutil.NewLogger()
	reg := prometheus.NewRegistry()
	h := newTestIngest(&memQueue{failAt: 1})
	h.Logger, h.Metrics = log, NewIngestMetrics(reg)
	for range 3 {
		wantError(t, post(t, h, ndjsonType, `{"path":"/a","status":200}`), http.StatusServiceUnavailable, pathstats.EUnavailable)
	}
	if n := counterValue(t, reg, "pathstats_ingest_requests_total", "503"); n != 3 {
		t.Fatalf("503 answers counted %v, want 3", n)
	}
	lines := buf.Lines(`msg="ingest publish failed"`)
	if len(lines) != 1 || !strings.Contains(lines[0], "connection refused") || !strings.Contains(lines[0], "level=WARN") {
		t.Fatalf("want one warning with the queue's error; log:\n%s", buf.String())
	}
}
