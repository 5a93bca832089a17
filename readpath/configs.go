package readpath

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/lograte"
)

// ConfigCache keeps the path configs of this node in memory: changes made
// through it invalidate it at once; changes made on other nodes are picked
// up within TTL. Readers never wait on a reload when a previous map exists.
type ConfigCache struct {
	store pathstats.PathConfigStore
	ttl   time.Duration
	cur   atomic.Pointer[loadedConfigs]
	mu    sync.Mutex // one reload at a time
	lim   lograte.Limiter
}

type loadedConfigs struct {
	m      map[string]pathstats.PathConfig
	loaded time.Time
}

var _ pathstats.PathConfigStore = (*ConfigCache)(nil)

// NewConfigCache wraps store; ttl <= 0 means 5s.
func NewConfigCache(store pathstats.PathConfigStore, ttl time.Duration) *ConfigCache {
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	return &ConfigCache{store: store, ttl: ttl}
}

// Map returns configs by path. A stale map is reloaded by one caller while
// the others keep using it; on a storage error the last good map stays
// (configs are decoration; the statistics still answer).
func (c *ConfigCache) Map(ctx context.Context) map[string]pathstats.PathConfig {
	cur := c.cur.Load()
	if cur != nil && time.Since(cur.loaded) < c.ttl {
		return cur.m
	}
	if cur != nil && !c.mu.TryLock() {
		return cur.m
	}
	if cur == nil {
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if now := c.cur.Load(); now != nil && time.Since(now.loaded) < c.ttl {
		return now.m
	}
	list, err := c.store.ListPathConfigs(ctx)
	if err != nil {
		c.lim.Warn(slog.Default(), "path configs unavailable; using the last loaded", "err", err)
		if cur == nil {
			return nil
		}
		c.cur.Store(&loadedConfigs{m: cur.m, loaded: time.Now()})
		return cur.m
	}
	m := make(map[string]pathstats.PathConfig, len(list))
	for _, cfg := range list {
		m[cfg.Path] = cfg
	}
	c.cur.Store(&loadedConfigs{m: m, loaded: time.Now()})
	return m
}

func (c *ConfigCache) invalidate() { c.cur.Store(nil) }

// ListPathConfigs reads through to the store.
func (c *ConfigCache) ListPathConfigs(ctx context.Context) ([]pathstats.PathConfig, error) {
	return c.store.ListPathConfigs(ctx)
}

// PutPathConfig stores a config and invalidates the cache.
func (c *ConfigCache) PutPathConfig(ctx context.Context, cfg pathstats.PathConfig) (pathstats.PathConfig, error) {
	out, err := c.store.PutPathConfig(ctx, cfg)
	c.invalidate()
	return out, err
}

// DeletePathConfig removes a config and invalidates the cache.
func (c *ConfigCache) DeletePathConfig(ctx context.Context, path string) error {
	err := c.store.DeletePathConfig(ctx, path)
	c.invalidate()
	return err
}
