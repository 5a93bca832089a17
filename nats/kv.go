package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pathstats/pathstats"
)

var _ pathstats.KV = (*KV)(nil)

// Defaults of KVConfig.
const (
	DefaultKVBucket       = "pathstats"
	DefaultKVMaxValueSize = 1 << 20
	// DefaultKVCompactInterval is how often delete markers are removed.
	DefaultKVCompactInterval = 10 * time.Minute
	// kvMarkerAge is the age a delete marker must reach before compaction
	// removes it; watchers have long seen it by then.
	kvMarkerAge = 15 * time.Minute
	// kvListTimeout bounds key listings when ctx has no deadline.
	kvListTimeout = 30 * time.Second
)

// KVConfig names the bucket and sets its limits. Zero values take the
// defaults.
type KVConfig struct {
	Bucket   string // default "pathstats"
	Replicas int    // default 1 (3 on a cluster)
	History  int    // values kept per key, 1–64, default 1
	// MaxValueSize is the largest value in bytes, default 1 MiB; it must
	// admit pathstats.MaxKVValue.
	MaxValueSize int32
	// CompactInterval is how often delete markers older than 15 minutes are
	// removed (default 10m; negative disables).
	CompactInterval time.Duration
	// TTL, when set, expires every value that long after its last write
	// (the bucket's max age); 0 keeps values until deleted.
	TTL time.Duration
}

func (c KVConfig) withDefaults() (KVConfig, error) {
	if c.Bucket == "" {
		c.Bucket = DefaultKVBucket
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.History == 0 {
		c.History = 1
	}
	if c.History < 1 || c.History > jetstream.KeyValueMaxHistory {
		return c, fmt.Errorf("kv history %d out of range 1-%d", c.History, jetstream.KeyValueMaxHistory)
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = DefaultKVMaxValueSize
	}
	if c.MaxValueSize > 0 && c.MaxValueSize < pathstats.MaxKVValue {
		return c, fmt.Errorf("kv max value size %d below %d", c.MaxValueSize, pathstats.MaxKVValue)
	}
	if c.CompactInterval == 0 {
		c.CompactInterval = DefaultKVCompactInterval
	}
	return c, nil
}

// KV is a pathstats.KV on a JetStream key-value bucket. Revisions are the
// bucket stream's sequence numbers. Keys are stored encoded (see encodeKey)
// because NATS keys only allow [-/_=.a-zA-Z0-9].
type KV struct {
	cfg     KVConfig
	nc      *natsgo.Conn
	kv      jetstream.KeyValue
	stream  jetstream.Stream
	pre     string // subject prefix of the bucket's keys
	ownConn bool
	closed  context.Context // done when Close is called
	stop    context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	log     *slog.Logger
}

// OpenKV creates the bucket if needed (or updates its configuration) and
// returns a KV on it. The KV does not close nc.
func OpenKV(ctx context.Context, nc *natsgo.Conn, cfg KVConfig) (*KV, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open kv: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open kv: %w", err)
	}
	kv, err := ensureBucket(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("open kv: create bucket %s: %w", cfg.Bucket, classify(err))
	}
	if err := waitStreamLeader(ctx, js, "KV_"+cfg.Bucket); err != nil {
		return nil, fmt.Errorf("open kv: bucket %s: %w", cfg.Bucket, classify(err))
	}
	stream, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open kv: bucket stream %s: %w", cfg.Bucket, classify(err))
	}
	k := &KV{
		cfg: cfg, nc: nc, kv: kv, stream: stream,
		pre: "$KV." + cfg.Bucket + ".",
		log: slog.Default().With("component", "nats-kv", "bucket", cfg.Bucket),
	}
	k.closed, k.stop = context.WithCancel(context.Background())
	if cfg.CompactInterval > 0 {
		k.wg.Add(1)
		go k.compactLoop()
	}
	return k, nil
}

