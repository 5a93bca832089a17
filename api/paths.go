package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pathstats/pathstats"
)

// Query parameter limits of the /paths contract.
const (
	DefaultLimit = 50
	MaxLimit     = 200
	MaxQueryLen  = 256 // characters of q
	maxProxyLen  = 64
)

// Data sources named in metadata.dataSource (the plan's names).
const (
	SourceSnapshot = "kv-snapshot"
	SourceSQL      = "d1-fallback"
	SourceLegacy   = "do-legacy"
)

// PathsResult is one answered page of a path list.
type PathsResult struct {
	Items []PathItemJSON
	Total int
	Meta  PathsMeta
}

// PathsMeta is the metadata object of a path list answer.
type PathsMeta struct {
	DataSource string  `json:"dataSource"`
	Version    *uint64 `json:"version"`
	Timestamp  string  `json:"timestamp"`
	AgeSeconds int64   `json:"ageSeconds"`
	Stale      bool    `json:"stale"`
	// Reason says why the SQL fallback answered (config missing, checksum…).
	Reason string `json:"reason,omitempty"`
}

// PathsSource answers a path query (the v2 read path, the legacy system, or
// the canary router choosing between them).
type PathsSource interface {
	Paths(ctx context.Context, q pathstats.PathQuery) (PathsResult, error)
}

// PathItemJSON is a path item in the plan's UnifiedPathConfig shape plus
// pathstats' extra fields. StatusClasses and Latency are nil, and left out
// of the JSON, in answers from a source that does not keep them (the
// legacy system): absent, not zero.
type PathItemJSON struct {
	Path             string                    `json:"path"`
	RequestCount     int64                     `json:"requestCount"`
	ErrorCount       int64                     `json:"errorCount"`
	ClientErrorCount int64                     `json:"clientErrorCount"`
	LastAccessed     string                    `json:"lastAccessed,omitempty"`
	Cache            pathstats.CacheConfig     `json:"cache"`
	RateLimit        pathstats.RateLimitConfig `json:"rateLimit"`
	Geo              pathstats.GeoConfig       `json:"geo"`
	ProxyID          string                    `json:"proxyId,omitempty"`
	ProxyPattern     string                    `json:"proxyPattern,omitempty"`
	Metadata         ItemMetadata              `json:"metadata"`
	StatusClasses    map[string]int64          `json:"statusClasses,omitempty"`
	Latency          *LatencyJSON              `json:"latency,omitempty"`
}

// ItemMetadata says where a path item's configuration comes from.
type ItemMetadata struct {
	CreatedAt string `json:"createdAt"`
	UpdatedAt string `json:"updatedAt"`
	Source    string `json:"source"` // auto | manual
}

// LatencyJSON holds estimated latency percentiles in milliseconds.
type LatencyJSON struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

