package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/pathstats/pathstats"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminConfig wires the admin listener.
type AdminConfig struct {
	Token    string       // bearer token for everything under /api/
	Ingest   http.Handler // POST /api/v1/events
	Gatherer prometheus.Gatherer
	Checks   map[string]func(context.Context) error // /readyz
	// Extra are authenticated routes, keyed by ServeMux pattern, e.g.
	// "GET /api/admin/paths".
	Extra map[string]http.Handler
	// Public are unauthenticated routes outside /api/, e.g. "GET /{$}" for
	// the dashboard.
	Public map[string]http.Handler
}

// NewAdminMux returns the admin listener's handler: /healthz, /readyz and
// /metrics are open; everything under /api/ needs the bearer token. Unknown
// routes answer 404 NOT_FOUND and known routes with another method 405
// METHOD_NOT_ALLOWED, both as JSON.
func NewAdminMux(cfg AdminConfig) http.Handler {
	api := http.NewServeMux()
	if cfg.Ingest != nil {
		api.Handle("POST /api/v1/events", cfg.Ingest)
	}
	for pattern, h := range cfg.Extra {
		api.Handle(pattern, h)
	}
	api.Handle("/api/", fallback(api, "/api/"))

	gatherer := cfg.Gatherer
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}
	root := http.NewServeMux()
	root.Handle("GET /healthz", Healthz())
	root.Handle("GET /readyz", Readyz(cfg.Checks))
	root.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	root.Handle("/api/", RequireToken(cfg.Token, api))
	for pattern, h := range cfg.Public {
		root.Handle(pattern, h)
	}
	if _, ok := cfg.Public["/"]; !ok {
		root.Handle("/", fallback(root, "/"))
	}
	return root
}

// probeMethods are tried to tell a wrong method from an unknown path.
var probeMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// fallback is the catch-all route of mux at pattern: 405 with an Allow header
// when another method has a route for the path, else 404.
func fallback(mux *http.ServeMux, pattern string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range probeMethods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := mux.Handler(probe); p != "" && p != pattern {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			WriteError(w, pathstats.Errorf(pathstats.ENotFound, "no such route"))
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		WriteError(w, pathstats.Errorf(pathstats.EMethodNotAllowed, "method not allowed; allowed: %s", strings.Join(allow, ", ")))
	})
}
