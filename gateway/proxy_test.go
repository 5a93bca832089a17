package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// seen is what the echo upstream reports about the request it got.
type seen struct {
	Name, Path, RawQuery, Host string
	Header                     http.Header
}

// echoUpstream answers with what it received, as JSON, with the given status.
func echoUpstream(t *testing.T, name string, status int, delay time.Duration) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(seen{name, r.URL.Path, r.URL.RawQuery, r.Host, r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// front serves a proxy over the given routes on a real listener.
func front(t *testing.T, rec *testRecorder, opts Options, routes ...string) *httptest.Server {
	t.Helper()
	var rs []Route
	for _, s := range routes {
		rs = append(rs, mustRoute(t, s))
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := NewProxy(rs, rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	})
	return srv
}

func get(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func getSeen(t *testing.T, req *http.Request) (int, seen) {
	t.Helper()
	resp, body := get(t, req)
	var s seen
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("upstream answer %q: %v", body, err)
	}
	return resp.StatusCode, s
}

func newReq(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestProxyRoutesAndRecords(t *testing.T) {
	api := echoUpstream(t, "api", http.StatusCreated, 20*time.Millisecond)
	def := echoUpstream(t, "default", http.StatusOK, 0)
	rec := newTestRecorder()
	fr := front(t, rec, Options{}, "api="+"/api/*="+api.URL, "default=/*="+def.URL+"/base")

	before := time.Now()
	status, s := getSeen(t, newReq(t, fr.URL+"/api/users/42?x=1&y=a%20b;c&x=2"))
	if status != http.StatusCreated || s.Name != "api" || s.Path != "/api/users/42" || s.RawQuery != "x=1&y=a%20b;c&x=2" {
		t.Fatalf("api route: %d %+v", status, s)
	}
	if s.Host != strings.TrimPrefix(api.URL, "http://") {
		t.Errorf("upstream Host = %q", s.Host)
	}
	c := rec.next(t)
	if c.proxyID != "api" || c.path != "/api/users/42" || c.status != http.StatusCreated {
		t.Fatalf("recorded %+v", c)
	}
	if c.latency < 20*time.Millisecond || c.latency > time.Since(before) {
		t.Errorf("latency %v", c.latency)
	}
	if c.at.Before(before) || c.at.After(time.Now()) {
		t.Errorf("time %v", c.at)
	}

	status, s = getSeen(t, newReq(t, fr.URL+"/other/thing"))
	if status != http.StatusOK || s.Name != "default" || s.Path != "/base/other/thing" || s.RawQuery != "" {
		t.Fatalf("default route: %d %+v", status, s)
	}
	if c := rec.next(t); c.proxyID != "default" || c.path != "/other/thing" || c.status != 200 {
		t.Fatalf("recorded %+v", c)
	}
}

func TestProxyForwardedHeaders(t *testing.T) {
	up := echoUpstream(t, "up", 200, 0)
	fr := front(t, newTestRecorder(), Options{}, "default=/*="+up.URL)
	frontHost := strings.TrimPrefix(fr.URL, "http://")

	req := newReq(t, fr.URL+"/x")
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	req.Header.Set("Forwarded", "for=1.2.3.4")
	_, s := getSeen(t, req)
	if got := s.Header.Get("X-Forwarded-For"); got != "1.2.3.4, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := s.Header.Get("X-Forwarded-Host"); got != frontHost {
		t.Errorf("X-Forwarded-Host = %q, want %q", got, frontHost)
	}
	if got := s.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := s.Header.Get("Forwarded"); got != "" {
		t.Errorf("Forwarded = %q, want it dropped", got)
	}

	req = newReq(t, fr.URL+"/x")
	req.Header.Add("X-Forwarded-For", "10.0.0.1")
	req.Header.Add("X-Forwarded-For", "10.0.0.2, 10.0.0.3")
	req.Header.Set("X-Forwarded-Host", "api.example.com")
	req.Header.Set("X-Forwarded-Proto", "https")
	_, s = getSeen(t, req)
	if got := s.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := s.Header.Get("X-Forwarded-Host"); got != "api.example.com" {
		t.Errorf("X-Forwarded-Host = %q, want the inbound one", got)
	}
	if got := s.Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q, want the inbound one", got)
	}

	_, s = getSeen(t, newReq(t, fr.URL+"/x"))
	if got := s.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For without inbound = %q", got)
	}
}