// ensureBucket creates or updates the bucket, retrying the transient
// failures ensureStream retries.
func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg KVConfig) (jetstream.KeyValue, error) {
	kc := jetstream.KeyValueConfig{
		Bucket:       cfg.Bucket,
		Replicas:     cfg.Replicas,
		History:      uint8(cfg.History),
		MaxValueSize: cfg.MaxValueSize,
		Storage:      jetstream.FileStorage,
		TTL:          cfg.TTL,
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var kv jetstream.KeyValue
		if kv, err = js.CreateOrUpdateKeyValue(ctx, kc); !retryStream(err) {
			return kv, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, err
}

// OpenKVURL connects to an external NATS server or cluster (comma-separated
// nats:// URLs) and opens the bucket on it. Close closes the connection.
func OpenKVURL(ctx context.Context, url string, cfg KVConfig) (*KV, error) {
	nc, err := connectURL(ctx, url)
	if err != nil {
		return nil, err
	}
	k, err := OpenKV(ctx, nc, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	k.ownConn = true
	return k, nil
}

// Bucket is the name of the bucket.
func (k *KV) Bucket() string { return k.cfg.Bucket }

// Get returns the current value of key.
func (k *KV) Get(ctx context.Context, key string) (pathstats.KVEntry, error) {
	ek, err := encodeKey(key)
	if err != nil {
		return pathstats.KVEntry{}, fmt.Errorf("kv get: %w", err)
	}
	e, err := k.kv.Get(ctx, ek)
	if err != nil {
		return pathstats.KVEntry{}, kvErr("get", key, err)
	}
	return pathstats.KVEntry{Key: key, Value: e.Value(), Revision: e.Revision()}, nil
}

// Put stores value unconditionally.
func (k *KV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	ek, err := encodeKey(key)
	if err != nil {
		return 0, fmt.Errorf("kv put: %w", err)
	}
	rev, err := k.kv.Put(ctx, ek, value)
	if err != nil {
		return 0, kvErr("put", key, err)
	}
	return rev, nil
}

// Create stores value if key is absent or deleted; ErrConflict otherwise.
func (k *KV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	ek, err := encodeKey(key)
	if err != nil {
		return 0, fmt.Errorf("kv create: %w", err)
	}
	rev, err := k.kv.Create(ctx, ek, value)
	if err != nil {
		return 0, kvErr("create", key, err)
	}
	return rev, nil
}

// Update stores value if key's revision is still rev; ErrConflict otherwise.
func (k *KV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	ek, err := encodeKey(key)
	if err != nil {
		return 0, fmt.Errorf("kv update: %w", err)
	}
	nrev, err := k.kv.Update(ctx, ek, value, rev)
	if err != nil {
		return 0, kvErr("update", key, err)
	}
	return nrev, nil
}

// Delete writes a delete marker for key (watchers see it); deleting an
// absent key is not an error.
func (k *KV) Delete(ctx context.Context, key string) error {
	ek, err := encodeKey(key)
	if err != nil {
		return fmt.Errorf("kv delete: %w", err)
	}
	if err := k.kv.Delete(ctx, ek); err != nil {
		return kvErr("delete", key, err)
	}
	return nil
}

// Keys lists the present keys starting with prefix, sorted.
func (k *KV) Keys(ctx context.Context, prefix string) ([]string, error) {
	ctx, cancel := withDefaultTimeout(ctx, kvListTimeout)
	defer cancel()
	entries, err := k.list(ctx, keysFilter(prefix), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("kv keys %q: %w", prefix, err)
	}
	keys := make([]string, 0, len(entries))
	for _, e := range entries {
		key, err := decodeKey(e.Key())
		if err != nil {
			k.log.Warn("kv key not written by pathstats", "key", e.Key())
			continue
		}
		if strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// list returns the latest entry (headers only) of each key matching filter.
func (k *KV) list(ctx context.Context, filter string, opts ...jetstream.WatchOpt) ([]jetstream.KeyValueEntry, error) {
	w, err := k.kv.Watch(ctx, filter, append(opts, jetstream.MetaOnly())...)
	if err != nil {
		return nil, classify(err)
	}
	defer stopWatcher(w)
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("%w: watcher closed", pathstats.ErrUnavailable)
			}
			if e == nil {
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, classify(ctx.Err())
		}
	}
}

// Watch sends key's current entry (if present), then every change, until
// ctx ends or the KV is closed; then the channel closes. A delete arrives as
// an entry with Deleted set.
func (k *KV) Watch(ctx context.Context, key string) (<-chan pathstats.KVEntry, error) {
	ek, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("kv watch: %w", err)
	}
	var floor uint64
	if k.cfg.Replicas > 1 {
		if floor, err = k.leaderLastSeq(ctx, k.pre+ek); err != nil {
			return nil, kvErr("watch", key, err)
		}
	}
	w, err := k.kv.Watch(ctx, ek)
	if err != nil {
		return nil, kvErr("watch", key, err)
	}
	out := make(chan pathstats.KVEntry, 16)
	go k.pump(ctx, w, key, floor, out)
	return out, nil
}

// leaderLastSeq asks the bucket stream's leader (not a follower, which may
// lag) for the sequence of subj's last message; 0 when there is none.
func (k *KV) leaderLastSeq(ctx context.Context, subj string) (uint64, error) {
	ctx, cancel := withDefaultTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := json.Marshal(map[string]string{"last_by_subj": subj})
	if err != nil {
		return 0, err
	}
	msg, err := k.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+k.cfg.Bucket, req)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("last message of %s: %w", subj, err)
	}
	switch {
	case resp.Error != nil && resp.Error.Code == 404:
		return 0, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("last message of %s: %s", subj, resp.Error.Description)
	case resp.Message == nil:
		return 0, nil
	}
	return resp.Message.Seq, nil
}

