package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMiddlewareStatus(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    int
	}{
		{"nothing written", func(http.ResponseWriter, *http.Request) {}, 200},
		{"body only", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hi") }, 200},
		{"first WriteHeader wins", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(201)
			w.WriteHeader(500)
		}, 201},
		{"write then WriteHeader", func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "x")
			w.WriteHeader(503)
		}, 200},
		{"1xx is not final", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(404)
		}, 404},
		{"io.Copy uses ReadFrom", func(w http.ResponseWriter, _ *http.Request) {
			if _, ok := w.(io.ReaderFrom); !ok {
				panic("no ReaderFrom")
			}
			io.Copy(w, strings.NewReader("data"))
		}, 200},
		{"5xx", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 502) }, 502},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newTestRecorder()
			h := Middleware(rec, "px", tc.handler)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/p/1", nil))
			if c := rec.next(t); c.status != tc.want || c.proxyID != "px" || c.path != "/p/1" {
				t.Fatalf("recorded %+v, want status %d", c, tc.want)
			}
		})
	}
}

func TestMiddlewareFields(t *testing.T) {
	rec := newTestRecorder()
	h := Middleware(rec, "api", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = "/rewritten" // the raw path was captured before
		time.Sleep(20 * time.Millisecond)
		w.WriteHeader(http.StatusTeapot)
	}))
	before := time.Now()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/Users/42//x?q=1", nil))
	after := time.Now()
	if w.Code != http.StatusTeapot {
		t.Fatalf("client got %d", w.Code)
	}
	c := rec.next(t)
	if c.proxyID != "api" || c.path != "/Users/42//x" || c.status != http.StatusTeapot {
		t.Fatalf("recorded %+v", c)
	}
	if c.latency < 20*time.Millisecond || c.latency > after.Sub(before) {
		t.Fatalf("latency %v outside [20ms, %v]", c.latency, after.Sub(before))
	}
	if c.at.Before(before) || c.at.After(after) {
		t.Fatalf("time %v outside [%v, %v]", c.at, before, after)
	}
}

func TestMiddlewarePanic(t *testing.T) {
	rec := newTestRecorder()
	h := Middleware(rec, "px", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic swallowed")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	if c := rec.next(t); c.status != 500 {
		t.Fatalf("recorded %d after a panic, want 500", c.status)
	}
}

func TestMiddlewareNilRecorder(t *testing.T) {
	next := http.NotFoundHandler()
	if h := Middleware(nil, "px", next); h == nil {
		t.Fatal("nil handler")
	} else if _, wrapped := h.(*recording); wrapped {
		t.Fatal("nil recorder still wraps")
	}
}

// TestMiddlewareFlush streams through a real server: the client must get the
// first chunk while the handler still waits for it.
func TestMiddlewareFlush(t *testing.T) {
	rec := newTestRecorder()
	gotFirst := make(chan struct{})
	h := Middleware(rec, "sse", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "one\n")
		w.(http.Flusher).Flush()
		select {
		case <-gotFirst:
		case <-time.After(time.Minute):
			return
		}
		io.WriteString(w, "two\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController.Flush: %v", err)
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	readStream(t, srv.URL, gotFirst)
	if c := rec.next(t); c.status != 200 || c.proxyID != "sse" {
		t.Fatalf("recorded %+v", c)
	}
}

// readStream reads "one", signals gotFirst, then expects "two".
func readStream(t *testing.T, url string, gotFirst chan struct{}) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for i, want := range []string{"one", "two"} {
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("line %d = %q, want %q", i, got, want)
			}
		case <-time.After(time.Minute):
			t.Fatalf("line %d not flushed", i)
		}
		if i == 0 {
			close(gotFirst)
		}
	}
}

func TestMiddlewareResponseController(t *testing.T) {
	rec := newTestRecorder()
	h := Middleware(rec, "px", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex: %v", err)
		}
		w.WriteHeader(204)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := rec.next(t); c.status != 204 {
		t.Fatalf("recorded %d", c.status)
	}
}

func TestMiddlewareHijack(t *testing.T) {
	rec := newTestRecorder()
	h := Middleware(rec, "ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello")
		brw.Flush()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	got, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(got), "HTTP/1.1 101") || !strings.HasSuffix(string(got), "hello") {
		t.Fatalf("client read %q", got)
	}
	if c := rec.next(t); c.status != 101 || c.proxyID != "ws" {
		t.Fatalf("recorded %+v", c)
	}
}
