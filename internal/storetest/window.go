package storetest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// windowNow is the clock of the window cases: half past h(30), so the
// window is the hour buckets >= h(6).
var windowNow = time.Unix(h(30)+1800, 0).UTC()

// windowStartOf is the window's first hour bucket at now (DESIGN §4).
func windowStartOf(now time.Time) int64 { return pathstats.HourBucket(now.Add(-24 * time.Hour)) }

// at returns gen(seed) with its last access inside hour, as real rows have.
func at(hour, seed int64) pathstats.Counts {
	c := gen(seed)
	c.LastSeenMs = hour*1000 + (seed*37)%3_600_000
	return c
}

func item(path, proxy string, c pathstats.Counts) pathstats.PathItem {
	return pathstats.PathItem{Path: path, ProxyID: proxy, Requests: c.Requests(), Errors: c.Errors(),
		ClientErrors: c.ClientErrors(), Status: c.Status, Latency: c.Latency, LastAccessedMs: c.LastSeenMs}
}

func sortItems(items []pathstats.PathItem) {
	slices.SortFunc(items, func(a, b pathstats.PathItem) int { return pathstats.ComparePathItems(&a, &b) })
}

// windowTotals reads the window and checks it is in ComparePathItems order.
func windowTotals(t *testing.T, s Store) ([]pathstats.PathItem, int64) {
	t.Helper()
	items, start, err := s.WindowTotals(context.Background())
	if err != nil {
		t.Fatalf("window totals: %v", err)
	}
	if !slices.IsSortedFunc(items, func(a, b pathstats.PathItem) int { return pathstats.ComparePathItems(&a, &b) }) {
		t.Errorf("window totals are not in ComparePathItems order")
	}
	return items, start
}

// referenceWindow derives the window from the hourly rows: PathTotals from
// start on, rows with requests only, in ComparePathItems order.
func referenceWindow(t *testing.T, s Store, start int64) []pathstats.PathItem {
	t.Helper()
	var out []pathstats.PathItem
	for _, pt := range pathTotals(t, s, start, start+10_000*3600) {
		if pt.Requests > 0 {
			out = append(out, item(pt.Path, pt.ProxyID, pt.Counts))
		}
	}
	sortItems(out)
	return out
}

// wantWindow checks the window's start and items, and that they agree with
// the hourly rows.
func wantWindow(t *testing.T, s Store, wantStart int64, want []pathstats.PathItem) {
	t.Helper()
	got, start := windowTotals(t, s)
	if start != wantStart {
		t.Errorf("window start = %d (h%+d), want %d (h%+d)", start, (start-h0)/3600, wantStart, (wantStart-h0)/3600)
	}
	sortItems(want)
	if len(got) != 0 || len(want) != 0 {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("window totals:\n got %+v\nwant %+v", got, want)
		}
	}
	if ref := referenceWindow(t, s, wantStart); !reflect.DeepEqual(got, ref) && (len(got) != 0 || len(ref) != 0) {
		t.Errorf("window totals disagree with the hourly rows from h%+d:\n got %+v\n ref %+v", (wantStart-h0)/3600, got, ref)
	}
}