// pump converts the watcher's entries for key and forwards them to out.
// Entries older than floor (the leader's last revision of key when the
// watch began; a watcher placed on a lagging replica replays them) are
// dropped, and so is a delete marker at floor (the key is absent).
func (k *KV) pump(ctx context.Context, w jetstream.KeyWatcher, key string, floor uint64, out chan<- pathstats.KVEntry) {
	defer close(out)
	defer stopWatcher(w)
	initial := true
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case e, ok = <-w.Updates():
		case <-ctx.Done():
			return
		case <-k.closed.Done():
			return
		}
		switch {
		case !ok:
			return
		case e == nil: // initial values done
			initial = false
			continue
		}
		entry, skip := convertEntry(key, e, initial)
		if skip || e.Revision() < floor || (e.Revision() == floor && entry.Deleted) {
			continue
		}
		select {
		case out <- entry:
		case <-ctx.Done():
			return
		case <-k.closed.Done():
			return
		}
	}
}

// convertEntry turns a watcher entry into a KVEntry; a delete marker among
// the initial values is skipped (the key is absent).
func convertEntry(key string, e jetstream.KeyValueEntry, initial bool) (pathstats.KVEntry, bool) {
	if e.Operation() != jetstream.KeyValuePut {
		return pathstats.KVEntry{Key: key, Revision: e.Revision(), Deleted: true}, initial
	}
	return pathstats.KVEntry{Key: key, Value: e.Value(), Revision: e.Revision()}, false
}

// stopWatcher unsubscribes w and drains its channel so a delivery blocked
// on it can finish and the channel gets closed.
func stopWatcher(w jetstream.KeyWatcher) {
	_ = w.Stop()
	go func() {
		for range w.Updates() {
		}
	}()
}

// Ping checks the connection and that the bucket answers.
func (k *KV) Ping(ctx context.Context) error {
	if !k.nc.IsConnected() {
		return fmt.Errorf("ping kv: %w (%s)", pathstats.ErrUnavailable, k.nc.Status())
	}
	if _, err := k.kv.Status(ctx); err != nil {
		return fmt.Errorf("ping kv: %w", classify(err))
	}
	return nil
}

