package pathstats

import (
	"context"
	"time"
)

// PathQuery selects a page of paths: Q is a case-insensitive literal
// substring ("" = all), ProxyID an exact match ("" = all). Results are
// sorted by requests descending, then path, then proxyId.
type PathQuery struct {
	Q       string
	ProxyID string
	Page    int // >= 1
	Limit   int // 1..200
}

// Offset is the index of the page's first item.
func (q PathQuery) Offset() int { return (q.Page - 1) * q.Limit }

// PathItem is one path's totals over a window.
type PathItem struct {
	Path           string
	ProxyID        string
	Requests       int64
	Errors         int64
	ClientErrors   int64
	Status         [NumStatusClasses]int64
	Latency        [NumLatencyBuckets]int64
	LastAccessedMs int64 // unix ms of the latest event
}

// PathPage is one page of a PathQuery and the number of matching paths.
type PathPage struct {
	Items []PathItem
	Total int
}

// ComparePathItems orders items by requests descending, then path, then
// proxyId: the one order every data source uses.
func ComparePathItems(a, b *PathItem) int {
	switch {
	case a.Requests > b.Requests:
		return -1
	case a.Requests < b.Requests:
		return 1
	case a.Path < b.Path:
		return -1
	case a.Path > b.Path:
		return 1
	case a.ProxyID < b.ProxyID:
		return -1
	case a.ProxyID > b.ProxyID:
		return 1
	}
	return 0
}

// WindowReader answers the read path from SQL: per-path totals over the
// rolling window (the last 24 hours: hour buckets >= HourBucket(now-24h)).
type WindowReader interface {
	// WindowTotals returns every path of the window, in ComparePathItems
	// order, with the window's first hour bucket.
	WindowTotals(ctx context.Context) ([]PathItem, int64, error)
	// QueryPaths filters, sorts and pages the window (the SQL fallback).
	QueryPaths(ctx context.Context, q PathQuery) (PathPage, error)
}

// PathConfig is the per-path configuration merged into path items.
type PathConfig struct {
	Path         string          `json:"path"`
	ProxyID      string          `json:"proxyId,omitempty"`
	ProxyPattern string          `json:"proxyPattern,omitempty"`
	Cache        CacheConfig     `json:"cache"`
	RateLimit    RateLimitConfig `json:"rateLimit"`
	Geo          GeoConfig       `json:"geo"`
	CreatedAt    time.Time       `json:"createdAt"`
	UpdatedAt    time.Time       `json:"updatedAt"`
}

// CacheConfig is a path's cache setting.
type CacheConfig struct {
	Enabled    bool `json:"enabled"`
	TTLSeconds int  `json:"ttlSeconds,omitempty"`
}

// RateLimitConfig is a path's rate limit.
type RateLimitConfig struct {
	Enabled           bool `json:"enabled"`
	RequestsPerMinute int  `json:"requestsPerMinute,omitempty"`
}

// GeoConfig restricts a path by country code.
type GeoConfig struct {
	Enabled bool     `json:"enabled"`
	Allow   []string `json:"allow,omitempty"`
	Deny    []string `json:"deny,omitempty"`
}

// PathConfigStore keeps path configs (source "manual") in SQL.
type PathConfigStore interface {
	ListPathConfigs(ctx context.Context) ([]PathConfig, error)
	// PutPathConfig creates or replaces a config (CreatedAt kept on replace)
	// and returns the stored value.
	PutPathConfig(ctx context.Context, c PathConfig) (PathConfig, error)
	// DeletePathConfig removes a config; ErrNotFound when absent.
	DeletePathConfig(ctx context.Context, path string) error
}
