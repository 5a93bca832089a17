package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const (
	ndjsonType = "application/x-ndjson"
	jsonType   = "application/json"
)

func TestIngestValidNDJSON(t *testing.T) {
	q := &memQueue{}
	h := newTestIngest(q)
	body := `{"timestamp":"2025-06-01T12:00:00Z","path":"/a","method":"GET","status":200,"latencyMs":3.5,"proxyId":"api-1","clientIp":"10.0.0.1"}

{"timestamp":1748779200000,"path":"/a","status":503,"proxyId":"api-1"}` + "\r\n" +
		`{"path":"/b","status":404,"extra":{"nested":[1,{"x":null}]},"Path":"/ignored"}` + "\n" +
		`{"path":"/b","status":201,"latencyMs":0,"proxyId":""}` + "\n"
	res := wantAccepted(t, post(t, h, ndjsonType+"; charset=utf-8", body), 4)
	if !strings.HasPrefix(res.BatchID, "rq:") || len(res.BatchID) != 3+32 {
		t.Errorf("batch id = %q", res.BatchID)
	}
	if q.events() != 4 {
		t.Fatalf("published %d events, want 4", q.events())
	}
	batches := q.published()
	if len(batches) != 1 || batches[0].ID != res.BatchID {
		t.Fatalf("batches = %v, want one with id %s", q.ids(), res.BatchID)
	}
	got := map[pathstats.Key]pathstats.Counts{}
	for _, d := range batches[0].Deltas {
		got[d.Key] = d.Counts
	}
	hour := pathstats.HourBucket(testNow)
	a := got[pathstats.Key{Hour: hour, Path: "/a", ProxyID: "api-1"}]
	if a.Requests() != 2 || a.Errors() != 1 || a.Status[1] != 1 {
		t.Errorf("/a counts = %+v", a)
	}
	b := got[pathstats.Key{Hour: hour, Path: "/b", ProxyID: pathstats.DefaultProxyID}]
	if b.Requests() != 2 || b.ClientErrors() != 1 || b.LastSeenMs != testNow.UnixMilli() {
		t.Errorf("/b counts = %+v", b)
	}
}

func TestIngestValidJSONArray(t *testing.T) {
	q := &memQueue{}
	h := newTestIngest(q)
	body := ` [ {"path":"/x","status":200} , {"path":"/x","status":500,"latencyMs":12000} ] `
	wantAccepted(t, post(t, h, "application/json; charset=UTF-8", body), 2)
	if q.events() != 2 {
		t.Fatalf("published %d events, want 2", q.events())
	}
	c := q.published()[0].Deltas[0].Counts
	if c.Latency[0] != 1 || c.Latency[pathstats.NumLatencyBuckets-1] != 1 {
		t.Errorf("latency buckets = %v", c.Latency)
	}
}

func TestIngestManyBatches(t *testing.T) {
	q := &memQueue{}
	h := newTestIngest(q)
	var sb strings.Builder
	const n = 2600 // 1300 distinct paths → 3 batches of at most 500 deltas
	for i := range n {
		fmt.Fprintf(&sb, `{"path":"/p/%d","status":200}`+"\n", i%1300)
	}
	res := wantAccepted(t, post(t, h, ndjsonType, sb.String()), n)
	if got := q.events(); got != n {
		t.Fatalf("published %d events, want %d", got, n)
	}
	ids := q.ids()
	want := []string{res.BatchID + "#0", res.BatchID + "#1", res.BatchID + "#2"}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("ids = %v, want %v", ids, want)
	}
}

func TestIngestIdempotencyKey(t *testing.T) {
	q := &memQueue{}
	h := newTestIngest(q)
	body := `{"path":"/a","status":200}` + "\n"
	r1 := wantAccepted(t, post(t, h, ndjsonType, body, "Idempotency-Key", "order-42"), 1)
	r2 := wantAccepted(t, post(t, h, ndjsonType, body, "Idempotency-Key", "order-42"), 1)
	if r1.BatchID != r2.BatchID || !strings.HasPrefix(r1.BatchID, "ik:") || len(r1.BatchID) != 35 {
		t.Fatalf("batch ids %q and %q, want the same ik: id", r1.BatchID, r2.BatchID)
	}
	ids := q.ids()
	if len(ids) != 2 || ids[0] != ids[1] || ids[0] != r1.BatchID {
		t.Fatalf("published ids = %v", ids)
	}
	r3 := wantAccepted(t, post(t, h, ndjsonType, body, "Idempotency-Key", "order-43"), 1)
	if r3.BatchID == r1.BatchID {
		t.Fatal("different keys gave the same batch id")
	}
	r4 := wantAccepted(t, post(t, h, ndjsonType, body), 1)
	r5 := wantAccepted(t, post(t, h, ndjsonType, body), 1)
	if r4.BatchID == r5.BatchID {
		t.Fatal("requests without a key share a batch id")
	}
}

