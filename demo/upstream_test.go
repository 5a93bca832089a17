package demo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func serve(h http.Handler, method, path string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestUpstreamRoutes(t *testing.T) {
	h := newUpstream(nil, nil)
	const order = "0b6f2c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
	tests := []struct {
		method, path string
		header       http.Header
		want         int
	}{
		{"GET", "/health", nil, 200},
		{"GET", "/api/users/42", nil, 200},
		{"GET", "/api/users/abc", nil, 404},
		{"GET", "/api/users/42/orders", nil, 200},
		{"POST", "/api/users/42/orders", nil, 201},
		{"GET", "/api/orders/" + order, nil, 200},
		{"GET", "/api/orders/not-a-uuid", nil, 404},
		{"DELETE", "/api/orders/" + order, nil, 204},
		{"GET", "/api/products", nil, 200},
		{"GET", "/api/products?page=3", nil, 200},
		{"GET", "/api/products?page=0", nil, 400},
		{"GET", "/api/search?q=shoes", nil, 200},
		{"GET", "/api/search", nil, 400},
		{"GET", "/api/account", nil, 401},
		{"GET", "/api/account", http.Header{"Authorization": {"Bearer x"}}, 200},
		{"GET", "/api/v1/users/7?x=1", nil, 301},
		{"GET", "/api/v2/users/7", nil, 200},
		{"GET", "/api/v2/orders/" + order, nil, 200},
		{"GET", "/static/app.3f9a1c2e.js", nil, 200},
		{"GET", "/static/app.3f9a1c2e.js", http.Header{"If-None-Match": {`"3f9a1c2e"`}}, 304},
		{"GET", "/static/app.3f9a1c2e.js", http.Header{"If-None-Match": {`"ffffffff"`}}, 200},
		{"GET", "/static/app.nothex.js", nil, 404},
		{"GET", "/", nil, 404},
		{"GET", "/wp-login.php", nil, 404},
		{"GET", "/api/orders", nil, 404},
		{"GET", "/api/v3/users/1", nil, 404},
		{"POST", "/health", nil, 404},
		{"PUT", "/api/users/42", nil, 404},
	}
	for _, tt := range tests {
		rec := serve(h, tt.method, tt.path, tt.header)
		if rec.Code != tt.want {
			t.Errorf("%s %s: status %d, want %d (body %q)", tt.method, tt.path, rec.Code, tt.want, rec.Body)
		}
	}

	if loc := serve(h, "GET", "/api/v1/users/7?x=1", nil).Header().Get("Location"); loc != "/api/v2/users/7?x=1" {
		t.Errorf("v1 redirect Location = %q", loc)
	}
	loc := serve(h, "POST", "/api/users/42/orders", nil).Header().Get("Location")
	if got := serve(h, "GET", loc, nil).Code; got != 200 {
		t.Errorf("GET created order %q: status %d, want 200", loc, got)
	}
}

func TestUpstreamFaults(t *testing.T) {
	h := newUpstream(nil, sampleFault)
	const n = 5000
	counts := map[int]int{}
	for range n {
		counts[serve(h, "GET", "/api/users/1", nil).Code]++
	}
	for code := range counts {
		switch code {
		case 200, 429, 500, 503:
		default:
			t.Errorf("unexpected status %d (%d times)", code, counts[code])
		}
	}
	for _, code := range []int{429, 500, 503} {
		if counts[code] == 0 {
			t.Errorf("no %d in %d requests: %v", code, n, counts)
		}
	}
	if counts[200] < n*95/100 {
		t.Errorf("only %d of %d requests succeeded: %v", counts[200], n, counts)
	}
	for range 500 {
		if code := serve(h, "GET", "/health", nil).Code; code != 200 {
			t.Fatalf("/health answered %d; faults apply only under /api/", code)
		}
	}
}

func TestSampleFault(t *testing.T) {
	for _, tt := range []struct {
		u    float64
		want int
	}{{0, 429}, {0.0099, 429}, {0.01, 500}, {0.0179, 500}, {0.018, 503}, {0.0219, 503}, {0.022, 0}, {0.9999, 0}} {
		if got := sampleFault(tt.u); got != tt.want {
			t.Errorf("sampleFault(%v) = %d, want %d", tt.u, got, tt.want)
		}
	}
}

func TestSampleLatency(t *testing.T) {
	if got := sampleLatency(1); got != minLatency {
		t.Errorf("sampleLatency(1) = %v, want %v", got, minLatency)
	}
	for _, u := range []float64{0, 1e-300, 1e-6} {
		if got := sampleLatency(u); got != maxLatency {
			t.Errorf("sampleLatency(%v) = %v, want cap %v", u, got, maxLatency)
		}
	}

	const n = 100_000
	var fast, slow int
	for i := 1; i <= n; i++ {
		d := sampleLatency(float64(i) / n)
		if d < minLatency || d > maxLatency {
			t.Fatalf("sampleLatency(%v) = %v outside [%v, %v]", float64(i)/n, d, minLatency, maxLatency)
		}
		if d < 10*time.Millisecond {
			fast++
		}
		if d > 100*time.Millisecond {
			slow++
		}
	}
	// Pareto(2ms, 1.2): P(<10ms) ≈ 0.86, P(>100ms) ≈ 0.009.
	if fast < n*80/100 {
		t.Errorf("%d of %d under 10ms, want most", fast, n)
	}
	if slow < n/500 || slow > n/50 {
		t.Errorf("%d of %d over 100ms, want a thin tail (~0.9%%)", slow, n)
	}
}

func TestUpstreamLatencyCap(t *testing.T) {
	srv := httptest.NewServer(Upstream())
	defer srv.Close()

	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			start := time.Now()
			resp, err := srv.Client().Get(srv.URL + "/api/users/1")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if d := time.Since(start); d > maxLatency+150*time.Millisecond {
				t.Errorf("request took %v, cap is %v", d, maxLatency)
			}
		})
	}
	wg.Wait()
}

func TestUpstreamSleepEndsWithRequest(t *testing.T) {
	h := newUpstream(func(float64) time.Duration { return time.Hour }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/health", nil)
	start := time.Now()
	h.ServeHTTP(httptest.NewRecorder(), req)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("handler slept %v after the request was abandoned", d)
	}
}
