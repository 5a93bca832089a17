package gateway

import (
	"net/http"
	"time"
)

// Server timeouts of NewServer.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 1 << 20
)

// NewServer returns the server of the gateway listener. Clients get
// ReadHeaderTimeout to send their headers and ReadTimeout for the whole
// request, body included, so slowloris clients are cut off; idle keep-alive
// connections close after IdleTimeout. There is no WriteTimeout: it would cut
// long proxied downloads and streams, whose upstream side is bounded by the
// proxy's UpstreamTimeout instead. Fields may be changed before serving.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}
