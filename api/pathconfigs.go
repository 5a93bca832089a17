package api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/inputerr"
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
	if err := validConfigPath(path[0], pathstats.EInvalidParameter); err != nil {
		WriteError(w, err)
		return
	}
	for _, c := range all {
		if c.Path == path[0] {
			WriteData(w, http.StatusOK, c)
			return
		}
	}
	WriteError(w, pathstats.Errorf(pathstats.ENotFound, "no config for path %s", inputerr.Quote(path[0])))
}

func putPathConfig(w http.ResponseWriter, r *http.Request, store pathstats.PathConfigStore) {
	in, err := decodeConfigBody(w, r)
	if err != nil {
		WriteError(w, err)
		return
	}
	if in.Path == "" {
		in.Path = r.URL.Query().Get("path")
		if err := validConfigPath(in.Path, pathstats.EInvalidParameter); err != nil {
			WriteError(w, err)
			return
		}
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
	path, pathCode := r.URL.Query().Get("path"), pathstats.EInvalidParameter
	if path == "" && r.ContentLength != 0 {
		in, err := decodeConfigBody(w, r)
		if err != nil {
			WriteError(w, err)
			return
		}
		path, pathCode = in.Path, pathstats.EInvalidBody
	}
	if err := validConfigPath(path, pathCode); err != nil {
		WriteError(w, err)
		return
	}
	if err := store.DeletePathConfig(r.Context(), path); err != nil {
		if errors.Is(err, pathstats.ErrNotFound) {
			WriteError(w, pathstats.Errorf(pathstats.ENotFound, "no config for path %s", inputerr.Quote(path)))
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
		return in, pathstats.Errorf(pathstats.EInvalidBody, "could not read the body")
	}
	return in, inputerr.DecodeJSON(body, &in)
}

// validConfigPath checks a config's path; code is INVALID_PARAMETER for
// ?path= and INVALID_BODY for the body's path field.
func validConfigPath(p string, code string) error {
	var rule string
	switch {
	case p == "":
		rule = "required (in the body or as ?path=)"
	case p[0] != '/':
		rule = `must start with "/"`
	case len(p) > pathstats.MaxPathLength:
		rule = fmt.Sprintf("longer than %d bytes", pathstats.MaxPathLength)
	case !utf8.ValidString(p):
		rule = "must be valid UTF-8"
	case pathstats.IndexControl(p) >= 0:
		rule = "must not contain control characters (bytes below 0x20 or 0x7f); percent-encode them as the gateway records them"
	default:
		return nil
	}
	return pathstats.Errorf(code, "path: %s", rule)
}

func (in PathConfigInput) validate() (pathstats.PathConfig, error) {
	out := pathstats.PathConfig{Path: in.Path, ProxyID: in.ProxyID, ProxyPattern: in.ProxyPattern}
	if err := validConfigPath(in.Path, pathstats.EInvalidBody); err != nil {
		return out, err
	}
	bad := func(format string, args ...any) error {
		return pathstats.Errorf(pathstats.EInvalidBody, format, args...)
	}
	if len(in.ProxyID) > maxProxyLen {
		return out, bad("proxyId: longer than %d bytes", maxProxyLen)
	}
	if len(in.ProxyPattern) > pathstats.MaxPathLength {
		return out, bad("proxyPattern: longer than %d bytes", pathstats.MaxPathLength)
	}
	if in.Cache != nil {
		if in.Cache.TTLSeconds < 0 || in.Cache.TTLSeconds > 365*24*3600 {
			return out, bad("cache.ttlSeconds: must be between 0 and 31536000")
		}
		out.Cache = *in.Cache
	}
	if in.RateLimit != nil {
		if in.RateLimit.RequestsPerMinute < 0 || in.RateLimit.RequestsPerMinute > 1e9 {
			return out, bad("rateLimit.requestsPerMinute: must be between 0 and 1000000000")
		}
		out.RateLimit = *in.RateLimit
	}
	if in.Geo != nil {
		for _, err := range []error{countryCodes("geo.allow", in.Geo.Allow), countryCodes("geo.deny", in.Geo.Deny)} {
			if err != nil {
				return out, err
			}
		}
		out.Geo = *in.Geo
	}
	return out, nil
}

// countryCodes checks the geo list named name: at most 300 two-letter
// upper-case country codes.
func countryCodes(name string, list []string) error {
	if len(list) > 300 {
		return pathstats.Errorf(pathstats.EInvalidBody, "%s: holds at most 300 country codes", name)
	}
	for i, c := range list {
		if !isCountryCode(c) {
			return pathstats.Errorf(pathstats.EInvalidBody, "%s[%d]: %s must be two upper-case letters", name, i, inputerr.Quote(c))
		}
	}
	return nil
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
	logLimit.Warn(slog.Default(), "storage error answered as 503", "err", err)
	return pathstats.Errorf(pathstats.EUnavailable, "storage unavailable; retry later")
}
