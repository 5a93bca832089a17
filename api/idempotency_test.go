package api

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
)

// batchLog records the batches an observer was told of.
type batchLog struct {
	mu      sync.Mutex
	batches []*pathstats.Batch
}

func (l *batchLog) ObserveBatch(b *pathstats.Batch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = append(l.batches, b)
}

func (l *batchLog) events() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, b := range l.batches {
		n += b.Events()
	}
	return n
}

// keyedIngest is an Ingest whose keys live in a real (embedded NATS) KV.
func keyedIngest(t *testing.T, q *memQueue) (*Ingest, *batchLog) {
	srv := testutil.MustStartNATS(t, 0)
	h := newTestIngest(q)
	h.Keys = testutil.MustOpenKV(t, srv, "idem_test")
	obs := &batchLog{}
	h.Observer = obs
	return h, obs
}

func manyPaths(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(`{"path":"/p/` + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + `/` + itoa(i) + `","status":200}` + "\n")
	}
	return b.String()
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func TestIdempotencyKeyBindsBody(t *testing.T) {
	q := &memQueue{}
	h, obs := keyedIngest(t, q)
	body := `{"path":"/a","status":200}` + "\n" + `{"path":"/b","status":500}` + "\n"
	first := wantAccepted(t, post(t, h, ndjsonType, body, "Idempotency-Key", "k1"), 2)
	if first.Duplicate {
		t.Fatal("first request marked duplicate")
	}
	again := wantAccepted(t, post(t, h, ndjsonType, body, "Idempotency-Key", "k1"), 2)
	if !again.Duplicate || again.BatchID != first.BatchID {
		t.Fatalf("resend = %+v, want duplicate of %s", again, first.BatchID)
	}
	// Another body under the used key: 422, nothing counted, small or large.
	for _, other := range []string{`{"path":"/c","status":200}`, manyPaths(600)} {
		e := wantError(t, post(t, h, ndjsonType, other, "Idempotency-Key", "k1"), http.StatusUnprocessableEntity, pathstats.EIdempotencyKeyReused)
		if !strings.Contains(e.Message, "Idempotency-Key") {
			t.Errorf("message %q", e.Message)
		}
	}
	if q.events() != 2 || obs.events() != 2 {
		t.Fatalf("queue %d, observer %d events; want 2 each", q.events(), obs.events())
	}
}

func TestIdempotencyRetryAfterFailureObservesOnce(t *testing.T) {
	q := &memQueue{failAt: 2} // the second batch of the first attempt fails
	h, obs := keyedIngest(t, q)
	body := manyPaths(1200) // three batches
	wantError(t, post(t, h, ndjsonType, body, "Idempotency-Key", "k2"), http.StatusServiceUnavailable, pathstats.EUnavailable)
	wantError(t, post(t, h, ndjsonType, body, "Idempotency-Key", "k2"), http.StatusServiceUnavailable, pathstats.EUnavailable)
	if obs.events() != 0 {
		t.Fatalf("observer told of %d events of a refused request", obs.events())
	}
	q.mu.Lock()
	q.failAt = 0
	q.mu.Unlock()
	res := wantAccepted(t, post(t, h, ndjsonType, body, "Idempotency-Key", "k2"), 1200)
	if res.Duplicate {
		t.Fatal("completing retry marked duplicate")
	}
	dup := wantAccepted(t, post(t, h, ndjsonType, body, "Idempotency-Key", "k2"), 1200)
	if !dup.Duplicate {
		t.Fatal("resend after completion not a duplicate")
	}
	if obs.events() != 1200 || len(obs.batches) != 3 {
		t.Fatalf("observer: %d events in %d batches; want 1200 in 3", obs.events(), len(obs.batches))
	}
	// Every publish of a batch id carried the same events.
	byID := map[string]int64{}
	for _, b := range q.published() {
		if n, ok := byID[b.ID]; ok && n != b.Events() {
			t.Fatalf("batch %s published with %d then %d events", b.ID, n, b.Events())
		}
		byID[b.ID] = b.Events()
	}
	if len(byID) != 3 {
		t.Fatalf("%d distinct batch ids", len(byID))
	}
}

func TestIdempotencyConcurrentIdenticalRequests(t *testing.T) {
	q := &memQueue{}
	h, obs := keyedIngest(t, q)
	body := manyPaths(50)
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := 0
	for range 8 {
		wg.Go(func() {
			res := wantAccepted(t, post(t, h, ndjsonType, body, "Idempotency-Key", "k3"), 50)
			if !res.Duplicate {
				mu.Lock()
				firsts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firsts != 1 || obs.events() != 50 {
		t.Fatalf("%d non-duplicate answers, observer %d events; want 1 and 50", firsts, obs.events())
	}
}

func TestIdempotencyResendOfAgedBodyIsDuplicate(t *testing.T) {
	q := &memQueue{}
	h, _ := keyedIngest(t, q)
	body := `{"timestamp":"` + testNow.Add(-700*3600e9).Format("2006-01-02T15:04:05Z") + `","path":"/old","status":200}`
	wantAccepted(t, post(t, h, ndjsonType, body, "Idempotency-Key", "k4"), 1)
	h.Retention = 24 * 3600e9 // the event is now older than the retention
	res := wantAccepted(t, post(t, h, ndjsonType, body, "Idempotency-Key", "k4"), 1)
	if !res.Duplicate {
		t.Fatal("resend not a duplicate")
	}
	wantError(t, post(t, h, ndjsonType, body, "Idempotency-Key", "k5"), http.StatusBadRequest, pathstats.EInvalidBody)
}

// BenchmarkIngestKeyed is BenchmarkIngestNDJSON with a fresh Idempotency-Key
// per request bound in a real (embedded NATS) KV: the key store's cost.
func BenchmarkIngestKeyed(b *testing.B) {
	body := benchNDJSON(1000)
	srv := testutil.MustStartNATS(b, 0)
	h := &Ingest{Builder: hourBuilder{}, Queue: discardQueue{}, Now: func() time.Time { return testNow },
		Keys: testutil.MustOpenKV(b, srv, "idem_bench")}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		w := postReader(b, h, ndjsonType, bytes.NewReader([]byte(body)), "Idempotency-Key", "bench-"+itoa(i))
		if w.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
}
