package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/pathstats/pathstats"
)

// maxConfigBody bounds a path-config request body.
const maxConfigBody = 64 << 10

// PathConfigInput is the body of PUT /api/admin/path-configs; absent
// sections default to disabled.
type PathConfigInput struct {
	Path         string                     `json:"path"`
	ProxyID      string                     `json:"proxyId"`
	ProxyPattern string                     `json:"proxyPattern"`
	Cache        *pathstats.CacheConfig     `json:"cache"`
	RateLimit    *pathstats.RateLimitConfig `json:"rateLimit"`
	Geo          *pathstats.GeoConfig       `json:"geo"`
}

// PathConfigHandlers serves GET, PUT and DELETE /api/admin/path-configs
// (the path in the body or ?path=).
func PathConfigHandlers(store pathstats.PathConfigStore) map[string]http.Handler {
	return map[string]http.Handler{
		"GET /api/admin/path-configs":    http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { getPathConfigs(w, r, store) }),
		"PUT /api/admin/path-configs":    http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { putPathConfig(w, r, store) }),
		"DELETE /api/admin/path-configs": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { deletePathConfig(w, r, store) }),
	}
}

func getPathConfigs(w http.ResponseWriter, r *http.Request, store pathstats.PathConfigStore) {
	all, err := store.ListPathConfigs(r.Context())
	if err != nil {
		WriteError(w, unavailable(err))
		return
	}
	path, one := r.URL.Query()["path"]
	if !one {
		if all == nil {
			all = []pathstats.PathConfig{}
		}
		WriteData(w, http.StatusOK, all)
		return
	}
	for _, c := range all {
		if c.Path == path[0] {
			WriteData(w, http.StatusOK, c)
			return
		}
	}
	WriteError(w, pathstats.Errorf(pathstats.ENotFound, "no config for path %q", truncate(path[0], 64)))
}

func putPathConfig(w http.ResponseWriter, r *http.Request, store pathstats.PathConfigStore) {
	in, err := decodeConfigBody(w, r)
	if err != nil {
		WriteError(w, err)
		return
	}
	if in.Path == "" {
		in.Path = r.URL.Query().Get("path")
	}
	cfg, err := in.validate()
	if err != nil {
		WriteError(w, err)
		return
	}
	stored, err := store.PutPathConfig(r.Context(), cfg)
	if err != nil {
		WriteError(w, unavailable(err))
		return
	}
	WriteData(w, http.StatusOK, stored)
}

func deletePathConfig(w http.ResponseWriter, r *http.Request, store pathstats.PathConfigStore) {
	path := r.URL.Query().Get("path")
	if path == "" && r.ContentLength != 0 {
		in, err := decodeConfigBody(w, r)
		if err != nil {
			WriteError(w, err)
			return
		}
		path = in.Path
	}
	if err := validConfigPath(path); err != nil {
		WriteError(w, err)
		return
	}
	if err := store.DeletePathConfig(r.Context(), path); err != nil {
		if errors.Is(err, pathstats.ErrNotFound) {
			WriteError(w, pathstats.Errorf(pathstats.ENotFound, "no config for path %q", truncate(path, 64)))
			return
		}
		WriteError(w, unavailable(err))
		return
	}
	WriteData(w, http.StatusOK, map[string]any{"deleted": path})
}

// decodeConfigBody reads a JSON body strictly: unknown fields, trailing
// data, wrong types and oversize bodies are 400/413/415.
func decodeConfigBody(w http.ResponseWriter, r *http.Request) (PathConfigInput, error) {
	var in PathConfigInput
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return in, pathstats.Errorf(pathstats.EUnsupportedMediaType, "Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxConfigBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return in, pathstats.Errorf(pathstats.EPayloadTooLarge, "body larger than %d bytes", maxConfigBody)
		}
		return in, pathstats.Errorf(pathstats.EInvalidBody, "read body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, pathstats.Errorf(pathstats.EInvalidBody, "invalid JSON: %v", err)
	}
	if dec.More() {
		return in, pathstats.Errorf(pathstats.EInvalidBody, "invalid JSON: trailing data")
	}
	return in, nil
}

func validConfigPath(p string) error {
	if p == "" || p[0] != '/' || len(p) > pathstats.MaxPathLength || !utf8.ValidString(p) {
		return pathstats.Errorf(pathstats.EInvalidParameter, "path must start with / and be valid UTF-8 of at most %d bytes", pathstats.MaxPathLength)
	}
	return nil
}

func (in PathConfigInput) validate() (pathstats.PathConfig, error) {
	out := pathstats.PathConfig{Path: in.Path, ProxyID: in.ProxyID, ProxyPattern: in.ProxyPattern}
	if err := validConfigPath(in.Path); err != nil {
		return out, err
	}
	bad := func(format string, args ...any) error {
		return pathstats.Errorf(pathstats.EInvalidBody, format, args...)
	}
	if len(in.ProxyID) > maxProxyLen || len(in.ProxyPattern) > pathstats.MaxPathLength {
		return out, bad("proxyId or proxyPattern too long")
	}
	if in.Cache != nil {
		if in.Cache.TTLSeconds < 0 || in.Cache.TTLSeconds > 365*24*3600 {
			return out, bad("cache.ttlSeconds must be between 0 and 31536000")
		}
		out.Cache = *in.Cache
	}
	if in.RateLimit != nil {
		if in.RateLimit.RequestsPerMinute < 0 || in.RateLimit.RequestsPerMinute > 1e9 {
			return out, bad("rateLimit.requestsPerMinute must be between 0 and 1000000000")
		}
		out.RateLimit = *in.RateLimit
	}
	if in.Geo != nil {
		for _, list := range [][]string{in.Geo.Allow, in.Geo.Deny} {
			if len(list) > 300 {
				return out, bad("geo lists hold at most 300 country codes")
			}
			for _, c := range list {
				if !isCountryCode(c) {
					return out, bad("geo country code %q must be two upper-case letters", truncate(c, 8))
				}
			}
		}
		out.Geo = *in.Geo
	}
	return out, nil
}

func isCountryCode(c string) bool {
	return len(c) == 2 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z'
}

// unavailable maps a backend failure to 503 without internals.
func unavailable(err error) error {
	var pe *pathstats.Error
	if errors.As(err, &pe) {
		return err
	}
	slog.Warn("storage error answered as 503", "err", err)
	return pathstats.Errorf(pathstats.EUnavailable, "storage unavailable; retry later")
}
