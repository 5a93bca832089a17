package gateway

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestNewServerTimeouts(t *testing.T) {
	s := NewServer("127.0.0.1:0", http.NotFoundHandler())
	if s.ReadHeaderTimeout != 10*time.Second || s.ReadTimeout != 60*time.Second ||
		s.WriteTimeout != 0 || s.IdleTimeout != 120*time.Second || s.MaxHeaderBytes != 1<<20 {
		t.Fatalf("timeouts %+v", s)
	}
}

// TestServerSlowloris: a client that never finishes its header is cut off
// after ReadHeaderTimeout.
func TestServerSlowloris(t *testing.T) {
	srv := NewServer("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.ReadHeaderTimeout = 200 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	_, err = io.ReadAll(conn) // returns once the server closes the connection
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("still connected after %v", elapsed)
	}
	// The upper bound leaves room for a busy machine; without the header
	// timeout the connection would stay open until the minute's deadline.
	if elapsed < 150*time.Millisecond || elapsed > 30*time.Second {
		t.Fatalf("disconnected after %v, want about 200ms", elapsed)
	}
}
