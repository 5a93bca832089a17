// Package redis is a pathstats.KV on Redis (go-redis).
//
// Each key is a hash {v: value, rev: n} under Prefix+"k:"+key; revisions
// come from one counter per store (Prefix+"rev"), so they grow on every
// change and across delete and re-create. A deletion leaves a short-lived
// tombstone (Prefix+"d:"+key holding the deletion revision) so watchers
// report it with its revision. Writes are Lua scripts, which makes
// compare-and-set atomic. Watch polls. On Redis Cluster put the prefix in a
// hash tag ("{pathstats}:") so a script's keys share a slot.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pathstats/pathstats"
)

var _ pathstats.KV = (*KV)(nil)

// Defaults of Options.
const (
	DefaultPrefix       = "pathstats:"
	DefaultPollInterval = 250 * time.Millisecond
	// tombstoneTTL is how long a deletion revision stays readable for
	// watchers; it is far above any sensible poll interval.
	tombstoneTTL = 10 * time.Minute
	// openTimeout bounds the ping of Open when ctx has no deadline.
	openTimeout = 5 * time.Second
	scanCount   = 1000
)

// Options configure a KV. Zero values take the defaults.
type Options struct {
	// Prefix starts every Redis key of the store (default "pathstats:").
	// Stores sharing a database need prefixes none of which starts with
	// another.
	Prefix string
	// PollInterval is how often Watch reads the key (default 250ms).
	PollInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	return o
}

// KV is a pathstats.KV on one Redis server.
type KV struct {
	opts    Options
	client  *goredis.Client
	counter string          // revision counter key
	closed  context.Context // done when Close is called
	stop    context.CancelFunc
	mu      sync.Mutex // orders Watch's wg.Add before Close's wg.Wait
	wg      sync.WaitGroup
	once    sync.Once
	log     *slog.Logger
}

// Open connects to the Redis server at url (redis://[user:pass@]host:port/db,
// rediss:// or unix://) and pings it.
func Open(ctx context.Context, url string, opts Options) (*KV, error) {
	ro, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("open redis kv: %w", err)
	}
	opts = opts.withDefaults()
	k := &KV{
		opts:    opts,
		client:  goredis.NewClient(ro),
		counter: opts.Prefix + "rev",
		log:     slog.Default().With("component", "redis-kv", "addr", ro.Addr, "prefix", opts.Prefix),
	}
	k.closed, k.stop = context.WithCancel(context.Background())
	pctx, cancel := withDefaultTimeout(ctx, openTimeout)
	defer cancel()
	if err := k.Ping(pctx); err != nil {
		_ = k.Close()
		return nil, fmt.Errorf("open redis kv %s: %w", ro.Addr, err)
	}
	return k, nil
}

// Prefix is the prefix of the store's Redis keys.
func (k *KV) Prefix() string { return k.opts.Prefix }

func (k *KV) dataKey(key string) string { return k.opts.Prefix + "k:" + key }
func (k *KV) tombKey(key string) string { return k.opts.Prefix + "d:" + key }

// scriptKeys are KEYS[1..3] of the write scripts.
func (k *KV) scriptKeys(key string) []string {
	return []string{k.dataKey(key), k.counter, k.tombKey(key)}
}

// Write scripts. KEYS: data hash, revision counter, tombstone. They return
// the new revision, or 0 when a condition fails (revisions start at 1).
var (
	putScript = goredis.NewScript(`
local r = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'rev', r)
redis.call('DEL', KEYS[3])
return r`)

	createScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local r = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'rev', r)
redis.call('DEL', KEYS[3])
return r`)

	updateScript = goredis.NewScript(`
if redis.call('HGET', KEYS[1], 'rev') ~= ARGV[2] then return 0 end
local r = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'rev', r)
return r`)

	deleteScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local r = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[3], r, 'PX', ARGV[1])
return r`)
)

