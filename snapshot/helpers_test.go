package snapshot

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// window is a pathstats.WindowReader over a fixed list of items: the data
// under test is the snapshot, not SQL. Each WindowTotals call returns the
// next dataset (the last one repeats); gate, when set, blocks each call
// until a value is received.
type window struct {
	mu       sync.Mutex
	datasets [][]pathstats.PathItem
	calls    atomic.Int64
	gate     chan struct{}
}

func newWindow(datasets ...[]pathstats.PathItem) *window {
	return &window{datasets: datasets}
}

const testWindowStart = 1_760_000_400

func (w *window) WindowTotals(ctx context.Context) ([]pathstats.PathItem, int64, error) {
	n := w.calls.Add(1)
	if w.gate != nil {
		select {
		case <-w.gate:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ds := w.datasets[min(int(n)-1, len(w.datasets)-1)]
	return slices.Clone(ds), testWindowStart, nil
}

func (w *window) QueryPaths(ctx context.Context, q pathstats.PathQuery) (pathstats.PathPage, error) {
	items, _, err := w.WindowTotals(ctx)
	if err != nil {
		return pathstats.PathPage{}, err
	}
	return refQuery(items, q), nil
}

// reference is the reference implementation of a query: sort (once),
// filter every item, page.
type reference struct {
	items []pathstats.PathItem
	lower []string
}

func newReference(items []pathstats.PathItem) *reference {
	items = slices.Clone(items)
	sortItems(items)
	ref := &reference{items: items, lower: make([]string, len(items))}
	for i, it := range items {
		ref.lower[i] = strings.ToLower(it.Path)
	}
	return ref
}

func refQuery(items []pathstats.PathItem, q pathstats.PathQuery) pathstats.PathPage {
	return newReference(items).query(q)
}

func (ref *reference) query(q pathstats.PathQuery) pathstats.PathPage {
	var m []pathstats.PathItem
	lq := strings.ToLower(q.Q)
	for i, it := range ref.items {
		if q.ProxyID != "" && it.ProxyID != q.ProxyID {
			continue
		}
		if !strings.Contains(ref.lower[i], lq) {
			continue
		}
		m = append(m, it)
	}
	page := pathstats.PathPage{Items: []pathstats.PathItem{}, Total: len(m)}
	off := (max(q.Page, 1) - 1) * q.Limit
	for i := off; i < len(m) && i < off+q.Limit; i++ {
		page.Items = append(page.Items, m[i])
	}
	return page
}

// sortItems sorts items in ComparePathItems order (through an index, so
// the 200-byte items are moved once).
func sortItems(items []pathstats.PathItem) {
	idx := make([]int32, len(items))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int { return pathstats.ComparePathItems(&items[a], &items[b]) })
	sorted := make([]pathstats.PathItem, len(items))
	for i, j := range idx {
		sorted[i] = items[j]
	}
	copy(items, sorted)
}

// segments mixes ASCII, mixed case, Unicode whose lowercase changes byte
// length (İ, Ⱥ), and the characters LIKE treats specially.
var segments = []string{
	"api", "v1", "v2", "Users", "orders", ":id", "ITEMS", "straße", "STRASSE", "Äpfel", "äpfel",
	"İstanbul", "Ⱥb", "ǅemal", "100%", "a_b", `back\slash`, "snake_case", "naïve", "ΣΊΣΥΦΟΣ",
	"日本語", "emoji-😀", "x", "Health", "%_", `\`, "search", "A",
}

var proxies = []string{"default", "shop", "Shop", "api-eu", ""}

// randomItems returns n items with random paths (many sharing prefixes),
// proxies and counters, including extreme values, sorted.
func randomItems(r *rand.Rand, n int) []pathstats.PathItem {
	items := make([]pathstats.PathItem, 0, n)
	seen := make(map[[2]string]bool, n)
	for len(items) < n {
		it := pathstats.PathItem{Path: randomPath(r), ProxyID: proxies[r.IntN(len(proxies))]}
		if seen[[2]string{it.Path, it.ProxyID}] {
			continue
		}
		seen[[2]string{it.Path, it.ProxyID}] = true
		fillCounts(r, &it)
		items = append(items, it)
	}
	sortItems(items)
	return items
}

func randomPath(r *rand.Rand) string {
	var b strings.Builder
	for range 1 + r.IntN(5) {
		b.WriteByte('/')
		b.WriteString(segments[r.IntN(len(segments))])
		if r.IntN(3) == 0 {
			fmt.Fprintf(&b, "%d", r.IntN(1000))
		}
	}
	if r.IntN(500) == 0 {
		b.WriteString("/nul\x00byte")
	}
	if r.IntN(500) == 0 {
		b.WriteString("/bad\xffutf8")
	}
	return b.String()
}

func fillCounts(r *rand.Rand, it *pathstats.PathItem) {
	val := func() int64 {
		switch r.IntN(20) {
		case 0:
			return 0
		case 1:
			return math.MaxInt64 - r.Int64N(3)
		case 2:
			return -r.Int64N(1000)
		default:
			return r.Int64N(1 << (1 + r.IntN(40)))
		}
	}
	for i := range it.Status {
		it.Status[i] = val()
	}
	for i := range it.Latency {
		it.Latency[i] = val()
	}
	it.Requests = val()
	if r.IntN(4) == 0 {
		it.Requests = int64(r.IntN(5)) // many ties: order falls back to path, proxy
	}
	it.Errors, it.ClientErrors = val(), val()
	it.LastAccessedMs = 1_760_000_000_000 + r.Int64N(86_400_000)
	if r.IntN(50) == 0 {
		it.LastAccessedMs = val()
	}
}

// realisticItems returns n distinct paths of typical shape and length
// (about 30 bytes, one in eight with an uppercase letter), with consistent
// counters and Zipf-like requests, strictly decreasing so the items are
// sorted as generated.
func realisticItems(n int) []pathstats.PathItem {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"users", "orders", "products", "carts", "sessions", "payments", "reviews", "search", "inventory", "accounts"}
	subs := []string{"items", "history", "details", "Settings", "avatar", "status", "events", "metadata"}
	versions := []string{"/api/v1/", "/api/v2/", "/api/v3/"}
	items := make([]pathstats.PathItem, n)
	var buf []byte
	for i := range items {
		it := &items[i]
		buf = append(buf[:0], versions[r.IntN(3)]...)
		buf = append(buf, words[r.IntN(len(words))]...)
		buf = append(buf, '/')
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, '/')
		buf = append(buf, subs[r.IntN(len(subs))]...)
		it.Path = string(buf)
		it.ProxyID = proxies[r.IntN(4)]
		req := int64(1e7/math.Pow(float64(i+1), 0.8)) + int64(n-i)
		it.Status[1] = req * 9 / 10
		it.Status[3] = req / 20
		it.Status[4] = req - it.Status[1] - it.Status[3]
		it.Requests, it.Errors, it.ClientErrors = req, it.Status[4], it.Status[3]
		it.Latency[r.IntN(pathstats.NumLatencyBuckets)] = req
		it.LastAccessedMs = 1_760_000_000_000 + r.Int64N(86_400_000)
	}
	return items
}
