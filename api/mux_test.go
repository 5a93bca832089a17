package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pathstats/pathstats"
	"github.com/prometheus/client_golang/prometheus"
)

func TestAdminMux(t *testing.T) {
	const token = "tok"
	q := &memQueue{}
	reg := prometheus.NewRegistry()
	ing := newTestIngest(q)
	ing.Metrics = NewIngestMetrics(reg)
	h := NewAdminMux(AdminConfig{
		Token:    token,
		Ingest:   ing,
		Gatherer: reg,
		Extra: map[string]http.Handler{
			"GET /api/admin/paths": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				WriteData(w, http.StatusOK, []string{"/a"})
			}),
		},
		Public: map[string]http.Handler{
			"GET /{$}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("dashboard")) }),
		},
	})
	auth := "Bearer " + token
	do := func(method, path, auth string) *httptest.ResponseRecorder {
		var body *strings.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"path":"/a","status":200}`)
		} else {
			body = strings.NewReader("")
		}
		r := httptest.NewRequest(method, path, body)
		r.Header.Set("Content-Type", ndjsonType)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	if w := do("GET", "/healthz", ""); w.Code != 200 {
		t.Errorf("healthz %d", w.Code)
	}
	if w := do("GET", "/readyz", ""); w.Code != 200 {
		t.Errorf("readyz %d %s", w.Code, w.Body)
	}
	wantAccepted(t, do("POST", "/api/v1/events", auth), 1)
	if w := do("GET", "/metrics", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `pathstats_ingest_requests_total{code="202"} 1`) {
		t.Errorf("metrics %d %s", w.Code, w.Body)
	}
	if w := do("GET", "/api/admin/paths", auth); w.Code != 200 || !strings.Contains(w.Body.String(), `"data":["/a"]`) {
		t.Errorf("extra route %d %s", w.Code, w.Body)
	}

	for _, path := range []string{"/api/v1/events", "/api/admin/paths", "/api/nope"} {
		wantError(t, do("POST", path, ""), 401, pathstats.EUnauthorized)
		wantError(t, do("POST", path, "Bearer wrong"), 401, pathstats.EUnauthorized)
	}
	wantError(t, do("GET", "/api/nope", auth), 404, pathstats.ENotFound)
	w := do("GET", "/api/v1/events", auth)
	wantError(t, w, 405, pathstats.EMethodNotAllowed)
	if w.Header().Get("Allow") != "POST" {
		t.Errorf("Allow = %q", w.Header().Get("Allow"))
	}
	w = do("DELETE", "/api/admin/paths", auth)
	wantError(t, w, 405, pathstats.EMethodNotAllowed)
	if w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow = %q", w.Header().Get("Allow"))
	}
	wantError(t, do("POST", "/healthz", ""), 405, pathstats.EMethodNotAllowed)
	wantError(t, do("GET", "/nope", ""), 404, pathstats.ENotFound)
	if w := do("GET", "/", ""); w.Code != 200 || w.Body.String() != "dashboard" {
		t.Errorf("public route %d %s", w.Code, w.Body)
	}
	if n := len(q.published()); n != 1 {
		t.Errorf("published %d batches, want 1", n)
	}
}