// PurgeDeletes removes the delete markers older than olderThan (and the
// revisions before them) and returns how many it removed. A value written
// after a marker is never removed.
func (k *KV) PurgeDeletes(ctx context.Context, olderThan time.Duration) (int, error) {
	ctx, cancel := withDefaultTimeout(ctx, kvListTimeout)
	defer cancel()
	entries, err := k.list(ctx, jetstream.AllKeys)
	if err != nil {
		return 0, fmt.Errorf("kv purge deletes: %w", err)
	}
	limit := time.Now().Add(-olderThan)
	n := 0
	for _, e := range entries {
		if e.Operation() == jetstream.KeyValuePut || e.Created().After(limit) {
			continue
		}
		err := k.stream.Purge(ctx, jetstream.WithPurgeSubject(k.pre+e.Key()),
			jetstream.WithPurgeSequence(e.Revision()+1))
		if err != nil {
			return n, fmt.Errorf("kv purge deletes: %w", classify(err))
		}
		n++
	}
	return n, nil
}

func (k *KV) compactLoop() {
	defer k.wg.Done()
	t := time.NewTicker(k.cfg.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-k.closed.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), kvListTimeout)
		n, err := k.PurgeDeletes(ctx, kvMarkerAge)
		cancel()
		if err != nil {
			k.log.Warn("kv compaction failed", "err", err)
		} else if n > 0 {
			k.log.Debug("kv delete markers removed", "count", n)
		}
	}
}

// Close stops watchers and compaction, and closes the connection if
// OpenKVURL made it.
func (k *KV) Close() error {
	k.once.Do(func() {
		k.stop()
		k.wg.Wait()
		if k.ownConn {
			k.nc.Close()
		}
	})
	return nil
}

// kvErr maps a JetStream KV error to the pathstats errors.
func kvErr(op, key string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return fmt.Errorf("kv %s %q: %w", op, key, pathstats.ErrNotFound)
	case isConflict(err):
		return fmt.Errorf("kv %s %q: %w", op, key, pathstats.ErrConflict)
	}
	return fmt.Errorf("kv %s %q: %w", op, key, classify(err))
}

// isConflict reports a failed compare-and-set: wrong last sequence (10071,
// or 10164 on replicated streams).
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// Key encoding. NATS keys allow only [-/_=.a-zA-Z0-9], with '.' separating
// non-empty tokens. A ':' becomes '.' where that leaves every token
// non-empty (not first, not last, not right after another ':'); '=' '.' ':'
// elsewhere and every other byte outside [-/_a-zA-Z0-9] become =XX (hex).
// Decoding maps '.' back to ':' and =XX to the byte, so it is exact.

// encodeKey encodes a pathstats key as a NATS KV key.
func encodeKey(key string) (string, error) {
	if key == "" {
		return "", errors.New("empty key")
	}
	return encode(key, true), nil
}

// encode encodes s; whole is false when s is only the start of a key (a
// final ':' then still counts as followed by something).
func encode(s string, whole bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ':' && i > 0 && (i < len(s)-1 || !whole) && s[i-1] != ':':
			b.WriteByte('.')
		case plainKeyByte(c):
			b.WriteByte(c)
		default:
			b.WriteByte('=')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
	}
	return b.String()
}

const hexDigits = "0123456789ABCDEF"

func plainKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '/'
}

// decodeKey reverses encodeKey.
func decodeKey(ek string) (string, error) {
	var b strings.Builder
	b.Grow(len(ek))
	for i := 0; i < len(ek); i++ {
		switch c := ek[i]; c {
		case '.':
			b.WriteByte(':')
		case '=':
			if i+2 >= len(ek) {
				return "", fmt.Errorf("bad escape in key %q", ek)
			}
			v, err := strconv.ParseUint(ek[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("bad escape in key %q", ek)
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// keysFilter is the subject filter (relative to the bucket) that matches
// every encoded key starting with prefix: the encoded prefix up to its last
// '.' that does not depend on what follows, then '>'.
func keysFilter(prefix string) string {
	if len(prefix) < 2 {
		return jetstream.AllKeys
	}
	enc := encode(prefix[:len(prefix)-1], false)
	i := strings.LastIndexByte(enc, '.')
	if i < 0 {
		return jetstream.AllKeys
	}
	return enc[:i+1] + jetstream.AllKeys
}
