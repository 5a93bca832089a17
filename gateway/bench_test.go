package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// countRecorder counts calls, the cheapest Recorder that does something.
type countRecorder struct{ n atomic.Int64 }

func (r *countRecorder) Record(string, string, int, time.Duration, time.Time) { r.n.Add(1) }

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the middleware alone.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func BenchmarkMiddleware(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	req := httptest.NewRequest("GET", "/api/users/42", nil)
	w := &discardWriter{h: http.Header{}}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", next},
		{"recorded", Middleware(nopRecorder{}, "api", next)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, req)
			}
		})
	}
}

func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	route, err := ParseRoute("api=/api/*=" + up.URL)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		rec  pathstats.Recorder
	}{
		{"record=off", nil},
		{"record=on", new(countRecorder)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h, err := NewProxy([]Route{route}, bc.rec, Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer h.(interface{ CloseIdleConnections() }).CloseIdleConnections()
			req := httptest.NewRequest("GET", "/api/users/42?x=1", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
