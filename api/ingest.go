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
	"github.com/pathstats/pathstats/internal/lograte"
)

// DefaultPublishTimeout bounds the publishing of one request's batches.
const DefaultPublishTimeout = 5 * time.Second

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 200

// BatchBuilder turns validated events into queue batches (the recorder).
type BatchBuilder interface {
	// BuildBatches normalises paths, applies the cardinality guard,
	// aggregates per (path, proxyId, hour) and splits the result into batches
	// whose ids derive deterministically from baseID and the events as sent.
	// Events with a zero Time happened at now. It must not keep events after
	// it returns: the slice is reused.
	BuildBatches(baseID string, events []pathstats.Event, now time.Time) []*pathstats.Batch
}

// Publisher stores a message durably under msgID (pathstats.Queue does).
type Publisher interface {
	Publish(ctx context.Context, msgID string, data []byte) error
}

// Ingest serves POST /api/v1/events: it validates a whole request, builds
// its batches and answers 202 only once every batch is enqueued.
type Ingest struct {
	Builder BatchBuilder
	Queue   Publisher
	// Keys binds each Idempotency-Key to the digest of its body (see
	// IdempotencyTTL); it must expire entries no sooner than that. Without
	// it a key only deduplicates through its batch ids.
	Keys pathstats.KV
	// Observer is told of the batches of every request the queue accepted,
	// once per request (not for a duplicate): the legacy dual write.
	Observer  pathstats.BatchObserver
	Retention time.Duration // oldest event age accepted; DefaultRetention when 0
	Now       func() time.Time
	Logger    *slog.Logger
	Metrics   *IngestMetrics
	// PublishTimeout bounds publishing a request's batches;
	// DefaultPublishTimeout when 0.
	PublishTimeout time.Duration

	lim lograte.Limiter // queue and key store failures, one line per kind and interval
}

// IngestResult is the data of a 202 answer. Duplicate is true when the
// request repeats an accepted one (same Idempotency-Key, same body): nothing
// was counted again.
type IngestResult struct {
	Accepted  int    `json:"accepted"`
	BatchID   string `json:"batchId"`
	Duplicate bool   `json:"duplicate"`
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
	key, err := idempotencyKey(r.Header)
	if err != nil {
		return res, 0, err
	}
	d := decoderPool.Get().(*decoder)
	defer decoderPool.Put(d)
	now := h.now()
	d.reset(now, h.Retention)
	digest, err := h.decode(w, r, d, ndjson, key != "")
	if err != nil {
		if key != "" && digest != "" {
			return h.rejected(r.Context(), key, digest, d.n, err)
		}
		return res, d.n, err
	}
	if key == "" {
		return h.accept(r.Context(), randomBaseID(), d.events, now)
	}
	return h.acceptKeyed(r.Context(), key, digest, d.events, now)
}

// accept publishes the batches of events and tells the observer.
func (h *Ingest) accept(ctx context.Context, baseID string, events []pathstats.Event, now time.Time) (IngestResult, int, error) {
	batches, err := h.enqueue(ctx, baseID, events, now)
	if err != nil {
		return IngestResult{}, len(events), err
	}
	h.observe(batches)
	return IngestResult{Accepted: len(events), BatchID: baseID}, 0, nil
}

// enqueue builds the batches of events and publishes them.
func (h *Ingest) enqueue(ctx context.Context, baseID string, events []pathstats.Event, now time.Time) ([]*pathstats.Batch, error) {
	batches := h.Builder.BuildBatches(baseID, events, now)
	return batches, h.publish(ctx, batches)
}

