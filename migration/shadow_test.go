package migration

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// TestShadowComparesWhenEnabled: with enableComparison on, every answer is
// compared with the other source in the background; off, nothing is.
func TestShadowComparesWhenEnabled(t *testing.T) {
	newSrc, oldSrc := &fixedSource{source: "kv-snapshot"}, &fixedSource{source: "do-legacy"}
	sh := NewShadow(ShadowOptions{MaxInFlight: 64, Logger: slog.New(slog.DiscardHandler)})
	cfg := pathstats.MigrationConfig{NewAPIPercentage: 50, EnableComparison: true, Version: 1}
	rt := NewRouter(RouterOptions{Config: func() pathstats.MigrationConfig { return cfg }, New: newSrc, Old: oldSrc, Shadow: sh})
	for i := 0; i < 40; i++ {
		req := httptest.NewRequest("GET", "/api/admin/paths?q=x", nil)
		req.RemoteAddr = fmt.Sprintf("10.0.0.%d:1234", i+1)
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	}
	waitUntil(t, func() bool { return sh.Compared.Load() == 40 })
	if sh.Mismatched.Load() != 40 { // the fixed sources name different paths
		t.Fatalf("mismatched %d, want 40", sh.Mismatched.Load())
	}
	if newSrc.calls.Load()+oldSrc.calls.Load() != 80 {
		t.Fatalf("calls new %d old %d", newSrc.calls.Load(), oldSrc.calls.Load())
	}
	cfg.EnableComparison = false
	before := sh.Compared.Load()
	req := httptest.NewRequest("GET", "/api/admin/paths", nil)
	rt.ServeHTTP(httptest.NewRecorder(), req)
	time.Sleep(50 * time.Millisecond)
	if sh.Compared.Load() != before {
		t.Fatal("compared with enableComparison off")
	}
}

func TestShadowAgreeingSources(t *testing.T) {
	a, b := &fixedSource{source: "same"}, &fixedSource{source: "same"}
	sh := NewShadow(ShadowOptions{Logger: slog.New(slog.DiscardHandler)})
	cfg := pathstats.MigrationConfig{NewAPIPercentage: 100, EnableComparison: true, Version: 1}
	rt := NewRouter(RouterOptions{Config: func() pathstats.MigrationConfig { return cfg }, New: a, Old: b, Shadow: sh})
	rt.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/admin/paths", nil))
	waitUntil(t, func() bool { return sh.Compared.Load() == 1 })
	if sh.Mismatched.Load() != 0 {
		t.Fatal("agreeing pages counted as a mismatch")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