func TestIngestPublishError(t *testing.T) {
	var sb strings.Builder
	for i := range 1200 {
		fmt.Fprintf(&sb, `{"path":"/p/%d","status":200}`+"\n", i)
	}
	q := &memQueue{failAt: 2}
	h := newTestIngest(q)
	w := post(t, h, ndjsonType, sb.String(), "Idempotency-Key", "k1")
	body := wantError(t, w, http.StatusServiceUnavailable, pathstats.EUnavailable)
	if strings.Contains(body.Message, "secret") || strings.Contains(w.Body.String(), "nats") {
		t.Errorf("error leaks internals: %s", w.Body)
	}
	if w.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After header")
	}
	first := q.ids()
	if len(first) != 1 {
		t.Fatalf("published before failure: %v", first)
	}
	// The retry republishes the first batch under the same id (deduplicated
	// by the queue) and the rest.
	q.failAt = 0
	res := wantAccepted(t, post(t, h, ndjsonType, sb.String(), "Idempotency-Key", "k1"), 1200)
	ids := q.ids()
	if len(ids) != 4 || ids[1] != first[0] || ids[1] != res.BatchID+"#0" {
		t.Fatalf("ids after retry = %v", ids)
	}
}

func TestIngestRejects(t *testing.T) {
	big := strings.Repeat("a", 1<<20)
	tests := []struct {
		name, ctype, body string
		headers           []string
		status            int
		code              string
		field             string // the first detail's field, when details are expected
	}{
		{"no content type", "", `[{"path":"/a","status":200}]`, nil, 415, pathstats.EUnsupportedMediaType, ""},
		{"text/plain", "text/plain", `[{"path":"/a","status":200}]`, nil, 415, pathstats.EUnsupportedMediaType, ""},
		{"bad media type", "application/", `[{"path":"/a","status":200}]`, nil, 415, pathstats.EUnsupportedMediaType, ""},
		{"latin1", "application/json; charset=latin1", `[{"path":"/a","status":200}]`, nil, 415, pathstats.EUnsupportedMediaType, ""},
		{"gzip", jsonType, `[{"path":"/a","status":200}]`, []string{"Content-Encoding", "gzip"}, 415, pathstats.EUnsupportedMediaType, ""},
		{"empty key", jsonType, `[{"path":"/a","status":200}]`, []string{"Idempotency-Key", ""}, 400, pathstats.EInvalidParameter, ""},
		{"long key", jsonType, `[{"path":"/a","status":200}]`, []string{"Idempotency-Key", strings.Repeat("k", 201)}, 400, pathstats.EInvalidParameter, ""},
		{"non-ascii key", jsonType, `[{"path":"/a","status":200}]`, []string{"Idempotency-Key", "clé"}, 400, pathstats.EInvalidParameter, ""},
		{"two keys", jsonType, `[{"path":"/a","status":200}]`, []string{"Idempotency-Key", "a", "Idempotency-Key", "b"}, 400, pathstats.EInvalidParameter, ""},

		{"empty body", ndjsonType, ``, nil, 400, pathstats.EInvalidBody, ""},
		{"blank lines", ndjsonType, "\n \r\n\t\n", nil, 400, pathstats.EInvalidBody, ""},
		{"empty array", jsonType, ` [ ] `, nil, 400, pathstats.EInvalidBody, ""},
		{"empty json body", jsonType, ``, nil, 400, pathstats.EInvalidBody, ""},
		{"object not array", jsonType, `{"path":"/a","status":200}`, nil, 400, pathstats.EInvalidBody, ""},
		{"trailing data", jsonType, `[{"path":"/a","status":200}] x`, nil, 400, pathstats.EInvalidBody, ""},
		{"malformed array", jsonType, `[{"path":"/a","status":200},{"path":"/b"`, nil, 400, pathstats.EInvalidBody, ""},
		{"malformed line", ndjsonType, `{"path":"/a","status":200}` + "\n" + `{"path":"/a",status:200}`, nil, 400, pathstats.EInvalidBody, ""},
		{"two values on a line", ndjsonType, `{"path":"/a","status":200} {"path":"/a","status":200}`, nil, 400, pathstats.EInvalidBody, ""},
		{"array line", ndjsonType, `[{"path":"/a","status":200}]`, nil, 400, pathstats.EInvalidBody, ""},
		{"element not object", jsonType, `[{"path":"/a","status":200}, 5]`, nil, 400, pathstats.EInvalidBody, ""},
		{"bare NaN", ndjsonType, `{"path":"/a","status":200,"latencyMs":NaN}`, nil, 400, pathstats.EInvalidBody, ""},

		{"status missing", ndjsonType, `{"path":"/a"}`, nil, 400, pathstats.EInvalidBody, "status"},
		{"status null", ndjsonType, `{"path":"/a","status":null}`, nil, 400, pathstats.EInvalidBody, "status"},
		{"status string", ndjsonType, `{"path":"/a","status":"200"}`, nil, 400, pathstats.EInvalidBody, "status"},
		{"status fraction", ndjsonType, `{"path":"/a","status":200.5}`, nil, 400, pathstats.EInvalidBody, "status"},
		{"status 99", ndjsonType, `{"path":"/a","status":99}`, nil, 400, pathstats.EInvalidBody, "status"},
		{"status 600", ndjsonType, `{"path":"/a","status":600}`, nil, 400, pathstats.EInvalidBody, "status"},
		{"status negative", ndjsonType, `{"path":"/a","status":-200}`, nil, 400, pathstats.EInvalidBody, "status"},
		{"status huge", ndjsonType, `{"path":"/a","status":1e400}`, nil, 400, pathstats.EInvalidBody, "status"},
		{"latency negative", ndjsonType, `{"path":"/a","status":200,"latencyMs":-1}`, nil, 400, pathstats.EInvalidBody, "latencyMs"},
		{"latency string", ndjsonType, `{"path":"/a","status":200,"latencyMs":"5"}`, nil, 400, pathstats.EInvalidBody, "latencyMs"},
		{"latency NaN string", ndjsonType, `{"path":"/a","status":200,"latencyMs":"NaN"}`, nil, 400, pathstats.EInvalidBody, "latencyMs"},
		{"latency infinite", ndjsonType, `{"path":"/a","status":200,"latencyMs":1e999}`, nil, 400, pathstats.EInvalidBody, "latencyMs"},
		{"path missing", ndjsonType, `{"status":200}`, nil, 400, pathstats.EInvalidBody, "path"},
		{"path empty", ndjsonType, `{"path":"","status":200}`, nil, 400, pathstats.EInvalidBody, "path"},
		{"path relative", ndjsonType, `{"path":"a/b","status":200}`, nil, 400, pathstats.EInvalidBody, "path"},
		{"path number", ndjsonType, `{"path":7,"status":200}`, nil, 400, pathstats.EInvalidBody, "path"},
		{"path 8193 bytes", ndjsonType, `{"path":"/` + big[:8192] + `","status":200}`, nil, 400, pathstats.EInvalidBody, "path"},
		{"path 1 MB", jsonType, `[{"path":"/` + big + `","status":200}]`, nil, 400, pathstats.EInvalidBody, "path"},
		{"path invalid UTF-8", ndjsonType, "{\"path\":\"/a\xff\xfe\",\"status\":200}", nil, 400, pathstats.EInvalidBody, "path"},
		{"invalid UTF-8 elsewhere", jsonType, "[{\"path\":\"/a\",\"status\":200,\"x\":\"\xc3\"}]", nil, 400, pathstats.EInvalidBody, ""},
		{"timestamp future", ndjsonType, `{"path":"/a","status":200,"timestamp":"2025-06-01T12:35:01Z"}`, nil, 400, pathstats.EInvalidBody, "timestamp"},
		{"timestamp future ms", ndjsonType, fmt.Sprintf(`{"path":"/a","status":200,"timestamp":%d}`, testNow.Add(6*time.Minute).UnixMilli()), nil, 400, pathstats.EInvalidBody, "timestamp"},
		{"timestamp too old", ndjsonType, `{"path":"/a","status":200,"timestamp":"2025-04-01T00:00:00Z"}`, nil, 400, pathstats.EInvalidBody, "timestamp"},
		{"timestamp too old ms", ndjsonType, `{"path":"/a","status":200,"timestamp":0}`, nil, 400, pathstats.EInvalidBody, "timestamp"},
		{"timestamp garbage", ndjsonType, `{"path":"/a","status":200,"timestamp":"yesterday"}`, nil, 400, pathstats.EInvalidBody, "timestamp"},
		{"timestamp bool", ndjsonType, `{"path":"/a","status":200,"timestamp":true}`, nil, 400, pathstats.EInvalidBody, "timestamp"},
		{"method too long", ndjsonType, `{"path":"/a","status":200,"method":"GETGETGETGETGETGET"}`, nil, 400, pathstats.EInvalidBody, "method"},
		{"method not token", ndjsonType, `{"path":"/a","status":200,"method":"GE T"}`, nil, 400, pathstats.EInvalidBody, "method"},
		{"proxyId too long", ndjsonType, `{"path":"/a","status":200,"proxyId":"` + strings.Repeat("p", 65) + `"}`, nil, 400, pathstats.EInvalidBody, "proxyId"},
		{"proxyId bad char", ndjsonType, `{"path":"/a","status":200,"proxyId":"a/b"}`, nil, 400, pathstats.EInvalidBody, "proxyId"},
		{"clientIp", ndjsonType, `{"path":"/a","status":200,"clientIp":"10.0.0.256"}`, nil, 400, pathstats.EInvalidBody, "clientIp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &memQueue{}
			reg := prometheus.NewRegistry()
			h := newTestIngest(q)
			h.Metrics = NewIngestMetrics(reg)
			// A valid event first: all-or-nothing must drop it too.
			body := tt.body
			if tt.field != "" && tt.ctype == ndjsonType {
				body = `{"path":"/ok","status":200}` + "\n" + body
			}
			body2 := wantError(t, post(t, h, tt.ctype, body, tt.headers...), tt.status, tt.code)
			if n := len(q.published()); n != 0 {
				t.Fatalf("published %d batches on rejection", n)
			}
			if tt.field != "" {
				if len(body2.Details) == 0 || body2.Details[0].Field != tt.field {
					t.Fatalf("details = %+v, want field %s", body2.Details, tt.field)
				}
				wantIdx := 0
				if tt.ctype == ndjsonType {
					wantIdx = 1
				}
				if body2.Details[0].Index != wantIdx || body2.Details[0].Reason == "" {
					t.Fatalf("details = %+v, want index %d", body2.Details, wantIdx)
				}
			}
			if got := counterValue(t, reg, "pathstats_ingest_requests_total", fmt.Sprint(tt.status)); got != 1 {
				t.Errorf("requests{code=%d} = %v, want 1", tt.status, got)
			}
			if got := counterValue(t, reg, "pathstats_ingest_events_total", ""); got != 0 {
				t.Errorf("accepted events = %v, want 0", got)
			}
		})
	}
}