// acceptKeyed accepts a request under an Idempotency-Key: the key is bound
// to the body's digest before anything is published, and the observer is
// told only by the attempt that completes the key.
func (h *Ingest) acceptKeyed(ctx context.Context, key, digest string, events []pathstats.Event, now time.Time) (IngestResult, int, error) {
	base := keyedBaseID(key, digest)
	if h.Keys == nil {
		return h.accept(ctx, base, events, now)
	}
	claim, err := h.claimKey(ctx, key, digest, len(events))
	if err != nil {
		return IngestResult{}, len(events), err
	}
	if claim.done {
		return IngestResult{Accepted: claim.rec.Accepted, BatchID: base, Duplicate: true}, 0, nil
	}
	batches, err := h.enqueue(ctx, base, events, now)
	if err != nil {
		return IngestResult{}, len(events), err
	}
	first, err := h.completeKey(ctx, key, claim)
	switch {
	case err != nil:
		// Every batch is enqueued: the request is accepted. A retry finds
		// the key pending and publishes duplicates, which the ledger skips.
		h.lim.Warn(h.logger(), "ingest: could not mark idempotency key done", "err", err)
		h.observe(batches)
	case first:
		h.observe(batches)
	}
	return IngestResult{Accepted: len(events), BatchID: base, Duplicate: !first && err == nil}, 0, nil
}

// rejected answers an invalid body sent under a key: the original answer
// when it repeats an accepted request (events may have aged out of the
// accepted time range since), 422 when the key is bound to another body,
// else the validation error.
func (h *Ingest) rejected(ctx context.Context, key, digest string, decoded int, verr error) (IngestResult, int, error) {
	if h.Keys == nil {
		return IngestResult{}, decoded, verr
	}
	rec, _, err := h.loadKey(ctx, key)
	switch {
	case err != nil:
		return IngestResult{}, decoded, verr
	case rec.Digest != digest:
		return IngestResult{}, decoded, errKeyReused
	case rec.Done:
		return IngestResult{Accepted: rec.Accepted, BatchID: keyedBaseID(key, digest), Duplicate: true}, 0, nil
	}
	return IngestResult{}, decoded, verr
}

func (h *Ingest) observe(batches []*pathstats.Batch) {
	if h.Observer == nil {
		return
	}
	for _, b := range batches {
		h.Observer.ObserveBatch(b)
	}
}

// decode reads the body into d and checks it holds at least one event and
// no invalid one. With withDigest it returns the body's digest (empty when
// the body could not be read whole).
func (h *Ingest) decode(w http.ResponseWriter, r *http.Request, d *decoder, ndjson, withDigest bool) (digest string, err error) {
	buf, err := readBody(w, r)
	if err != nil {
		return "", err
	}
	if withDigest {
		digest = bodyDigest(buf.Bytes())
	}
	err = d.decode(buf.Bytes(), ndjson)
	if buf.Cap() <= 2*MaxBodyBytes {
		bodyPool.Put(buf)
	}
	switch {
	case errors.Is(err, errTooManyEvents):
		return digest, pathstats.Errorf(pathstats.EPayloadTooLarge, "more than %d events in one request", MaxEvents)
	case err != nil:
		return digest, err
	case d.probs.total > 0:
		return digest, d.invalidError()
	case d.n == 0:
		return digest, pathstats.Errorf(pathstats.EInvalidBody, "no events in the body")
	}
	return digest, nil
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
			h.lim.Warn(h.logger(), "ingest publish failed", "batch", b.ID,
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

// idempotencyKey returns the request's Idempotency-Key, "" when it has none.
func idempotencyKey(h http.Header) (string, error) {
	keys := h.Values("Idempotency-Key")
	switch len(keys) {
	case 0:
		return "", nil
	case 1:
		if !validIdempotencyKey(keys[0]) {
			return "", pathstats.Errorf(pathstats.EInvalidParameter,
				"Idempotency-Key must be 1 to %d printable ASCII characters", maxIdempotencyKey)
		}
		return keys[0], nil
	}
	return "", pathstats.Errorf(pathstats.EInvalidParameter, "only one Idempotency-Key header is allowed")
}

// randomBaseID is the base batch id of a request without a key.
func randomBaseID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go >= 1.24)
	return "rq:" + hex.EncodeToString(b[:])
}

// keyedBaseID derives the base batch id from the key and the body's digest,
// so a retry reproduces it and another body never shares its batch ids.
func keyedBaseID(key, digest string) string {
	sum := sha256.Sum256([]byte(key + "\n" + digest))
	return "ik:" + hex.EncodeToString(sum[:])[:32]
}

// bodyDigest is the hex SHA-256 of a request body.
func bodyDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
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
