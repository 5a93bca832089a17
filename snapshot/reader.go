package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
)

// DefaultLoadTimeout bounds one fetch and decode of a version.
const DefaultLoadTimeout = time.Minute

// maxChunks bounds the chunk count a config may name (32 GiB of payload).
const maxChunks = 1 << 16

// ReaderOptions configures a Reader. Zero values take the defaults.
type ReaderOptions struct {
	// LoadTimeout bounds one fetch and decode, which is shared by every
	// concurrent Load of that version and so does not end with the ctx of
	// the caller that started it (DefaultLoadTimeout).
	LoadTimeout time.Duration
}

// Reader loads published versions from KV and holds the latest decoded
// View. It is safe for concurrent use.
type Reader struct {
	kv   pathstats.KV
	opts ReaderOptions
	seq  atomic.Uint64
	held atomic.Pointer[heldView]

	mu      sync.Mutex
	flights map[flightKey]*flight
}

// heldView is the current View and the sequence number of the Load that
// read its config: a slower Load of an older config never replaces it.
type heldView struct {
	view *View
	seq  uint64
}

type flightKey struct {
	version  uint64
	checksum string
}

// flight is one fetch and decode that concurrent Loads wait for.
type flight struct {
	done chan struct{}
	view *View
	err  error
}

// NewReader returns a Reader on kv.
func NewReader(kv pathstats.KV, opts ReaderOptions) *Reader {
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = DefaultLoadTimeout
	}
	return &Reader{kv: kv, opts: opts, flights: make(map[flightKey]*flight)}
}

// Current returns the held View, or nil before the first successful Load.
// It does no I/O.
func (r *Reader) Current() *View {
	if h := r.held.Load(); h != nil {
		return h.view
	}
	return nil
}

// Refresh is Load: the caller polls it (one small Get when nothing changed).
func (r *Reader) Refresh(ctx context.Context) (*View, error) { return r.Load(ctx) }

// Load reads snapshot:config and returns the View of the version it names:
// the held one when unchanged, otherwise the chunks are fetched, verified
// and decoded (once, however many Loads ask concurrently) and the new View
// replaces the held one. Errors wrap ErrNoConfig, ErrPayloadMissing,
// ErrChecksum, ErrDecode or pathstats.ErrUnavailable; the held View is then
// left as it was.
func (r *Reader) Load(ctx context.Context) (*View, error) {
	seq := r.seq.Add(1)
	cfg, err := r.readConfig(ctx)
	if err != nil {
		return nil, err
	}
	if h := r.held.Load(); h != nil && sameVersion(h.view.Config, cfg) {
		return h.view, nil
	}
	v, err := r.loadOnce(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r.swap(v, seq)
	return v, nil
}

func sameVersion(a, b Config) bool {
	return a.Version == b.Version && a.Checksum == b.Checksum
}

func (r *Reader) readConfig(ctx context.Context) (Config, error) {
	e, err := r.kv.Get(ctx, ConfigKey)
	if errors.Is(err, pathstats.ErrNotFound) {
		return Config{}, ErrNoConfig
	}
	if err != nil {
		return Config{}, unavailable("read snapshot config", err)
	}
	cfg, err := parseConfig(e.Value)
	if err == nil && cfg.Chunks > maxChunks {
		err = fmt.Errorf("%w: config names %d chunks", ErrDecode, cfg.Chunks)
	}
	return cfg, err
}

// unavailable wraps a KV error with pathstats.ErrUnavailable (unless it is
// the caller's cancellation).
func unavailable(op string, err error) error {
	if errors.Is(err, pathstats.ErrUnavailable) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, pathstats.ErrUnavailable, err)
}

// swap makes v the held View unless a Load that read the config later has
// already swapped in its own.
func (r *Reader) swap(v *View, seq uint64) {
	next := &heldView{view: v, seq: seq}
	for {
		cur := r.held.Load()
		if cur != nil && cur.seq > seq {
			return
		}
		if r.held.CompareAndSwap(cur, next) {
			return
		}
	}
}

// loadOnce joins the flight for cfg's version or starts it.
func (r *Reader) loadOnce(ctx context.Context, cfg Config) (*View, error) {
	key := flightKey{cfg.Version, cfg.Checksum}
	r.mu.Lock()
	f, ok := r.flights[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		r.flights[key] = f
		go r.fly(context.WithoutCancel(ctx), key, cfg, f)
	}
	r.mu.Unlock()
	select {
	case <-f.done:
		return f.view, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("load snapshot v%d: %w", cfg.Version, ctx.Err())
	}
}

func (r *Reader) fly(ctx context.Context, key flightKey, cfg Config, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.LoadTimeout)
	defer cancel()
	f.view, f.err = r.fetch(ctx, cfg)
	r.mu.Lock()
	delete(r.flights, key)
	r.mu.Unlock()
	close(f.done)
}

// fetch reads, verifies and decodes the payload cfg names.
func (r *Reader) fetch(ctx context.Context, cfg Config) (*View, error) {
	payload := make([]byte, 0, max(0, min(cfg.Bytes, int64(cfg.Chunks)*pathstats.MaxKVValue)))
	for i := range cfg.Chunks {
		e, err := r.kv.Get(ctx, chunkKey(cfg.Version, i))
		if errors.Is(err, pathstats.ErrNotFound) {
			return nil, fmt.Errorf("%w: chunk %d of v%d", ErrPayloadMissing, i, cfg.Version)
		}
		if err != nil {
			return nil, unavailable(fmt.Sprintf("read snapshot v%d chunk %d", cfg.Version, i), err)
		}
		payload = append(payload, e.Value...)
	}
	if int64(len(payload)) != cfg.Bytes {
		return nil, fmt.Errorf("%w: v%d has %d bytes, config says %d", ErrChecksum, cfg.Version, len(payload), cfg.Bytes)
	}
	if sum := checksum(payload); sum != cfg.Checksum {
		return nil, fmt.Errorf("%w: v%d is %s, config says %s", ErrChecksum, cfg.Version, sum, cfg.Checksum)
	}
	v, err := decodePayload(payload)
	if err != nil {
		return nil, fmt.Errorf("decode snapshot v%d: %w", cfg.Version, err)
	}
	if v.Len() != cfg.PathCount {
		return nil, fmt.Errorf("%w: v%d has %d paths, config says %d", ErrDecode, cfg.Version, v.Len(), cfg.PathCount)
	}
	v.Config = cfg
	return v, nil
}