// testWindowTotals checks the window's sums at a fixed clock: the hour just
// before the window is out, its first hour, the current and the next hour
// are in; rows without requests are not listed.
func testWindowTotals(t *testing.T, s Store, clk *Clock) {
	start := windowStartOf(clk.Now())
	if start != h(6) {
		t.Fatalf("test setup: window start h%+d", (start-h0)/3600)
	}
	tie := at(h(7), 9)
	apply(t, s, []*pathstats.Batch{batch("wt-1",
		delta(h(5), "/old", "p", at(h(5), 1)),
		delta(h(5), "/mixed", "p", at(h(5), 2)),
		delta(h(6), "/mixed", "p", at(h(6), 3)),
		delta(h(6), "/first", "p", at(h(6), 4)),
		delta(h(20), "/mixed", "q", at(h(20), 5)),
		delta(h(30), "/mixed", "p", at(h(30), 6)),
		delta(h(31), "/next", "p", at(h(31), 7)),
		delta(h(10), "/zero", "p", pathstats.Counts{LastSeenMs: h(10) * 1000}),
		delta(h(7), "/tie-b", "p", tie), delta(h(7), "/tie-a", "q", tie), delta(h(7), "/tie-a", "p", tie),
	)}, nil)
	apply(t, s, []*pathstats.Batch{batch("wt-2", delta(h(6), "/first", "p", at(h(6), 8)), delta(h(5), "/first", "p", at(h(5), 10)))}, nil)
	want := []pathstats.PathItem{
		item("/mixed", "p", sum(at(h(6), 3), at(h(30), 6))),
		item("/mixed", "q", at(h(20), 5)),
		item("/first", "p", sum(at(h(6), 4), at(h(6), 8))),
		item("/next", "p", at(h(31), 7)),
		item("/tie-a", "p", tie), item("/tie-a", "q", tie), item("/tie-b", "p", tie),
	}
	wantWindow(t, s, h(6), want)
	sortItems(want)
	for _, q := range []pathstats.PathQuery{
		{Page: 1, Limit: 100}, {Q: "TIE", Page: 1, Limit: 2}, {Q: "tie-", Page: 2, Limit: 2},
		{ProxyID: "q", Page: 1, Limit: 10}, {Q: "/old", Page: 1, Limit: 10}, {Q: "/zero", Page: 1, Limit: 10},
	} {
		page, total := referencePage(want, q)
		wantPage(t, s, q, page, total)
	}
	wantPage(t, s, pathstats.PathQuery{ProxyID: "q", Page: 1, Limit: 10},
		[]pathstats.PathItem{item("/tie-a", "q", tie), item("/mixed", "q", at(h(20), 5))}, 2)
	wantPage(t, s, pathstats.PathQuery{Q: "TIE", Page: 2, Limit: 2}, []pathstats.PathItem{item("/tie-b", "p", tie)}, 3)
	wantPage(t, s, pathstats.PathQuery{Page: math.MaxInt, Limit: 200}, nil, len(want))
	wantPage(t, s, pathstats.PathQuery{Q: "tie", Page: math.MaxInt / 2, Limit: 3}, nil, 3)
	for _, bad := range []pathstats.PathQuery{{Page: 0, Limit: 10}, {Page: -1, Limit: 10}, {Page: 1, Limit: 0}} {
		if _, err := s.QueryPaths(context.Background(), bad); err == nil {
			t.Errorf("query paths %+v: no error", bad)
		}
	}
}

// testWindowAdvance moves the clock hour by hour: each hour that leaves is
// subtracted exactly, rows left without requests disappear, and deltas of
// hours already out of the window reach the hourly rows only.
func testWindowAdvance(t *testing.T, s Store, clk *Clock) {
	ctx := context.Background()
	apply(t, s, []*pathstats.Batch{batch("wa-1",
		delta(h(6), "/a", "p", at(h(6), 1)), delta(h(7), "/a", "p", at(h(7), 2)), delta(h(30), "/a", "p", at(h(30), 3)),
		delta(h(6), "/b", "p", at(h(6), 4)),
		delta(h(7), "/c", "p", at(h(7), 5)), delta(h(6), "/c", "q", at(h(6), 6)),
	)}, nil)
	wantWindow(t, s, h(6), []pathstats.PathItem{
		item("/a", "p", sum(at(h(6), 1), at(h(7), 2), at(h(30), 3))),
		item("/b", "p", at(h(6), 4)),
		item("/c", "p", at(h(7), 5)), item("/c", "q", at(h(6), 6)),
	})

	// One hour later: a read advances the window; h(6) leaves.
	clk.Set(windowNow.Add(time.Hour))
	afterH6 := []pathstats.PathItem{item("/a", "p", sum(at(h(7), 2), at(h(30), 3))), item("/c", "p", at(h(7), 5))}
	wantWindow(t, s, h(7), afterH6)
	wantPage(t, s, pathstats.PathQuery{Page: 1, Limit: 10}, afterH6, 2)
	wantPage(t, s, pathstats.PathQuery{ProxyID: "q", Page: 1, Limit: 10}, nil, 0)

	// A late delta of h(6) lands in the hourly rows only.
	apply(t, s, []*pathstats.Batch{batch("wa-late", delta(h(6), "/b", "p", at(h(6), 7)))}, nil)
	wantTotals(t, s, h(6), h(7), []pathstats.PathTotal{
		total("/a", "p", at(h(6), 1)), total("/b", "p", sum(at(h(6), 4), at(h(6), 7))), total("/c", "q", at(h(6), 6)),
	})
	wantWindow(t, s, h(7), afterH6)
	apply(t, s, []*pathstats.Batch{batch("wa-2", delta(h(7), "/b", "p", at(h(7), 8)))}, nil)
	wantWindow(t, s, h(7), append(slices.Clone(afterH6), item("/b", "p", at(h(7), 8))))

	// AdvanceWindow moves explicitly, even ahead of the store's clock.
	if err := s.AdvanceWindow(ctx, windowNow.Add(2*time.Hour+29*time.Minute)); err != nil {
		t.Fatalf("advance window: %v", err)
	}
	afterH7 := []pathstats.PathItem{item("/a", "p", at(h(30), 3))}
	wantWindow(t, s, h(8), afterH7)
	// It never moves back.
	if err := s.AdvanceWindow(ctx, windowNow); err != nil {
		t.Fatalf("advance window back: %v", err)
	}
	wantWindow(t, s, h(8), afterH7)
	clk.Set(windowNow.Add(2 * time.Hour))
	wantWindow(t, s, h(8), afterH7)
	wantPage(t, s, pathstats.PathQuery{Q: "/A", Page: 1, Limit: 1}, afterH7, 1)
}

