package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/lograte"
)

// Defaults of Options.
const (
	DefaultUpstreamTimeout = 30 * time.Second
	DefaultDialTimeout     = 5 * time.Second
)

// Options tune NewProxy.
type Options struct {
	// UpstreamTimeout bounds the wait for an upstream's response headers
	// (not the body, so long downloads are fine); beyond it the client gets
	// a 504. Default 30s.
	UpstreamTimeout time.Duration
	// DialTimeout bounds connecting to an upstream. Default 5s.
	DialTimeout time.Duration
	// Logger receives upstream failures (rate-limited). Default slog.Default().
	Logger *slog.Logger
	// Transport replaces the shared transport NewProxy builds; the two
	// timeouts above are then up to it.
	Transport http.RoundTripper
}

func (o *Options) setDefaults() {
	if o.UpstreamTimeout <= 0 {
		o.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// NewProxy returns the gateway handler: each request goes to the most
// specific matching route's upstream (see NewRouter) and is recorded under
// the route's proxyId with Middleware. A request matching no route gets a
// 404 and is not recorded (random paths from scanners would only add
// cardinality). A nil rec disables recording.
//
// The full request path is forwarded, appended to the upstream URL's path;
// the query string is forwarded verbatim. X-Forwarded-For gets the client
// address appended to the inbound value; X-Forwarded-Host and
// X-Forwarded-Proto are kept when the request has them and set from the
// request otherwise. These headers come from the client: upstreams must only
// trust the addresses added by proxies they know. Forwarded is dropped.
//
// Upstream failures answer a small JSON error: 504 when the upstream timed
// out, 502 otherwise; both are recorded as errors. When the client went away
// nothing is written and 499 is recorded. The returned handler also has a
// CloseIdleConnections method for shutdown.
func NewProxy(routes []Route, rec pathstats.Recorder, opts Options) (http.Handler, error) {
	opts.setDefaults()
	router, err := NewRouter(routes)
	if err != nil {
		return nil, fmt.Errorf("new proxy: %w", err)
	}
	transport := opts.Transport
	if transport == nil {
		transport = newTransport(opts)
	}
	p := &proxy{
		router:    router,
		transport: transport,
		log:       opts.Logger,
		limiter:   &lograte.Limiter{Every: time.Second},
	}
	errLog := slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)
	for _, r := range router.routes {
		rp := &httputil.ReverseProxy{
			Rewrite:      rewriteTo(r.Upstream),
			Transport:    transport,
			ErrorLog:     errLog,
			ErrorHandler: p.errorHandler(r.ProxyID),
		}
		p.handlers = append(p.handlers, Middleware(rec, r.ProxyID, rp))
	}
	return p, nil
}

// newTransport is the one transport shared by every route, pooled for many
// concurrent requests to few upstreams. Proxy settings from the environment
// are ignored: upstreams are reached directly.
func newTransport(o Options) *http.Transport {
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: o.UpstreamTimeout,
	}
}

type proxy struct {
	router    *Router
	handlers  []http.Handler // aligned with router.routes
	transport http.RoundTripper
	log       *slog.Logger
	limiter   *lograte.Limiter // upstream failures, one line per route and second
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := p.router.index(r.URL.Path)
	if i < 0 {
		writeError(w, http.StatusNotFound, pathstats.ENotFound, "no route for this path")
		return
	}
	p.handlers[i].ServeHTTP(w, r)
}

// CloseIdleConnections closes the idle upstream connections.
func (p *proxy) CloseIdleConnections() {
	if c, ok := p.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// rewriteTo sends the request to target, keeping the raw query (httputil
// drops parameters it cannot parse) and the inbound forwarding headers.
func rewriteTo(target *url.URL) func(*httputil.ProxyRequest) {
	return func(pr *httputil.ProxyRequest) {
		pr.Out.URL.RawQuery = pr.In.URL.RawQuery
		pr.SetURL(target)
		// Rewrite starts without X-Forwarded-*; SetXForwarded appends to
		// what Out has, so give it the inbound chain first.
		if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
			pr.Out.Header["X-Forwarded-For"] = prior
		}
		pr.SetXForwarded()
		for _, h := range [...]string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := pr.In.Header.Get(h); v != "" {
				pr.Out.Header.Set(h, v)
			}
		}
	}
}

func (p *proxy) errorHandler(proxyID string) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(r.Context().Err(), context.Canceled) {
			if sw, ok := w.(*statusWriter); ok {
				sw.abandon(StatusClientClosed)
			}
			p.log.Debug("client went away", "proxyId", proxyID, "path", r.URL.Path, "err", err)
			return
		}
		status, msg := http.StatusBadGateway, "upstream unreachable"
		if isTimeout(err) {
			status, msg = http.StatusGatewayTimeout, "upstream timed out"
		}
		p.limiter.Log(p.log, slog.LevelWarn, proxyID, "upstream failed", "proxyId", proxyID, "method", r.Method,
			"path", r.URL.Path, "status", status, "err", err)
		writeError(w, status, pathstats.EUnavailable, msg)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// writeError writes the contract's error envelope.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	body := `{"success":false,"error":` + strconv.Quote(code) + `,"message":` + strconv.Quote(msg) + "}\n"
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
