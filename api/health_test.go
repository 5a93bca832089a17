package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHealthz(t *testing.T) {
	w := get(t, Healthz(), "/healthz")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	w := get(t, Readyz(map[string]func(context.Context) error{"queue": ok, "sql": ok}), "/readyz")
	var body readiness
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 200 {
		t.Fatalf("%d %s %v", w.Code, w.Body, err)
	}
	if body.Status != "ok" || body.Checks["queue"] != "ok" || body.Checks["sql"] != "ok" {
		t.Fatalf("body %+v", body)
	}

	release := make(chan struct{})
	defer close(release)
	const timeout = 200 * time.Millisecond
	checks := map[string]func(context.Context) error{
		"queue": ok,
		"sql": func(context.Context) error {
			return errors.New("dial postgres://admin:hunter2@db:5432/x password=hunter2: refused")
		},
		"kv":    func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		"stuck": func(context.Context) error { <-release; return nil },
		"panic": func(context.Context) error { panic("boom") },
		"long":  func(context.Context) error { return errors.New(strings.Repeat("é", 500)) },
	}
	start := time.Now()
	w = get(t, readyz(checks, timeout), "/readyz")
	if d := time.Since(start); d > timeout+500*time.Millisecond {
		t.Errorf("readyz took %v", d)
	}
	body = readiness{}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 503 {
		t.Fatalf("%d %s %v", w.Code, w.Body, err)
	}
	if body.Status != "unavailable" || body.Checks["queue"] != "ok" || body.Checks["kv"] != "timeout" ||
		body.Checks["stuck"] != "timeout" || body.Checks["panic"] != "check panicked" {
		t.Fatalf("body %+v", body)
	}
	if strings.Contains(w.Body.String(), "hunter2") || !strings.Contains(body.Checks["sql"], "refused") {
		t.Fatalf("sql check = %q", body.Checks["sql"])
	}
	if len(body.Checks["long"]) > maxCheckMessage+len("…") {
		t.Fatalf("long message kept %d bytes", len(body.Checks["long"]))
	}
}