func TestIngestDetails(t *testing.T) {
	q := &memQueue{}
	h := newTestIngest(q)
	body := `[{"path":"/a","status":200},{"path":"a","status":99},{"path":"/c","status":200,"clientIp":"x"}]`
	got := wantError(t, post(t, h, jsonType, body), 400, pathstats.EInvalidBody)
	want := []EventError{
		{Index: 1, Field: "path", Reason: `must start with "/"`},
		{Index: 1, Field: "status", Reason: "must be between 100 and 599"},
		{Index: 2, Field: "clientIp", Reason: "must be an IP address"},
	}
	if fmt.Sprint(got.Details) != fmt.Sprint(want) {
		t.Fatalf("details = %+v, want %+v", got.Details, want)
	}
	if !strings.HasPrefix(got.Message, "2 of 3 events are invalid") {
		t.Errorf("message = %q", got.Message)
	}

	var sb strings.Builder
	for range 250 {
		sb.WriteString(`{"path":"/a","status":700}` + "\n")
	}
	got = wantError(t, post(t, h, ndjsonType, sb.String()), 400, pathstats.EInvalidBody)
	if len(got.Details) != maxListedProblems || got.Details[99].Index != 99 {
		t.Fatalf("details: %d listed, last %+v", len(got.Details), got.Details[len(got.Details)-1])
	}
	if !strings.Contains(got.Message, "250 of 250") || !strings.Contains(got.Message, "first 100 of 250") {
		t.Errorf("message = %q", got.Message)
	}
	if len(q.published()) != 0 {
		t.Fatal("published on rejection")
	}
}