// testWindowGap jumps the clock by more than a day: the window then holds
// only the hours after the gap, and moves on hour by hour from there.
func testWindowGap(t *testing.T, s Store, clk *Clock) {
	apply(t, s, []*pathstats.Batch{batch("wg-1",
		delta(h(10), "/g", "p", at(h(10), 1)), delta(h(31), "/g", "p", at(h(31), 2)),
		delta(h(36), "/g", "p", at(h(36), 3)), delta(h(37), "/g", "q", at(h(37), 4)),
	)}, nil)
	wantWindow(t, s, h(6), []pathstats.PathItem{
		item("/g", "p", sum(at(h(10), 1), at(h(31), 2), at(h(36), 3))), item("/g", "q", at(h(37), 4)),
	})
	clk.Set(windowNow.Add(30 * time.Hour)) // window from h(36)
	wantWindow(t, s, h(36), []pathstats.PathItem{item("/g", "p", at(h(36), 3)), item("/g", "q", at(h(37), 4))})
	apply(t, s, []*pathstats.Batch{batch("wg-2", delta(h(60), "/g", "p", at(h(60), 5)))}, nil)
	clk.Set(windowNow.Add(31 * time.Hour))
	wantWindow(t, s, h(37), []pathstats.PathItem{item("/g", "p", at(h(60), 5)), item("/g", "q", at(h(37), 4))})
}

// wantPage runs q and checks the page and total exactly.
func wantPage(t *testing.T, s Store, q pathstats.PathQuery, want []pathstats.PathItem, total int) {
	t.Helper()
	got, err := s.QueryPaths(context.Background(), q)
	if err != nil {
		t.Fatalf("query paths %+v: %v", q, err)
	}
	if got.Total != total || len(got.Items) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got.Items, want)) {
		t.Errorf("query paths %+v:\n got total %d %+v\nwant total %d %+v", q, got.Total, got.Items, total, want)
	}
	if got.Items == nil {
		t.Errorf("query paths %+v: nil items, want an empty list", q)
	}
}

// referencePage filters, sorts and pages the window in Go: q is a
// case-insensitive literal substring (strings.ToLower of both), proxyId exact.
func referencePage(all []pathstats.PathItem, q pathstats.PathQuery) ([]pathstats.PathItem, int) {
	fq := strings.ToLower(q.Q)
	var match []pathstats.PathItem
	for _, it := range all {
		if (q.ProxyID == "" || it.ProxyID == q.ProxyID) && strings.Contains(strings.ToLower(it.Path), fq) {
			match = append(match, it)
		}
	}
	sortItems(match)
	from := min(q.Offset(), len(match))
	to := min(from+q.Limit, len(match))
	return match[from:to], len(match)
}

