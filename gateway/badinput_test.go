package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestMiddlewareEscapesControlChars: a request whose decoded path holds NUL
// or another control character is recorded with them percent-encoded.
func TestMiddlewareEscapesControlChars(t *testing.T) {
	rec := newTestRecorder()
	h := Middleware(rec, "p", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, tc := range []struct{ target, want string }{
		{"/a%00b", "/a%00b"},
		{"/a%0A%0d%09/x%7F", "/a%0A%0D%09/x%7F"},
		{"/%1F%1f", "/%1F%1F"},
		{"/plain%20space/é", "/plain space/é"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", tc.target, nil))
		if got := rec.next(t); got.path != tc.want {
			t.Errorf("%s: recorded %q, want %q", tc.target, got.path, tc.want)
		}
	}
}

// TestRawControlByteRefused: a raw control byte in the request line is
// refused by the HTTP server (400) before the middleware sees it, so
// nothing is recorded.
func TestRawControlByteRefused(t *testing.T) {
	rec := newTestRecorder()
	srv := httptest.NewServer(Middleware(rec, "p", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer srv.Close()
	for _, b := range []byte{0x00, 0x01, 0x1f, 0x7f} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /a%cb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("byte %#x: %v", b, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("byte %#x: status %d, want 400", b, resp.StatusCode)
		}
	}
	if n := rec.count(); n != 0 {
		t.Errorf("%d requests recorded", n)
	}
}