func TestIngestLimits(t *testing.T) {
	line := `{"path":"/a","status":200}` + "\n"
	t.Run("10000 events ok", func(t *testing.T) {
		q := &memQueue{}
		wantAccepted(t, post(t, newTestIngest(q), ndjsonType, strings.Repeat(line, MaxEvents)), MaxEvents)
		if q.events() != MaxEvents {
			t.Fatalf("published %d events", q.events())
		}
	})
	t.Run("10001 ndjson", func(t *testing.T) {
		q := &memQueue{}
		w := post(t, newTestIngest(q), ndjsonType, strings.Repeat(line, MaxEvents+1))
		wantError(t, w, 413, pathstats.EPayloadTooLarge)
		if len(q.published()) != 0 {
			t.Fatal("published")
		}
	})
	t.Run("10001 array", func(t *testing.T) {
		q := &memQueue{}
		ev := `{"path":"/a","status":200}`
		body := "[" + strings.Repeat(ev+",", MaxEvents) + ev + "]"
		wantError(t, post(t, newTestIngest(q), jsonType, body), 413, pathstats.EPayloadTooLarge)
		if len(q.published()) != 0 {
			t.Fatal("published")
		}
	})
	bigBody := `{"path":"/a","status":200,"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	t.Run("body over 5 MiB", func(t *testing.T) {
		q := &memQueue{}
		wantError(t, post(t, newTestIngest(q), ndjsonType, bigBody), 413, pathstats.EPayloadTooLarge)
	})
	t.Run("chunked body over 5 MiB", func(t *testing.T) {
		q := &memQueue{}
		// No Content-Length: only http.MaxBytesReader can stop it.
		r := io.MultiReader(strings.NewReader(bigBody))
		wantError(t, postReader(t, newTestIngest(q), ndjsonType, r), 413, pathstats.EPayloadTooLarge)
		if len(q.published()) != 0 {
			t.Fatal("published")
		}
	})
	t.Run("read error", func(t *testing.T) {
		q := &memQueue{}
		r := io.MultiReader(strings.NewReader(line), iotest.ErrReader(io.ErrUnexpectedEOF))
		wantError(t, postReader(t, newTestIngest(q), ndjsonType, r), 400, pathstats.EInvalidBody)
	})
}

func TestIngestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	q := &memQueue{}
	h := newTestIngest(q)
	h.Metrics = NewIngestMetrics(reg)
	if again := NewIngestMetrics(reg); again.Accepted != h.Metrics.Accepted {
		t.Error("second NewIngestMetrics did not reuse the registered counters")
	}
	line := `{"path":"/a","status":200}` + "\n"
	wantAccepted(t, post(t, h, ndjsonType, strings.Repeat(line, 3)), 3)
	wantError(t, post(t, h, ndjsonType, line+`{"path":"/a"}`), 400, pathstats.EInvalidBody)
	q.failAt = 1
	wantError(t, post(t, h, ndjsonType, strings.Repeat(line, 5)), 503, pathstats.EUnavailable)
	checks := []struct {
		name, code string
		want       float64
	}{
		{"pathstats_ingest_requests_total", "202", 1},
		{"pathstats_ingest_requests_total", "400", 1},
		{"pathstats_ingest_requests_total", "503", 1},
		{"pathstats_ingest_events_total", "", 3},
		{"pathstats_ingest_rejected_events_total", "", 7},
	}
	for _, c := range checks {
		if got := counterValue(t, reg, c.name, c.code); got != c.want {
			t.Errorf("%s{code=%q} = %v, want %v", c.name, c.code, got, c.want)
		}
	}
	var nilMetrics *IngestMetrics
	nilMetrics.request(200, 1, 1) // must not panic
}

// counterValue reads a counter from reg; code selects the "code" label.
func counterValue(t testing.TB, reg prometheus.Gatherer, name, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if code == "" || labelValue(m, "code") == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestIngestNotConfigured(t *testing.T) {
	w := post(t, &Ingest{}, ndjsonType, `{"path":"/a","status":200}`)
	wantError(t, w, 500, pathstats.EInternal)
	if strings.Contains(w.Body.String(), "builder") {
		t.Errorf("leaks internals: %s", w.Body)
	}
}

// BenchmarkIngestNDJSON measures the handler end to end (decode, the in-test
// builder, encode, an in-memory publish) with 1,000-event requests.
func BenchmarkIngestNDJSON(b *testing.B) {
	body := benchNDJSON(1000)
	h := &Ingest{Builder: hourBuilder{}, Queue: discardQueue{}, Now: func() time.Time { return testNow }}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		w := postReader(b, h, ndjsonType, bytes.NewReader(body))
		if w.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
}

type discardQueue struct{}

func (discardQueue) Publish(_ context.Context, _ string, _ []byte) error { return nil }
