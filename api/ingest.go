package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pathstats/pathstats"
)

// DefaultPublishTimeout bounds the publishing of one request's batches.
const DefaultPublishTimeout = 5 * time.Second

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 200

// BatchBuilder turns validated events into queue batches (the recorder).
type BatchBuilder interface {
	// BuildBatches normalises paths, applies the cardinality guard,
	// aggregates per (path, proxyId, hour) and splits the result into batches
	// whose ids derive deterministically from baseID. It must not keep
	// events after it returns: the slice is reused.
	BuildBatches(baseID string, events []pathstats.Event) []*pathstats.Batch
}

// Publisher stores a message durably under msgID (pathstats.Queue does).
type Publisher interface {
	Publish(ctx context.Context, msgID string, data []byte) error
}

// Ingest serves POST /api/v1/events: it validates a whole request, builds
// its batches and answers 202 only once every batch is enqueued.
type Ingest struct {
	Builder   BatchBuilder
	Queue     Publisher
	Retention time.Duration // oldest event age accepted; DefaultRetention when 0
	Now       func() time.Time
	Logger    *slog.Logger
	Metrics   *IngestMetrics
	// PublishTimeout bounds publishing a request's batches;
	// DefaultPublishTimeout when 0.
	PublishTimeout time.Duration
}

// IngestResult is the data of a 202 answer.
type IngestResult struct {
	Accepted int    `json:"accepted"`
	BatchID  string `json:"batchId"`
}

var (
	bodyPool    = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	decoderPool = sync.Pool{New: func() any { return new(decoder) }}
)

// ServeHTTP implements http.Handler.
func (h *Ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res, decoded, err := h.serve(w, r)
	if err != nil {
		h.Metrics.request(pathstats.HTTPStatus(pathstats.ErrorCode(err)), 0, decoded)
		if pathstats.ErrorCode(err) == pathstats.EUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		WriteError(w, err)
		return
	}
	h.Metrics.request(http.StatusAccepted, res.Accepted, 0)
	WriteData(w, http.StatusAccepted, res)
}

// serve handles one request; decoded is the number of events read, for the
// rejected-events metric.
func (h *Ingest) serve(w http.ResponseWriter, r *http.Request) (res IngestResult, decoded int, err error) {
	if h.Builder == nil || h.Queue == nil {
		return res, 0, errors.New("ingest: builder or queue not configured")
	}
	ndjson, err := bodyFormat(r.Header)
	if err != nil {
		return res, 0, err
	}
	baseID, err := batchBaseID(r.Header)
	if err != nil {
		return res, 0, err
	}
	d := decoderPool.Get().(*decoder)
	defer decoderPool.Put(d)
	d.reset(h.now(), h.Retention)
	if err := h.decode(w, r, d, ndjson); err != nil {
		return res, d.n, err
	}
	batches := h.Builder.BuildBatches(baseID, d.events)
	if err := h.publish(r.Context(), batches); err != nil {
		return res, d.n, err
	}
	return IngestResult{Accepted: len(d.events), BatchID: baseID}, 0, nil
}

// decode reads the body into d and checks it holds at least one event and
// no invalid one.
func (h *Ingest) decode(w http.ResponseWriter, r *http.Request, d *decoder, ndjson bool) error {
	buf, err := readBody(w, r)
	if err != nil {
		return err
	}
	err = d.decode(buf.Bytes(), ndjson)
	if buf.Cap() <= 2*MaxBodyBytes {
		bodyPool.Put(buf)
	}
	switch {
	case errors.Is(err, errTooManyEvents):
		return pathstats.Errorf(pathstats.EPayloadTooLarge, "more than %d events in one request", MaxEvents)
	case err != nil:
		return err
	case d.probs.total > 0:
		return d.invalidError()
	case d.n == 0:
		return pathstats.Errorf(pathstats.EInvalidBody, "no events in the body")
	}
	return nil
}

// readBody reads the request body, at most MaxBodyBytes, into a pooled buffer.
func readBody(w http.ResponseWriter, r *http.Request) (*bytes.Buffer, error) {
	tooLarge := pathstats.Errorf(pathstats.EPayloadTooLarge, "body larger than %d bytes", MaxBodyBytes)
	if r.ContentLength > MaxBodyBytes {
		return nil, tooLarge
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		bodyPool.Put(buf)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, pathstats.Errorf(pathstats.EInvalidBody, "could not read the body")
	}
	return buf, nil
}

// publish enqueues the batches in order. Their ids are deterministic, so a
// retry with the same Idempotency-Key deduplicates those already enqueued.
func (h *Ingest) publish(ctx context.Context, batches []*pathstats.Batch) error {
	timeout := h.PublishTimeout
	if timeout <= 0 {
		timeout = DefaultPublishTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i, b := range batches {
		data, err := pathstats.EncodeBatch(b)
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		if err := h.Queue.Publish(ctx, b.ID, data); err != nil {
			h.logger().Warn("ingest publish failed", "batch", b.ID,
				"published", i, "batches", len(batches), "err", err)
			return pathstats.Errorf(pathstats.EUnavailable,
				"queue unavailable; nothing was lost if you retry with the same Idempotency-Key")
		}
	}
	return nil
}

func (h *Ingest) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Ingest) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// bodyFormat checks the content type and reports whether the body is NDJSON
// (else a JSON array).
func bodyFormat(h http.Header) (ndjson bool, err error) {
	unsupported := pathstats.Errorf(pathstats.EUnsupportedMediaType,
		"Content-Type must be application/json or application/x-ndjson (UTF-8)")
	ct := h.Get("Content-Type")
	if ct == "" {
		return false, unsupported
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, unsupported
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return false, unsupported
	}
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return false, pathstats.Errorf(pathstats.EUnsupportedMediaType, "Content-Encoding %q is not supported", ce)
	}
	switch mt {
	case "application/json":
		return false, nil
	case "application/x-ndjson":
		return true, nil
	}
	return false, unsupported
}

// batchBaseID derives the base batch id: from the Idempotency-Key when given
// (so retries produce the same ids), else random.
func batchBaseID(h http.Header) (string, error) {
	keys := h.Values("Idempotency-Key")
	switch len(keys) {
	case 0:
		var b [16]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go >= 1.24)
		return "rq:" + hex.EncodeToString(b[:]), nil
	case 1:
		if !validIdempotencyKey(keys[0]) {
			return "", pathstats.Errorf(pathstats.EInvalidParameter,
				"Idempotency-Key must be 1 to %d printable ASCII characters", maxIdempotencyKey)
		}
		sum := sha256.Sum256([]byte(keys[0]))
		return "ik:" + hex.EncodeToString(sum[:])[:32], nil
	}
	return "", pathstats.Errorf(pathstats.EInvalidParameter, "only one Idempotency-Key header is allowed")
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}
