package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pathstats/pathstats"
)

// StatusClientClosed is recorded when the client went away before any
// response was written (nginx's 499); it counts as a client error.
const StatusClientClosed = 499

// Middleware records every response of next: rec.Record(proxyID, path,
// status, latency, end) with path the request's URL.Path as received (before
// next can change it; control characters percent-encoded, so /a%00b is
// recorded as "/a%00b", never with a raw NUL), status the first final status written (200 when next
// writes nothing, 101 when it hijacks the connection first, 500 when it
// panics first), latency the time spent in next.ServeHTTP and end the time
// it returned. The Recorder interface takes no method, so none is recorded.
//
// The ResponseWriter handed to next keeps http.Flusher, http.Hijacker,
// io.ReaderFrom and http.ResponseController working (it has Unwrap). It is
// pooled: like any ResponseWriter it must not be used after ServeHTTP
// returns. A nil rec returns next unchanged.
func Middleware(rec pathstats.Recorder, proxyID string, next http.Handler) http.Handler {
	if rec == nil {
		return next
	}
	return &recording{rec: rec, proxyID: proxyID, next: next}
}

type recording struct {
	rec     pathstats.Recorder
	proxyID string
	next    http.Handler
}

var writerPool = sync.Pool{New: func() any { return new(statusWriter) }}

func (m *recording) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := escapeControl(r.URL.Path)
	sw := writerPool.Get().(*statusWriter)
	sw.rw, sw.status = w, 0
	returned := false
	start := time.Now()
	defer func() {
		end := time.Now()
		status := sw.result(returned)
		if returned {
			// A panicking handler may have left goroutines holding sw.
			*sw = statusWriter{}
			writerPool.Put(sw)
		}
		m.rec.Record(m.proxyID, path, status, end.Sub(start), end)
	}()
	m.next.ServeHTTP(sw, r)
	returned = true
}

// statusWriter remembers the final status written through it.
type statusWriter struct {
	rw     http.ResponseWriter
	status int // 0 until a final status is known
}

// result is the status to record.
func (w *statusWriter) result(returned bool) int {
	switch {
	case w.status != 0:
		return w.status
	case returned:
		return http.StatusOK
	default:
		return http.StatusInternalServerError
	}
}

func (w *statusWriter) Header() http.Header { return w.rw.Header() }

// WriteHeader passes informational 1xx statuses (except 101) through without
// taking them as the final status; the first final status wins.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code < 100 || code > 199 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.rw.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.rw.Write(p)
}

// ReadFrom keeps the underlying writer's sendfile path when it has one.
func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if rf, ok := w.rw.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(w.rw, src)
}

// Flush implements http.Flusher; it is a no-op when the underlying writer
// cannot flush.
func (w *statusWriter) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (w *statusWriter) FlushError() error {
	err := http.NewResponseController(w.rw).Flush()
	if err == nil && w.status == 0 {
		w.status = http.StatusOK
	}
	return err
}

// Hijack implements http.Hijacker; a hijack before any status is recorded
// as 101 Switching Protocols (an upgrade).
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.rw).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return conn, brw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.rw }

// abandon records status without writing anything: the client is gone.
func (w *statusWriter) abandon(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// escapeControl percent-encodes the control characters (below 0x20 and
// 0x7f) of a decoded request path; a path without any is returned as is.
func escapeControl(p string) string {
	i := pathstats.IndexControl(p)
	if i < 0 {
		return p
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(p)+8)
	b = append(b, p[:i]...)
	for ; i < len(p); i++ {
		if c := p[i]; pathstats.IsControlByte(c) {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}
