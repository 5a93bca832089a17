package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Traffic sends synthetic client requests to a gateway, with the path mix
// that Upstream serves: a few hot paths, many cold ones, and some that 404.
type Traffic struct {
	Target  string       // base URL of the gateway, e.g. http://127.0.0.1:8080
	Rate    float64      // requests per second in total; default 20
	Clients int          // concurrent clients; default 4
	Client  *http.Client // default: 10s timeout, redirects not followed
	Logger  *slog.Logger // default: discard
}

// Run sends requests until ctx is done, then returns nil once in-flight
// requests have been abandoned. When every client is busy a tick is skipped
// rather than queued. Failed requests (for instance while the gateway is
// still starting) are not retried individually; traffic simply continues at
// the next tick, and only changes in reachability are logged, at debug level.
func (t *Traffic) Run(ctx context.Context) error {
	base, err := parseTarget(t.Target)
	if err != nil {
		return err
	}
	rate, clients := t.Rate, t.Clients
	if rate <= 0 {
		rate = 20
	}
	if clients <= 0 {
		clients = 4
	}
	s := &sender{base: base, client: t.Client, log: t.Logger}
	if s.client == nil {
		s.client = defaultClient(clients)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}

	jobs := make(chan struct{}, clients)
	var wg sync.WaitGroup
	for range clients {
		p := newPicker(rand.Uint64())
		wg.Go(func() { s.work(ctx, jobs, p) })
	}
	defer wg.Wait()

	interval := max(time.Duration(float64(time.Second)/rate), time.Microsecond)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			select {
			case jobs <- struct{}{}:
			default: // all clients busy: skip this tick
			}
		}
	}
}

func parseTarget(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", fmt.Errorf("parse target: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("parse target: %q is not an http(s) base URL", target)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func defaultClient(clients int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = clients
	return &http.Client{
		Transport: tr,
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// sender performs requests for all clients of one Run.
type sender struct {
	base   string
	client *http.Client
	log    *slog.Logger
	down   atomic.Bool // last request failed to get a response
}

func (s *sender) work(ctx context.Context, jobs <-chan struct{}, p *picker) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-jobs:
			s.send(ctx, p.next())
		}
	}
}

func (s *sender) send(ctx context.Context, rq request) {
	req, err := http.NewRequestWithContext(ctx, rq.method, s.base+rq.path, nil)
	if err != nil {
		s.log.Error("demo traffic: build request", "path", rq.path, "err", err)
		return
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() == nil && s.down.CompareAndSwap(false, true) {
			s.log.Debug("demo traffic: gateway unreachable, retrying", "target", s.base, "err", err)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if s.down.CompareAndSwap(true, false) {
		s.log.Debug("demo traffic: gateway reachable", "target", s.base)
	}
}

type request struct {
	method, path string
	header       http.Header
}

// fakeClients are the X-Forwarded-For addresses of the synthetic clients.
var fakeClients = []string{
	"10.0.0.11", "10.0.0.12", "10.0.0.23", "10.0.1.5", "10.0.1.77", "10.0.2.9",
	"10.1.0.4", "10.1.3.200", "10.2.7.31", "10.3.0.42", "10.8.8.8", "10.20.30.40",
}

// assetHashes are the "builds" of the static bundle; the first is current.
var assetHashes = []string{"3f9a1c2e", "b71d04aa", "09ce5f13"}

var searchTerms = []string{"shoes", "laptop", "coffee", "desk lamp", "usb-c cable", "tent", "headphones", "yoga mat"}

// unknownPaths answer 404 upstream: scanners, typos, stale links.
var unknownPaths = []string{"/wp-login.php", "/.env", "/api/userz/1", "/api/orders", "/favicon.ico", "/api/v3/users/1"}

// picker draws requests from the mix; each client owns one (not goroutine-safe).
type picker struct {
	r      *rand.Rand
	users  *rand.Zipf // user ids: a few hot, a long cold tail
	orders *rand.Zipf // index into orderIDs
	small  *rand.Zipf // pages, clients, search terms
}

// orderIDs are the orders that exist, shared by all clients.
var orderIDs = func() []string {
	ids := make([]string, 200)
	for i := range ids {
		ids[i] = newUUID(uint64(i)*0x9e3779b97f4a7c15+1, uint64(i)*0xbf58476d1ce4e5b9+7)
	}
	return ids
}()

func newPicker(seed uint64) *picker {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return &picker{
		r:      r,
		users:  rand.NewZipf(r, 1.2, 2, 99_999),
		orders: rand.NewZipf(r, 1.2, 2, uint64(len(orderIDs)-1)),
		small:  rand.NewZipf(r, 1.5, 1, 49),
	}
}

// mix is the weighted set of request kinds.
var mix = []struct {
	weight int
	make   func(p *picker) request
}{
	{28, func(p *picker) request { return get("/api/users/" + p.user()) }},
	{10, func(p *picker) request { return get("/api/users/" + p.user() + "/orders") }},
	{3, func(p *picker) request {
		return request{method: http.MethodPost, path: "/api/users/" + p.user() + "/orders"}
	}},
	{10, func(p *picker) request { return get("/api/orders/" + p.order()) }},
	{2, func(p *picker) request { return request{method: http.MethodDelete, path: "/api/orders/" + p.order()} }},
	{9, func(p *picker) request { return get("/api/products?page=" + strconv.Itoa(p.pick(50)+1)) }},
	{7, func(p *picker) request {
		return get("/api/search?q=" + url.QueryEscape(searchTerms[p.pick(len(searchTerms))]))
	}},
	{8, func(p *picker) request { return p.asset() }},
	{6, func(p *picker) request { return get("/health") }},
	{6, func(p *picker) request { return get("/api/v2/users/" + p.user()) }},
	{2, func(p *picker) request { return get("/api/v2/orders/" + p.order()) }},
	{2, func(p *picker) request { return get("/api/v1/users/" + p.user()) }},
	{2, func(p *picker) request { return p.account() }},
	{3, func(p *picker) request { return get(unknownPaths[p.r.IntN(len(unknownPaths))]) }},
}

var mixTotal = func() int {
	n := 0
	for _, k := range mix {
		n += k.weight
	}
	return n
}()

// next draws one request, with an X-Forwarded-For from the fake clients.
func (p *picker) next() request {
	n := p.r.IntN(mixTotal)
	var rq request
	for _, k := range mix {
		if n < k.weight {
			rq = k.make(p)
			break
		}
		n -= k.weight
	}
	if rq.header == nil {
		rq.header = http.Header{}
	}
	rq.header.Set("X-Forwarded-For", fakeClients[p.pick(len(fakeClients))])
	return rq
}

func (p *picker) user() string  { return strconv.FormatUint(1000+p.users.Uint64(), 10) }
func (p *picker) order() string { return orderIDs[p.orders.Uint64()] }

// pick returns a skewed index in [0, n): low indexes are hot.
func (p *picker) pick(n int) int { return int(p.small.Uint64()) % n }

// asset requests a static bundle, revalidating a cached copy half the time.
func (p *picker) asset() request {
	h := assetHashes[p.pick(len(assetHashes))]
	rq := get("/static/app." + h + ".js")
	if p.r.IntN(2) == 0 {
		rq.header = http.Header{"If-None-Match": {`"` + h + `"`}}
	}
	return rq
}

// account calls an authenticated endpoint, without credentials a third of the time.
func (p *picker) account() request {
	rq := get("/api/account")
	if p.r.IntN(3) > 0 {
		rq.header = http.Header{"Authorization": {"Bearer demo"}}
	}
	return rq
}

func get(path string) request { return request{method: http.MethodGet, path: path} }
