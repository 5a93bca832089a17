package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// testNow is the clock of the ingest tests.
var testNow = time.Date(2025, 6, 1, 12, 30, 0, 0, time.UTC)

// memQueue is an in-memory Publisher that decodes and keeps what it is given.
type memQueue struct {
	mu      sync.Mutex
	batches []*pathstats.Batch
	failAt  int // fail the failAt-th publish (1-based); 0 never
	calls   int
}

func (q *memQueue) Publish(ctx context.Context, msgID string, data []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	if q.failAt > 0 && q.calls >= q.failAt {
		return errors.New("nats: connection refused to nats://user:secret@queue")
	}
	b, err := pathstats.DecodeBatch(data)
	if err != nil {
		return err
	}
	if b.ID != msgID {
		return errors.New("msg id differs from batch id")
	}
	q.batches = append(q.batches, b)
	return nil
}

func (q *memQueue) published() []*pathstats.Batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]*pathstats.Batch(nil), q.batches...)
}

func (q *memQueue) events() int64 {
	var n int64
	for _, b := range q.published() {
		n += b.Events()
	}
	return n
}

func (q *memQueue) ids() []string {
	var ids []string
	for _, b := range q.published() {
		ids = append(ids, b.ID)
	}
	return ids
}

// hourBuilder aggregates per (path, proxyId, hour) without normalising.
type hourBuilder struct{}

func (hourBuilder) BuildBatches(baseID string, events []pathstats.Event, now time.Time) []*pathstats.Batch {
	idx := make(map[pathstats.Key]int)
	var deltas []pathstats.Delta
	for _, e := range events {
		if e.Time.IsZero() {
			e.Time = now
		}
		k := pathstats.Key{Hour: pathstats.HourBucket(e.Time), Path: e.Path, ProxyID: e.ProxyID}
		i, ok := idx[k]
		if !ok {
			i = len(deltas)
			idx[k] = i
			deltas = append(deltas, pathstats.Delta{Key: k})
		}
		deltas[i].Counts.Observe(e.Status, e.LatencyMs, e.Time)
	}
	return pathstats.SplitBatches(baseID, "test", deltas)
}

func newTestIngest(q *memQueue) *Ingest {
	return &Ingest{
		Builder:   hourBuilder{},
		Queue:     q,
		Retention: 720 * time.Hour,
		Now:       func() time.Time { return testNow },
		Logger:    slog.New(slog.DiscardHandler),
	}
}

// post sends body to h; headers are name, value pairs.
func post(t testing.TB, h http.Handler, contentType, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	return postReader(t, h, contentType, strings.NewReader(body), headers...)
}

func postReader(t testing.TB, h http.Handler, contentType string, body io.Reader, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/events", body)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

type testErrorBody struct {
	Success bool         `json:"success"`
	Error   string       `json:"error"`
	Message string       `json:"message"`
	Details []EventError `json:"details"`
}

// wantError checks the status, the envelope and the code of an error answer.
func wantError(t testing.TB, w *httptest.ResponseRecorder, status int, code string) testErrorBody {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type = %q", ct)
	}
	var body testErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("decode error body %q: %v", w.Body, err)
	}
	if body.Success || body.Error != code || body.Message == "" {
		t.Fatalf("body = %+v, want error %s", body, code)
	}
	return body
}

type testAccepted struct {
	Success   bool         `json:"success"`
	Data      IngestResult `json:"data"`
	Timestamp string       `json:"timestamp"`
}

func wantAccepted(t testing.TB, w *httptest.ResponseRecorder, n int) IngestResult {
	t.Helper()
	if w.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202; body %s", w.Code, w.Body)
	}
	var body testAccepted
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("decode body %q: %v", w.Body, err)
	}
	if !body.Success || body.Data.Accepted != n || body.Data.BatchID == "" {
		t.Fatalf("body = %+v, want %d accepted", body, n)
	}
	if _, err := time.Parse(time.RFC3339, body.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", body.Timestamp, err)
	}
	return body.Data
}