var statusClassNames = [pathstats.NumStatusClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// NewPathItem renders a path item merged with its config (nil: source auto,
// created/updated at the data's timestamp) and its route's pattern.
func NewPathItem(it *pathstats.PathItem, cfg *pathstats.PathConfig, pattern string, dataTime time.Time) PathItemJSON {
	out := PathItemJSON{
		Path: it.Path, RequestCount: it.Requests, ErrorCount: it.Errors, ClientErrorCount: it.ClientErrors,
		ProxyID: it.ProxyID, ProxyPattern: pattern,
		StatusClasses: make(map[string]int64, pathstats.NumStatusClasses),
	}
	if it.LastAccessedMs > 0 {
		out.LastAccessed = time.UnixMilli(it.LastAccessedMs).UTC().Format(time.RFC3339Nano)
	}
	for i, n := range it.Status {
		out.StatusClasses[statusClassNames[i]] = n
	}
	out.Latency = &LatencyJSON{
		P50: pathstats.PercentileOf(it.Latency[:], 0.50),
		P95: pathstats.PercentileOf(it.Latency[:], 0.95),
		P99: pathstats.PercentileOf(it.Latency[:], 0.99),
	}
	stamp := dataTime.UTC().Format(time.RFC3339)
	out.Metadata = ItemMetadata{CreatedAt: stamp, UpdatedAt: stamp, Source: "auto"}
	if cfg != nil {
		out.Cache, out.RateLimit, out.Geo = cfg.Cache, cfg.RateLimit, cfg.Geo
		if cfg.ProxyPattern != "" {
			out.ProxyPattern = cfg.ProxyPattern
		}
		out.Metadata = ItemMetadata{
			CreatedAt: cfg.CreatedAt.UTC().Format(time.RFC3339),
			UpdatedAt: cfg.UpdatedAt.UTC().Format(time.RFC3339),
			Source:    "manual",
		}
	}
	return out
}

// ParsePathQuery validates the /paths query parameters: q (literal,
// at most 256 characters), proxyId, page >= 1, limit >= 1 (clamped to 200).
func ParsePathQuery(v url.Values) (pathstats.PathQuery, error) {
	q := pathstats.PathQuery{Q: v.Get("q"), ProxyID: v.Get("proxyId"), Page: 1, Limit: DefaultLimit}
	if !utf8.ValidString(q.Q) || utf8.RuneCountInString(q.Q) > MaxQueryLen {
		return q, pathstats.Errorf(pathstats.EInvalidParameter, "q must be valid UTF-8 of at most %d characters", MaxQueryLen)
	}
	if !utf8.ValidString(q.ProxyID) || len(q.ProxyID) > maxProxyLen {
		return q, pathstats.Errorf(pathstats.EInvalidParameter, "proxyId must be at most %d bytes", maxProxyLen)
	}
	var err error
	if q.Page, err = positiveParam(v, "page", 1); err != nil {
		return q, err
	}
	if q.Limit, err = positiveParam(v, "limit", DefaultLimit); err != nil {
		return q, err
	}
	q.Limit = min(q.Limit, MaxLimit)
	// Deep pages past any data are fine; keep offsets far from overflow.
	if q.Page > 1_000_000_000/q.Limit {
		return q, pathstats.Errorf(pathstats.EInvalidParameter, "page is too large")
	}
	return q, nil
}

// positiveParam parses a parameter made of decimal digits only, >= 1.
func positiveParam(v url.Values, name string, def int) (int, error) {
	vals, ok := v[name]
	if !ok {
		return def, nil
	}
	s := vals[0]
	bad := pathstats.Errorf(pathstats.EInvalidParameter, "%s must be a positive integer, got %q", name, truncate(s, 32))
	if s == "" || len(s) > 12 {
		return 0, bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, bad
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// pathsEnvelope is the list answer of the contract.
type pathsEnvelope struct {
	Success    bool           `json:"success"`
	Data       []PathItemJSON `json:"data"`
	Pagination Pagination     `json:"pagination"`
	Metadata   PathsMeta      `json:"metadata"`
	Timestamp  string         `json:"timestamp"`
}

// Pagination is the pagination object of list answers.
type Pagination struct {
	Page       int  `json:"page"`
	Limit      int  `json:"limit"`
	Total      int  `json:"total"`
	TotalPages int  `json:"totalPages"`
	HasNext    bool `json:"hasNext"`
	HasPrev    bool `json:"hasPrev"`
}

// NewPagination computes the pagination object.
func NewPagination(page, limit, total int) Pagination {
	pages := (total + limit - 1) / limit
	return Pagination{Page: page, Limit: limit, Total: total, TotalPages: pages, HasNext: page < pages, HasPrev: page > 1}
}

// PathsHandler serves a path list from src. Header names the data source
// in X-Pathstats-Data-Source as well.
func PathsHandler(src PathsSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := ParsePathQuery(r.URL.Query())
		if err != nil {
			WriteError(w, err)
			return
		}
		res, err := src.Paths(r.Context(), q)
		if err != nil {
			WriteError(w, err)
			return
		}
		WritePaths(w, q, res)
	})
}

// WritePaths writes a path list answer.
func WritePaths(w http.ResponseWriter, q pathstats.PathQuery, res PathsResult) {
	if res.Items == nil {
		res.Items = []PathItemJSON{}
	}
	w.Header().Set("X-Pathstats-Data-Source", res.Meta.DataSource)
	WriteJSON(w, http.StatusOK, pathsEnvelope{
		Success:    true,
		Data:       res.Items,
		Pagination: NewPagination(q.Page, q.Limit, res.Total),
		Metadata:   res.Meta,
		Timestamp:  time.Now().UTC().Format(time.RFC3339),
	})
}
