package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats/internal/testutil"
)

// deadUpstream returns an address nothing listens on.
func deadUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestUpstreamFailuresLoggedPerRoute: upstream failures are logged with
// the error, at most one line per route per second, so one dead upstream
// under load neither floods the log nor hides another route's failure.
func TestUpstreamFailuresLoggedPerRoute(t *testing.T) {
	log, buf := testutil.NewLogger()
	h, err := NewProxy([]Route{mustRoute(t, "a=/a/*="+deadUpstream(t)), mustRoute(t, "b=/b/*="+deadUpstream(t))},
		newTestRecorder(), Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h.(*proxy).limiter.Every = time.Hour // however slow the machine, these requests fall in one interval
	for _, path := range []string{"/a/1", "/a/2", "/a/3", "/b/1", "/b/2"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusBadGateway {
			t.Fatalf("%s: status %d, want 502", path, w.Code)
		}
	}
	for _, route := range []string{"a", "b"} {
		lines := buf.Lines(`msg="upstream failed"`, "proxyId="+route+" ")
		if len(lines) != 1 || !strings.Contains(lines[0], "connection refused") {
			t.Fatalf("route %s: %d lines, want 1 with the error; log:\n%s", route, len(lines), buf.String())
		}
	}
}