// testQueryPathsLiteral checks that %, _ and \ match only themselves and
// that case folding covers ASCII and non-ASCII letters.
func testQueryPathsLiteral(t *testing.T, s Store, _ *Clock) {
	paths := []string{"/100%", "/1000", "/a_b", "/axb", `/back\slash`, "/backslash", `/a%_b\c`,
		"/Straße/ÄRGER", "/straße/ärger", "/ÉTÉ", "/日本/Ω", "/UPPER/Case"}
	b := batch("lit")
	for i, p := range paths {
		b.Deltas = append(b.Deltas, delta(h(20), p, "p", at(h(20), int64(i+1))))
	}
	apply(t, s, []*pathstats.Batch{b}, nil)
	all, _ := windowTotals(t, s)
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"%", []string{"/100%", `/a%_b\c`}},
		{"0%", []string{"/100%"}},
		{"_", []string{"/a_b", `/a%_b\c`}},
		{"a_b", []string{"/a_b"}},
		{`\`, []string{`/back\slash`, `/a%_b\c`}},
		{`k\s`, []string{`/back\slash`}},
		{"%_", []string{`/a%_b\c`}},
		{"ärger", []string{"/Straße/ÄRGER", "/straße/ärger"}},
		{"STRAßE/Ä", []string{"/Straße/ÄRGER", "/straße/ärger"}},
		{"été", []string{"/ÉTÉ"}},
		{"ω", []string{"/日本/Ω"}},
		{"日本", []string{"/日本/Ω"}},
		{"upper/CASE", []string{"/UPPER/Case"}},
		{"*", nil}, {"?", nil}, {"[", nil}, {"%%", nil}, {"__", nil},
	} {
		q := pathstats.PathQuery{Q: tc.q, Page: 1, Limit: 50}
		want, total := referencePage(all, q)
		var names []string
		for _, it := range want {
			names = append(names, it.Path)
		}
		slices.Sort(names)
		wantNames := slices.Clone(tc.want)
		slices.Sort(wantNames)
		if !slices.Equal(names, wantNames) {
			t.Fatalf("reference for q %q = %v, want %v", tc.q, names, wantNames)
		}
		wantPage(t, s, q, want, total)
	}
}

// testQueryPathsReference compares QueryPaths with referencePage over
// WindowTotals on random data and random queries, across window moves.
func testQueryPathsReference(t *testing.T, s Store, clk *Clock) {
	rng := rand.New(rand.NewPCG(3, 14))
	pieces := []string{"api", "V1", "users", "Users", "%", "_", `\`, "100%", "a_b", "ä", "Ä", "é", "É",
		"日本", "Ω", "ω", "x", "X", "items", ":id", "%_", "a.b"}
	proxies := []string{"p1", "p2", "P1", "日本"}
	var paths []string
	for range 120 {
		var segs []string
		for range 1 + rng.IntN(3) {
			segs = append(segs, pieces[rng.IntN(len(pieces))])
		}
		paths = append(paths, "/"+strings.Join(segs, "/"))
	}
	for round := range 5 {
		if round == 3 {
			clk.Set(windowNow.Add(2 * time.Hour))
		}
		b := batch(fmt.Sprintf("ref-%d", round))
		for range 150 {
			// Valid deltas, as the recorder builds them: every latency
			// count and the last access come with a request.
			var c pathstats.Counts
			hour := h(4 + rng.IntN(30))
			n := 1 + rng.Int64N(3)
			c.Status[rng.IntN(pathstats.NumStatusClasses)] = n
			c.Latency[rng.IntN(pathstats.NumLatencyBuckets)] = n
			c.LastSeenMs = hour*1000 + rng.Int64N(3_600_000)
			b.Deltas = append(b.Deltas, delta(hour, paths[rng.IntN(len(paths))], proxies[rng.IntN(len(proxies))], c))
		}
		apply(t, s, []*pathstats.Batch{b}, nil)
		all, start := windowTotals(t, s)
		if want := windowStartOf(clk.Now()); start != want {
			t.Fatalf("round %d: window start h%+d, want h%+d", round, (start-h0)/3600, (want-h0)/3600)
		}
		if ref := referenceWindow(t, s, start); !reflect.DeepEqual(all, ref) {
			t.Fatalf("round %d: window totals disagree with the hourly rows:\n got %+v\n ref %+v", round, all, ref)
		}
		for range 60 {
			q := randomQuery(rng, all, pieces, proxies)
			want, total := referencePage(all, q)
			q.Page = 1 + rng.IntN(total/q.Limit+3)
			want, total = referencePage(all, q)
			wantPage(t, s, q, want, total)
		}
	}
}

// randomQuery picks q from the window's paths (random case), the pieces or
// nothing, and a known, unknown or no proxyId.
func randomQuery(rng *rand.Rand, all []pathstats.PathItem, pieces, proxies []string) pathstats.PathQuery {
	q := pathstats.PathQuery{Page: 1, Limit: 1 + rng.IntN(12)}
	if rng.IntN(10) == 0 {
		q.Limit = 200
	}
	switch r := rng.IntN(10); {
	case r < 4 && len(all) > 0:
		runes := []rune(all[rng.IntN(len(all))].Path)
		i := rng.IntN(len(runes))
		j := i + 1 + rng.IntN(len(runes)-i)
		sub := runes[i:j]
		for k := range sub {
			if rng.IntN(2) == 0 {
				sub[k] = []rune(strings.ToUpper(string(sub[k])))[0]
			}
		}
		q.Q = string(sub)
	case r < 7:
		q.Q = pieces[rng.IntN(len(pieces))]
	case r < 8:
		q.Q = "no-such-path"
	}
	switch r := rng.IntN(10); {
	case r < 4:
		q.ProxyID = proxies[rng.IntN(len(proxies))]
	case r < 5:
		q.ProxyID = "unknown-proxy"
	}
	return q
}
