package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/lograte"
	"github.com/pathstats/pathstats/lease"
)

// leaseName is the lease that elects the one snapshot writer.
const leaseName = "snapshotter"

// DefaultLeaseTTL is how long the snapshotter lease lasts without renewal.
// Every build renews it, so it should exceed the build interval.
const DefaultLeaseTTL = 30 * time.Second

// WriterOptions configures a Writer. Zero values take the defaults.
type WriterOptions struct {
	// Holder identifies this node in the lease (default host-pid-random).
	Holder string
	// LeaseTTL is the snapshotter lease's time to live (DefaultLeaseTTL).
	LeaseTTL time.Duration
	// ChunkSize is the largest chunk (pathstats.MaxKVValue).
	ChunkSize int
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Writer builds snapshot versions from the window in SQL and publishes
// them to KV. One Writer per node; across nodes the "snapshotter" lease
// lets one write at a time.
type Writer struct {
	kv      pathstats.KV
	src     pathstats.WindowReader
	opts    WriterOptions
	lease   *lease.Lease
	metrics *metrics
	log     *slog.Logger
	lim     lograte.Limiter // build failures
	mu      sync.Mutex      // one build at a time on this node
	trigger chan struct{}
}

// NewWriter returns a Writer that reads src and publishes to kv.
func NewWriter(kv pathstats.KV, src pathstats.WindowReader, opts WriterOptions) *Writer {
	if opts.Holder == "" {
		opts.Holder = defaultHolder()
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.ChunkSize <= 0 || opts.ChunkSize > pathstats.MaxKVValue {
		opts.ChunkSize = pathstats.MaxKVValue
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &Writer{
		kv: kv, src: src, opts: opts,
		lease:   lease.New(kv, leaseName, opts.Holder, opts.LeaseTTL),
		metrics: newMetrics(opts.Registerer),
		log:     opts.Logger.With("component", "snapshot-writer", "holder", opts.Holder),
		trigger: make(chan struct{}, 1),
	}
	w.lease.SetLogger(opts.Logger)
	return w
}

func defaultHolder() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// Build takes (or renews) the snapshotter lease, reads the window and
// publishes a new version: chunks first, then snapshot:config, then
// snapshot:latest, then deletes chunks older than the previous version.
// It returns ErrBusy, having written nothing, when another node holds the
// lease. The lease is kept after the build (this node stays the writer
// until it stops renewing); Close gives it up.
func (w *Writer) Build(ctx context.Context) (Config, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	cfg, err := w.build(ctx)
	result := resultOK
	switch {
	case errors.Is(err, ErrBusy):
		result = resultBusy
	case err != nil:
		result = resultError
	}
	w.metrics.observe(result, time.Since(start), cfg)
	if result == resultError {
		w.logFailure(ctx, err, time.Since(start))
	}
	if err == nil {
		w.log.Debug("snapshot published", "version", cfg.Version, "paths", cfg.PathCount,
			"bytes", cfg.Bytes, "chunks", cfg.Chunks, "took", time.Since(start))
	}
	return cfg, err
}

// logFailure logs a build counted as an error (rate-limited), with the
// cause of ctx when it ended (the lease lost, and why).
func (w *Writer) logFailure(ctx context.Context, err error, took time.Duration) {
	args := []any{"err", err, "took", took}
	if ctx.Err() != nil {
		args = append(args, "cause", context.Cause(ctx))
	}
	w.lim.Warn(w.log, "snapshot build failed", args...)
}

func (w *Writer) build(ctx context.Context) (Config, error) {
	ok, err := w.lease.TryAcquire(ctx)
	if err != nil {
		return Config{}, fmt.Errorf("snapshot lease: %w", err)
	}
	if !ok {
		return Config{}, ErrBusy
	}
	prev, prevRev, stored, err := w.current(ctx)
	if err != nil {
		return Config{}, err
	}
	readAt := time.Now().UTC().Truncate(time.Millisecond)
	items, windowStart, err := w.src.WindowTotals(ctx)
	if err != nil {
		return Config{}, fmt.Errorf("read window: %w", err)
	}
	sortIfNeeded(items)
	payload, err := encodePayload(items)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{
		Version:         nextVersion(prev.Version, stored),
		Timestamp:       readAt,
		PathCount:       len(items),
		Checksum:        checksum(payload),
		Bytes:           int64(len(payload)),
		WindowStartHour: windowStart,
	}
	chunks := split(payload, w.opts.ChunkSize)
	cfg.Chunks = len(chunks)
	if err := w.publish(ctx, cfg, chunks, prevRev); err != nil {
		return Config{}, err
	}
	if err := w.writeLatest(ctx, items); err != nil {
		return cfg, err
	}
	return cfg, w.deleteOld(ctx, stored, prev.Version)
}

// nextVersion is one above both the published version and every version
// with chunks in KV, so a version's keys are never written twice (leftovers
// of a crashed build are skipped, then deleted).
func nextVersion(published uint64, stored map[uint64][]string) uint64 {
	v := published
	for sv := range stored {
		v = max(v, sv)
	}
	return v + 1
}

// sortIfNeeded puts items in ComparePathItems order (WindowTotals promises
// it; this keeps the payload's order an invariant).
func sortIfNeeded(items []pathstats.PathItem) {
	for i := 1; i < len(items); i++ {
		if pathstats.ComparePathItems(&items[i-1], &items[i]) > 0 {
			slices.SortFunc(items, func(a, b pathstats.PathItem) int { return pathstats.ComparePathItems(&a, &b) })
			return
		}
	}
}

// current reads the published config (zero when absent or unreadable), its
// revision (0 when absent) and the chunk keys in KV by version.
func (w *Writer) current(ctx context.Context) (Config, uint64, map[uint64][]string, error) {
	var prev Config
	var rev uint64
	e, err := w.kv.Get(ctx, ConfigKey)
	switch {
	case errors.Is(err, pathstats.ErrNotFound):
	case err != nil:
		return Config{}, 0, nil, fmt.Errorf("read snapshot config: %w", err)
	default:
		rev = e.Revision
		if prev, err = parseConfig(e.Value); err != nil {
			w.log.Warn("replacing unreadable snapshot config", "err", err)
		}
	}
	keys, err := w.kv.Keys(ctx, chunkPrefix)
	if err != nil {
		return Config{}, 0, nil, fmt.Errorf("list snapshot chunks: %w", err)
	}
	chunks := make(map[uint64][]string)
	for _, k := range keys {
		if v, ok := chunkVersion(k); ok {
			chunks[v] = append(chunks[v], k)
		}
	}
	return prev, rev, chunks, nil
}

// publish writes the chunks, each with Create (a version is never
// rewritten; another writer racing for the same version makes this one
// fail at its first chunk), then the config with compare-and-set against
// the revision read before. On a lost race the chunks are removed.
func (w *Writer) publish(ctx context.Context, cfg Config, chunks [][]byte, prevRev uint64) error {
	for i, c := range chunks {
		if _, err := w.kv.Create(ctx, chunkKey(cfg.Version, i), c); err != nil {
			if errors.Is(err, pathstats.ErrConflict) && i == 0 {
				return fmt.Errorf("%w: version %d taken", ErrBusy, cfg.Version)
			}
			w.dropChunks(ctx, cfg.Version, i)
			return fmt.Errorf("write snapshot chunk %d: %w", i, err)
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode snapshot config: %w", err)
	}
	if prevRev == 0 {
		_, err = w.kv.Create(ctx, ConfigKey, b)
	} else {
		_, err = w.kv.Update(ctx, ConfigKey, b, prevRev)
	}
	if err != nil {
		w.dropChunks(ctx, cfg.Version, len(chunks))
		if errors.Is(err, pathstats.ErrConflict) {
			return fmt.Errorf("%w: config changed during build", ErrBusy)
		}
		return fmt.Errorf("write snapshot config: %w", err)
	}
	return nil
}

// dropChunks removes the first n chunks of an unpublished version; failures
// are left for the next build's cleanup.
func (w *Writer) dropChunks(ctx context.Context, version uint64, n int) {
	for i := range n {
		if err := w.kv.Delete(ctx, chunkKey(version, i)); err != nil {
			w.log.Warn("delete unpublished snapshot chunk", "version", version, "chunk", i, "err", err)
			return
		}
	}
}

// writeLatest stores the plan's snapshot:latest: the top paths that fit.
func (w *Writer) writeLatest(ctx context.Context, items []pathstats.PathItem) error {
	b, err := encodeLatest(items, pathstats.MaxKVValue)
	if err != nil {
		return err
	}
	if _, err := w.kv.Put(ctx, LatestKey, b); err != nil {
		return fmt.Errorf("write snapshot latest: %w", err)
	}
	return nil
}

// deleteOld deletes the chunks listed before the build, except those of the
// previous version, which a reader that just read the old config may still
// be loading. (The new version was not listed.)
func (w *Writer) deleteOld(ctx context.Context, stored map[uint64][]string, prev uint64) error {
	for v, keys := range stored {
		if v == prev {
			continue
		}
		for _, k := range keys {
			if err := w.kv.Delete(ctx, k); err != nil {
				return fmt.Errorf("delete snapshot v%d: %w", v, err)
			}
		}
	}
	return nil
}

// Trigger asks Run for a build now. Requests made while a build runs
// coalesce into one more build; on a node that is not the writer a request
// waits until it is elected (which builds at once anyway).
func (w *Writer) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Run campaigns for the snapshotter lease until ctx ends. While this node
// holds it, Run builds at once, then every interval and on Trigger; the
// lease is renewed in the background, so a long build does not lose it.
// On return the lease is released so another node can take over at once.
func (w *Writer) Run(ctx context.Context, interval time.Duration) error {
	w.lease.Run(ctx, func(ctx context.Context) { w.lead(ctx, interval) })
	return w.Close(context.WithoutCancel(ctx))
}

// lead is the build loop of the elected writer; ctx ends when the lease is
// lost.
func (w *Writer) lead(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_, _ = w.Build(ctx) // failures are counted and logged by Build
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.trigger:
		}
	}
}

// Close releases the snapshotter lease if this node holds it.
func (w *Writer) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return w.lease.Release(ctx)
}