// Get returns the current value of key.
func (k *KV) Get(ctx context.Context, key string) (pathstats.KVEntry, error) {
	vals, err := k.client.HMGet(ctx, k.dataKey(key), "v", "rev").Result()
	if err != nil {
		return pathstats.KVEntry{}, fmt.Errorf("kv get %q: %w", key, classify(err))
	}
	v, _ := vals[0].(string)
	revStr, ok := vals[1].(string)
	if !ok {
		return pathstats.KVEntry{}, fmt.Errorf("kv get %q: %w", key, pathstats.ErrNotFound)
	}
	rev, err := strconv.ParseUint(revStr, 10, 64)
	if err != nil {
		return pathstats.KVEntry{}, fmt.Errorf("kv get %q: bad revision %q", key, revStr)
	}
	return pathstats.KVEntry{Key: key, Value: []byte(v), Revision: rev}, nil
}

// Put stores value unconditionally.
func (k *KV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return k.write(ctx, "put", key, putScript, value)
}

// Create stores value if key is absent or deleted; ErrConflict otherwise.
func (k *KV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	return k.write(ctx, "create", key, createScript, value)
}

// Update stores value if key's revision is still rev; ErrConflict otherwise
// (also when key is absent).
func (k *KV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	return k.write(ctx, "update", key, updateScript, value, strconv.FormatUint(rev, 10))
}

// write runs a write script; a result of 0 is a conflict.
func (k *KV) write(ctx context.Context, op, key string, s *goredis.Script, args ...any) (uint64, error) {
	rev, err := s.Run(ctx, k.client, k.scriptKeys(key), args...).Uint64()
	if err != nil {
		return 0, fmt.Errorf("kv %s %q: %w", op, key, classify(err))
	}
	if rev == 0 {
		return 0, fmt.Errorf("kv %s %q: %w", op, key, pathstats.ErrConflict)
	}
	return rev, nil
}

// Delete removes key; deleting an absent key is not an error.
func (k *KV) Delete(ctx context.Context, key string) error {
	ttl := strconv.FormatInt(tombstoneTTL.Milliseconds(), 10)
	if err := deleteScript.Run(ctx, k.client, k.scriptKeys(key), ttl).Err(); err != nil {
		return fmt.Errorf("kv delete %q: %w", key, classify(err))
	}
	return nil
}

// Keys lists the present keys starting with prefix, sorted.
func (k *KV) Keys(ctx context.Context, prefix string) ([]string, error) {
	base := k.dataKey("")
	match := globEscape(base+prefix) + "*"
	seen := map[string]struct{}{}
	var cursor uint64
	for {
		batch, next, err := k.client.Scan(ctx, cursor, match, scanCount).Result()
		if err != nil {
			return nil, fmt.Errorf("kv keys %q: %w", prefix, classify(err))
		}
		for _, rk := range batch {
			seen[strings.TrimPrefix(rk, base)] = struct{}{}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	keys := make([]string, 0, len(seen))
	for key := range seen {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys, nil
}

// globEscape escapes the characters Redis MATCH patterns treat specially.
func globEscape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Ping checks that the server answers.
func (k *KV) Ping(ctx context.Context) error {
	if err := k.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", classify(err))
	}
	return nil
}

// Close stops the watchers and closes the connections.
func (k *KV) Close() error {
	var err error
	k.once.Do(func() {
		k.mu.Lock()
		k.stop()
		k.mu.Unlock()
		k.wg.Wait()
		if cerr := k.client.Close(); cerr != nil {
			err = fmt.Errorf("close redis kv: %w", cerr)
		}
	})
	return err
}

// classify wraps connection failures in ErrUnavailable; errors the server
// answered (other than "not now" states) stay as they are.
func classify(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) && !busyServer(err) {
		return err
	}
	return fmt.Errorf("%w: %w", pathstats.ErrUnavailable, err)
}

// busyServer reports server replies that mean "try later".
func busyServer(err error) bool {
	for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN"} {
		if goredis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