type errorBody struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

func checkErrorBody(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	var e errorBody
	if resp.StatusCode != status || json.Unmarshal(body, &e) != nil || e.Success || e.Error != "UNAVAILABLE" || e.Message == "" {
		t.Fatalf("got %d %q, want %d with an UNAVAILABLE error body", resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestProxyUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more

	rec := newTestRecorder()
	fr := front(t, rec, Options{}, "dead=/*=http://"+addr)
	resp, body := get(t, newReq(t, fr.URL+"/a/b"))
	checkErrorBody(t, resp, body, http.StatusBadGateway)
	if c := rec.next(t); c.status != http.StatusBadGateway || c.proxyID != "dead" || c.path != "/a/b" {
		t.Fatalf("recorded %+v", c)
	}
}

func TestProxyUpstreamTimeout(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // until the proxy gives up
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	}))
	defer slow.Close()
	rec := newTestRecorder()
	fr := front(t, rec, Options{UpstreamTimeout: 100 * time.Millisecond}, "slow=/*="+slow.URL)

	start := time.Now()
	resp, body := get(t, newReq(t, fr.URL+"/slow"))
	checkErrorBody(t, resp, body, http.StatusGatewayTimeout)
	// Far below the upstream's minute: the proxy's 100 ms timeout answered,
	// with room for a busy machine.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("504 after %v", d)
	}
	c := rec.next(t)
	if c.status != http.StatusGatewayTimeout || c.proxyID != "slow" || c.latency < 100*time.Millisecond {
		t.Fatalf("recorded %+v", c)
	}
}

func TestProxyClientGone(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	arrived := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	rec := newTestRecorder()
	fr := front(t, rec, Options{}, "up=/*="+up.URL)

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	req := newReq(t, fr.URL+"/gone").WithContext(ctx)
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("client error %v", err)
	}
	if c := rec.next(t); c.status != StatusClientClosed || c.path != "/gone" {
		t.Fatalf("recorded %+v", c)
	}
}

func TestProxyNoRoute(t *testing.T) {
	up := echoUpstream(t, "up", 200, 0)
	rec := newTestRecorder()
	h, err := NewProxy([]Route{mustRoute(t, "api=/api/*="+up.URL)}, rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/wp-login.php", nil))
	var e errorBody
	if w.Code != 404 || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error != "NOT_FOUND" {
		t.Fatalf("got %d %q", w.Code, w.Body)
	}
	if n := rec.count(); n != 0 {
		t.Fatalf("unmatched path recorded %d times", n)
	}
}

func TestNewProxyErrors(t *testing.T) {
	if _, err := NewProxy(nil, nil, Options{}); err == nil {
		t.Error("no routes accepted")
	}
	bad := Route{ProxyID: "x", Pattern: "/x"}
	if _, err := NewProxy([]Route{bad}, nil, Options{}); err == nil {
		t.Error("route without upstream accepted")
	}
}

// TestProxyStreaming checks flushing end to end: upstream → proxy →
// middleware → client.
func TestProxyStreaming(t *testing.T) {
	gotFirst := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "one\n")
		w.(http.Flusher).Flush()
		select {
		case <-gotFirst:
		case <-time.After(time.Minute):
			return
		}
		io.WriteString(w, "two\n")
	}))
	defer up.Close()
	rec := newTestRecorder()
	fr := front(t, rec, Options{}, "sse=/events="+up.URL)
	readStream(t, fr.URL+"/events", gotFirst)
	if c := rec.next(t); c.status != 200 || c.proxyID != "sse" {
		t.Fatalf("recorded %+v", c)
	}
}

func TestProxyNilRecorder(t *testing.T) {
	up := echoUpstream(t, "up", 200, 0)
	h, err := NewProxy([]Route{mustRoute(t, "default=/*="+up.URL)}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	if status, s := getSeen(t, newReq(t, srv.URL+"/p")); status != 200 || s.Path != "/p" {
		t.Fatalf("%d %+v", status, s)
	}
}
