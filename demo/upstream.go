package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Latency model: a Pareto distribution (most responses take a few
// milliseconds, a long tail) capped at maxLatency.
const (
	minLatency = 2 * time.Millisecond
	maxLatency = 300 * time.Millisecond
	tailIndex  = 1.2 // Pareto shape; lower means a heavier tail
)

// Injected faults on /api/ routes, as probabilities per request.
const (
	fault429 = 0.010
	fault500 = 0.008
	fault503 = 0.004
)

// Upstream returns a fake API with a realistic path mix. Routes and their
// statuses (any other method or path answers 404):
//
//	GET    /health                        200
//	GET    /api/users/{numeric id}        200 (404 when the id is not numeric)
//	GET    /api/users/{id}/orders         200
//	POST   /api/users/{id}/orders         201 with Location
//	GET    /api/orders/{uuid}             200 (404 when not a uuid)
//	DELETE /api/orders/{uuid}             204
//	GET    /api/products?page=N           200 (400 when N is not a positive integer)
//	GET    /api/search?q=...              200 (400 without q)
//	GET    /api/account                   401 without Authorization, else 200
//	GET    /api/v1/{rest...}              301 to /api/v2/{rest...}
//	GET    /api/v2/users/{id}             200
//	GET    /api/v2/orders/{uuid}          200
//	GET    /static/{name}.{hex}.{js|css}  200 with ETag, 304 on a matching If-None-Match
//
// Requests under /api/ fail now and then with 429, 500 or 503 (about 2% in
// all). Every response is delayed by a heavy-tailed latency of a few
// milliseconds, capped at 300ms; the delay ends early when the request's
// context is done.
func Upstream() http.Handler {
	return newUpstream(sampleLatency, sampleFault)
}

// newUpstream builds the upstream with the given latency and fault sources
// (either may be nil for none), so tests can check routes deterministically.
func newUpstream(latency func(u float64) time.Duration, fault func(u float64) int) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /api/users/{id}", getUser)
	mux.HandleFunc("GET /api/users/{id}/orders", listOrders)
	mux.HandleFunc("POST /api/users/{id}/orders", createOrder)
	mux.HandleFunc("GET /api/orders/{id}", getOrder)
	mux.HandleFunc("DELETE /api/orders/{id}", deleteOrder)
	mux.HandleFunc("GET /api/products", listProducts)
	mux.HandleFunc("GET /api/search", search)
	mux.HandleFunc("GET /api/account", account)
	mux.HandleFunc("GET /api/v1/{rest...}", redirectV1)
	mux.HandleFunc("GET /api/v2/users/{id}", getUser)
	mux.HandleFunc("GET /api/v2/orders/{id}", getOrder)
	mux.HandleFunc("GET /static/{file}", staticAsset)
	mux.HandleFunc("/", notFound)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if latency != nil {
			sleep(r, latency(1-rand.Float64()))
		}
		if fault != nil && strings.HasPrefix(r.URL.Path, "/api/") {
			if code := fault(rand.Float64()); code != 0 {
				if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
					w.Header().Set("Retry-After", "1")
				}
				writeJSON(w, code, fmt.Sprintf(`{"error":%q}`, http.StatusText(code)))
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// sampleLatency maps u in (0,1] to a Pareto-distributed delay capped at
// maxLatency.
func sampleLatency(u float64) time.Duration {
	d := float64(minLatency) * math.Pow(u, -1/tailIndex)
	if math.IsNaN(d) || d > float64(maxLatency) {
		return maxLatency
	}
	return time.Duration(d)
}

// sampleFault maps u in [0,1) to an injected status, or 0 for none.
func sampleFault(u float64) int {
	switch {
	case u < fault429:
		return http.StatusTooManyRequests
	case u < fault429+fault500:
		return http.StatusInternalServerError
	case u < fault429+fault500+fault503:
		return http.StatusServiceUnavailable
	}
	return 0
}

// sleep waits d or until the request is abandoned.
func sleep(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func getUser(w http.ResponseWriter, r *http.Request) {
	id, ok := numericID(r)
	if !ok {
		notFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, fmt.Sprintf(`{"id":%d,"name":"user %d"}`, id, id))
}

func listOrders(w http.ResponseWriter, r *http.Request) {
	id, ok := numericID(r)
	if !ok {
		notFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, fmt.Sprintf(`{"user":%d,"orders":[]}`, id))
}

func createOrder(w http.ResponseWriter, r *http.Request) {
	if _, ok := numericID(r); !ok {
		notFound(w, r)
		return
	}
	id := newUUID(rand.Uint64(), rand.Uint64())
	w.Header().Set("Location", "/api/orders/"+id)
	writeJSON(w, http.StatusCreated, fmt.Sprintf(`{"id":%q}`, id))
}

func getOrder(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !uuidRE.MatchString(id) {
		notFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, fmt.Sprintf(`{"id":%q,"status":"shipped"}`, id))
}

func deleteOrder(w http.ResponseWriter, r *http.Request) {
	if !uuidRE.MatchString(r.PathValue("id")) {
		notFound(w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func listProducts(w http.ResponseWriter, r *http.Request) {
	page := 1
	if s := r.URL.Query().Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, `{"error":"page must be a positive integer"}`)
			return
		}
		page = n
	}
	writeJSON(w, http.StatusOK, fmt.Sprintf(`{"page":%d,"products":[]}`, page))
}

func search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	if q == "" {
		writeJSON(w, http.StatusBadRequest, `{"error":"missing q"}`)
		return
	}
	writeJSON(w, http.StatusOK, fmt.Sprintf(`{"q":%q,"results":[]}`, q))
}

func account(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeJSON(w, http.StatusUnauthorized, `{"error":"unauthorized"}`)
		return
	}
	writeJSON(w, http.StatusOK, `{"plan":"demo"}`)
}

func redirectV1(w http.ResponseWriter, r *http.Request) {
	target := "/api/v2/" + r.PathValue("rest")
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusMovedPermanently)
}

var (
	assetRE = regexp.MustCompile(`^[a-z]+\.([0-9a-f]{6,})\.(js|css)$`)
	uuidRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

func staticAsset(w http.ResponseWriter, r *http.Request) {
	m := assetRE.FindStringSubmatch(r.PathValue("file"))
	if m == nil {
		notFound(w, r)
		return
	}
	etag := `"` + m[1] + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	ctype := "text/javascript"
	if m[2] == "css" {
		ctype = "text/css"
	}
	w.Header().Set("Content-Type", ctype)
	fmt.Fprintf(w, "/* demo asset %s */\n", m[1])
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusNotFound, `{"error":"not found"}`)
}

func numericID(r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	return id, err == nil
}

func writeJSON(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintln(w, body)
}

// newUUID formats 128 random bits as a version-4 uuid.
func newUUID(hi, lo uint64) string {
	hi = hi&^0xf000 | 0x4000     // version 4
	lo = lo&^(0xc<<60) | 0x8<<60 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x",
		hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}
