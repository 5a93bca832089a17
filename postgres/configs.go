package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats"
)

// configBody is the JSON stored in path_configs.config.
type configBody struct {
	Cache     pathstats.CacheConfig     `json:"cache"`
	RateLimit pathstats.RateLimitConfig `json:"rateLimit"`
	Geo       pathstats.GeoConfig       `json:"geo"`
}

// ListPathConfigs returns every path config, ordered by path.
func (s *StatsStore) ListPathConfigs(ctx context.Context) ([]pathstats.PathConfig, error) {
	rows, err := s.pool.Query(ctx, `SELECT path, proxy_id, proxy_pattern, config, created_at, updated_at
		FROM path_configs ORDER BY path`)
	if err != nil {
		return nil, fmt.Errorf("list path configs: %w", err)
	}
	out := []pathstats.PathConfig{}
	var c pathstats.PathConfig
	var body string
	var created, updated int64
	_, err = pgx.ForEachRow(rows, []any{&c.Path, &c.ProxyID, &c.ProxyPattern, &body, &created, &updated}, func() error {
		out = append(out, c)
		return decodeConfig(&out[len(out)-1], body, created, updated)
	})
	if err != nil {
		return nil, fmt.Errorf("list path configs: %w", err)
	}
	return out, nil
}

// PutPathConfig creates or replaces the config of c.Path. CreatedAt is the
// store's clock on creation and kept on replace; UpdatedAt is the clock now
// (both at millisecond precision, UTC). It returns the stored value.
func (s *StatsStore) PutPathConfig(ctx context.Context, c pathstats.PathConfig) (pathstats.PathConfig, error) {
	if c.Path == "" {
		return pathstats.PathConfig{}, pathstats.Errorf(pathstats.EInvalidBody, "path config needs a path")
	}
	body, err := json.Marshal(configBody{Cache: c.Cache, RateLimit: c.RateLimit, Geo: c.Geo})
	if err != nil {
		return pathstats.PathConfig{}, fmt.Errorf("put path config: encode: %w", err)
	}
	now := s.now().UnixMilli()
	var created, updated int64
	err = s.pool.QueryRow(ctx, `INSERT INTO path_configs
		(path, proxy_id, proxy_pattern, config, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (path) DO UPDATE SET proxy_id = excluded.proxy_id, proxy_pattern = excluded.proxy_pattern,
			config = excluded.config, updated_at = excluded.updated_at
		RETURNING created_at, updated_at`,
		c.Path, c.ProxyID, c.ProxyPattern, string(body), now, now).Scan(&created, &updated)
	if err != nil {
		return pathstats.PathConfig{}, fmt.Errorf("put path config %q: %w", c.Path, err)
	}
	out := pathstats.PathConfig{Path: c.Path, ProxyID: c.ProxyID, ProxyPattern: c.ProxyPattern}
	if err := decodeConfig(&out, string(body), created, updated); err != nil {
		return pathstats.PathConfig{}, fmt.Errorf("put path config: %w", err)
	}
	return out, nil
}

// DeletePathConfig removes the config of path; pathstats.ErrNotFound
// (wrapped) when there is none.
func (s *StatsStore) DeletePathConfig(ctx context.Context, path string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM path_configs WHERE path = $1`, path)
	if err != nil {
		return fmt.Errorf("delete path config %q: %w", path, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete path config %q: %w", path, pathstats.ErrNotFound)
	}
	return nil
}

// decodeConfig fills c from a stored row: the same decoding for List and
// Put, so both return equal values.
func decodeConfig(c *pathstats.PathConfig, body string, created, updated int64) error {
	var b configBody
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		return fmt.Errorf("decode config of %q: %w", c.Path, err)
	}
	c.Cache, c.RateLimit, c.Geo = b.Cache, b.RateLimit, b.Geo
	c.CreatedAt = time.UnixMilli(created).UTC()
	c.UpdatedAt = time.UnixMilli(updated).UTC()
	return nil
}
