package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func testApplyAndRead(t *testing.T, s pathstats.StatsStore) {
	ctx := context.Background()
	c := make([]pathstats.Counts, 8)
	for i := range c {
		c[i] = gen(int64(i + 1))
	}
	b1 := batch("b1", delta(h(0), "/a", "p1", c[1]), delta(h(0), "/a", "p2", c[2]), delta(h(0), "/b", "p1", c[3]))
	b2 := batch("b2", delta(h(0), "/a", "p1", c[4]), delta(h(1), "/a", "p1", c[5]))
	before := time.Now()
	res := apply(t, s, []*pathstats.Batch{b1, b2}, nil)
	after := time.Now()
	wantResult(t, res, pathstats.ApplyResult{Applied: 2, Rows: 4, Events: events(b1, b2)})

	b3 := batch("b3", delta(h(1), "/a", "p2", c[6]), delta(h(1), "/b", "p1", c[7]))
	res = apply(t, s, []*pathstats.Batch{b3}, nil)
	wantResult(t, res, pathstats.ApplyResult{Applied: 1, Rows: 2, Events: events(b3)})

	wantTotals(t, s, h(0), h(2), []pathstats.PathTotal{
		total("/a", "p1", sum(c[1], c[4], c[5])),
		total("/a", "p2", sum(c[2], c[6])),
		total("/b", "p1", sum(c[3], c[7])),
	})
	wantSeries(t, s, "/a", h(0), h(2), []pathstats.HourlyRow{
		row(h(0), "/a", "p1", sum(c[1], c[4])),
		row(h(0), "/a", "p2", c[2]),
		row(h(1), "/a", "p1", c[5]),
		row(h(1), "/a", "p2", c[6]),
	})
	wantSeries(t, s, "/missing", h(0), h(2), nil)
	wantDistinct(t, s, h(0), []pathstats.Key{{Path: "/a", ProxyID: "p1"}, {Path: "/a", ProxyID: "p2"}, {Path: "/b", ProxyID: "p1"}})

	// UpdatedAt is the time of the latest upsert (stored at least to the second).
	rows, err := s.HourlySeries(ctx, "/b", h(0), h(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("hourly series /b: %d rows, want 1", len(rows))
	}
	if u := rows[0].UpdatedAt; u.Before(before.Truncate(time.Second)) || u.After(after) {
		t.Errorf("UpdatedAt = %v, want within [%v, %v]", u, before.Truncate(time.Second), after)
	}
}

func testWindowBounds(t *testing.T, s pathstats.StatsStore) {
	c1, c2, c3, c4 := gen(1), gen(2), gen(3), gen(4)
	apply(t, s, []*pathstats.Batch{
		batch("w", delta(h(0), "/w", "p", c1), delta(h(1), "/w", "p", c2), delta(h(2), "/w", "p", c3), delta(h(0), "/old", "p", c4)),
	}, nil)

	wantTotals(t, s, h(1), h(2), []pathstats.PathTotal{total("/w", "p", c2)})
	wantTotals(t, s, h(0), h(2), []pathstats.PathTotal{total("/old", "p", c4), total("/w", "p", sum(c1, c2))})
	wantTotals(t, s, h(0), h(3), []pathstats.PathTotal{total("/old", "p", c4), total("/w", "p", sum(c1, c2, c3))})
	wantTotals(t, s, h(2), h(2), nil)
	wantTotals(t, s, h(3), h(9), nil)
	wantTotals(t, s, h(-5), h(0), nil)

	wantSeries(t, s, "/w", h(1), h(3), []pathstats.HourlyRow{row(h(1), "/w", "p", c2), row(h(2), "/w", "p", c3)})
	wantSeries(t, s, "/w", h(0), h(1), []pathstats.HourlyRow{row(h(0), "/w", "p", c1)})
	wantSeries(t, s, "/w", h(3), h(4), nil)

	wantDistinct(t, s, h(1), []pathstats.Key{{Path: "/w", ProxyID: "p"}})
	wantDistinct(t, s, h(0), []pathstats.Key{{Path: "/old", ProxyID: "p"}, {Path: "/w", ProxyID: "p"}})
	wantDistinct(t, s, h(3), nil)
}

func testDuplicateAcrossCalls(t *testing.T, s pathstats.StatsStore) {
	c1, c2 := gen(1), gen(2)
	b1 := batch("dup-1", delta(h(0), "/d", "p", c1))
	b2 := batch("dup-2", delta(h(0), "/d", "p", c2), delta(h(1), "/d", "p", c2))
	wantResult(t, apply(t, s, []*pathstats.Batch{b1}, nil), pathstats.ApplyResult{Applied: 1, Rows: 1, Events: events(b1)})
	wantResult(t, apply(t, s, []*pathstats.Batch{b1, b2}, nil),
		pathstats.ApplyResult{Applied: 1, Duplicates: 1, Rows: 2, Events: events(b2)})
	wantResult(t, apply(t, s, []*pathstats.Batch{b1}, nil), pathstats.ApplyResult{Duplicates: 1})
	wantResult(t, apply(t, s, []*pathstats.Batch{b2, b1}, nil), pathstats.ApplyResult{Duplicates: 2})

	wantTotals(t, s, h(0), h(2), []pathstats.PathTotal{total("/d", "p", sum(c1, c2, c2))})
	wantSeries(t, s, "/d", h(0), h(2), []pathstats.HourlyRow{row(h(0), "/d", "p", sum(c1, c2)), row(h(1), "/d", "p", c2)})
}

func testDuplicateWithinCall(t *testing.T, s pathstats.StatsStore) {
	c1, c2, c3 := gen(1), gen(2), gen(3)
	first := batch("same", delta(h(0), "/s", "p", c1))
	again := batch("same", delta(h(0), "/s", "p", c2), delta(h(0), "/other", "p", c2))
	other := batch("other", delta(h(0), "/s", "p", c3))
	res := apply(t, s, []*pathstats.Batch{first, again, other, first}, nil)
	wantResult(t, res, pathstats.ApplyResult{Applied: 2, Duplicates: 2, Rows: 1, Events: events(first, other)})
	// The first occurrence of an id wins; its repeats add nothing.
	wantTotals(t, s, h(0), h(1), []pathstats.PathTotal{total("/s", "p", sum(c1, c3))})
}

func testCountersSummed(t *testing.T, s pathstats.StatsStore) {
	a := pathstats.Counts{
		Status:     [pathstats.NumStatusClasses]int64{1, 2, 3, 4, 5},
		Latency:    [pathstats.NumLatencyBuckets]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
		LastSeenMs: 1000,
	}
	b := pathstats.Counts{
		Status:     [pathstats.NumStatusClasses]int64{10, 0, 0, 7, 9},
		Latency:    [pathstats.NumLatencyBuckets]int64{3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100},
		LastSeenMs: 2000,
	}
	want := pathstats.Counts{
		Status:     [pathstats.NumStatusClasses]int64{11, 2, 3, 11, 14},
		Latency:    [pathstats.NumLatencyBuckets]int64{4, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 114},
		LastSeenMs: 2000,
	}
	apply(t, s, []*pathstats.Batch{batch("c1", delta(h(0), "/c", "p", a))}, nil)
	apply(t, s, []*pathstats.Batch{batch("c2", delta(h(0), "/c", "p", b))}, nil)

	got := pathTotals(t, s, h(0), h(1))
	wantTotal := pathstats.PathTotal{Path: "/c", ProxyID: "p", Requests: 41, Errors: 14, ClientErrors: 11, Counts: want}
	if len(got) != 1 || got[0] != wantTotal {
		t.Errorf("path totals = %+v, want [%+v]", got, wantTotal)
	}
	wantSeries(t, s, "/c", h(0), h(1), []pathstats.HourlyRow{row(h(0), "/c", "p", want)})
}

func testLastSeenIsMax(t *testing.T, s pathstats.StatsStore) {
	at := func(ms int64) pathstats.Counts {
		c := gen(1)
		c.LastSeenMs = ms
		return c
	}
	apply(t, s, []*pathstats.Batch{batch("l1", delta(h(0), "/l", "p", at(5000)))}, nil)
	apply(t, s, []*pathstats.Batch{batch("l2", delta(h(0), "/l", "p", at(3000)))}, nil)
	two := sum(at(5000), at(3000))
	if two.LastSeenMs != 5000 {
		t.Fatalf("helper sum: LastSeenMs = %d", two.LastSeenMs)
	}
	wantSeries(t, s, "/l", h(0), h(1), []pathstats.HourlyRow{row(h(0), "/l", "p", two)})

	// Within one call, across batches: still the max.
	apply(t, s, []*pathstats.Batch{
		batch("l3", delta(h(0), "/l", "p", at(20000))),
		batch("l4", delta(h(0), "/l", "p", at(15000)), delta(h(1), "/l", "p", at(7000))),
	}, nil)
	four := sum(two, at(20000), at(15000))
	wantSeries(t, s, "/l", h(0), h(2), []pathstats.HourlyRow{row(h(0), "/l", "p", four), row(h(1), "/l", "p", at(7000))})
	wantTotals(t, s, h(0), h(2), []pathstats.PathTotal{total("/l", "p", sum(four, at(7000)))})
	wantTotals(t, s, h(1), h(2), []pathstats.PathTotal{total("/l", "p", at(7000))})
}

func testDeadLetters(t *testing.T, s pathstats.StatsStore) {
	wantDeadLetters(t, s, 0)
	now := time.Now()
	res := apply(t, s, nil, []pathstats.DeadLetter{
		{MsgID: "m1", Reason: "decode batch: bad json", Payload: []byte("{not json"), ReceivedAt: now},
		{MsgID: "m2", Reason: "decode batch: missing id", Payload: []byte{0, 1, 2, 0xff}, ReceivedAt: now},
	})
	wantResult(t, res, pathstats.ApplyResult{})
	wantDeadLetters(t, s, 2)

	b := batch("with-dead", delta(h(0), "/dl", "p", gen(1)))
	res = apply(t, s, []*pathstats.Batch{b}, []pathstats.DeadLetter{{MsgID: "m3", Reason: "bad path"}})
	wantResult(t, res, pathstats.ApplyResult{Applied: 1, Rows: 1, Events: events(b)})
	wantDeadLetters(t, s, 3)
	wantTotals(t, s, h(0), h(1), []pathstats.PathTotal{total("/dl", "p", gen(1))})
}

// testPruneLedger checks that pruning deletes only ids applied before the
// cutoff. It also shows why the ledger must outlive the retry horizon: once
// its id is pruned, a redelivered batch is applied (and counted) again.
func testPruneLedger(t *testing.T, s pathstats.StatsStore) {
	ctx := context.Background()
	old1 := batch("old-1", delta(h(0), "/p", "p", gen(1)))
	old2 := batch("old-2", delta(h(0), "/p", "p", gen(2)))
	fresh := batch("fresh", delta(h(0), "/p", "p", gen(3)))
	apply(t, s, []*pathstats.Batch{old1, old2}, nil)
	time.Sleep(20 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(20 * time.Millisecond)
	apply(t, s, []*pathstats.Batch{fresh}, nil)

	prune := func(before time.Time, want int64) {
		t.Helper()
		n, err := s.PruneLedger(ctx, before)
		if err != nil {
			t.Fatalf("prune ledger: %v", err)
		}
		if n != want {
			t.Errorf("prune ledger before %v = %d, want %d", before, n, want)
		}
	}
	prune(cutoff.Add(-time.Hour), 0)
	prune(cutoff, 2)
	prune(cutoff, 0)

	// fresh is still known; old-1 is not and counts again.
	res := apply(t, s, []*pathstats.Batch{fresh, old1}, nil)
	wantResult(t, res, pathstats.ApplyResult{Applied: 1, Duplicates: 1, Rows: 1, Events: events(old1)})
	wantTotals(t, s, h(0), h(1), []pathstats.PathTotal{total("/p", "p", sum(gen(1), gen(2), gen(3), gen(1)))})
	prune(time.Now().Add(time.Hour), 2)
}

func testEmptyApply(t *testing.T, s pathstats.StatsStore) {
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	wantResult(t, apply(t, s, nil, nil), pathstats.ApplyResult{})
	wantResult(t, apply(t, s, []*pathstats.Batch{}, []pathstats.DeadLetter{}), pathstats.ApplyResult{})
	empty := batch("empty")
	wantResult(t, apply(t, s, []*pathstats.Batch{empty}, nil), pathstats.ApplyResult{Applied: 1})
	wantResult(t, apply(t, s, []*pathstats.Batch{empty}, nil), pathstats.ApplyResult{Duplicates: 1})
	wantTotals(t, s, h(-1000), h(1000), nil)
	wantDistinct(t, s, 0, nil)
	wantDeadLetters(t, s, 0)
}

// testManyDeltas applies more deltas than one upsert statement carries.
func testManyDeltas(t *testing.T, s pathstats.StatsStore) {
	const n = 1234
	mk := func(id string) *pathstats.Batch {
		b := batch(id)
		for i := range n {
			b.Deltas = append(b.Deltas, delta(h(i%2), fmt.Sprintf("/many/%04d", i), fmt.Sprintf("p%d", i%3), gen(int64(i+1))))
		}
		return b
	}
	b1 := mk("many-1")
	wantResult(t, apply(t, s, []*pathstats.Batch{b1}, nil), pathstats.ApplyResult{Applied: 1, Rows: n, Events: events(b1)})
	b2 := mk("many-2")
	wantResult(t, apply(t, s, []*pathstats.Batch{b2}, nil), pathstats.ApplyResult{Applied: 1, Rows: n, Events: events(b2)})

	want := make([]pathstats.PathTotal, n)
	for i := range n {
		want[i] = total(fmt.Sprintf("/many/%04d", i), fmt.Sprintf("p%d", i%3), sum(gen(int64(i+1)), gen(int64(i+1))))
	}
	wantTotals(t, s, h(0), h(2), want)
	wantSeries(t, s, "/many/0777", h(0), h(2), []pathstats.HourlyRow{row(h(1), "/many/0777", "p0", sum(gen(778), gen(778)))})
}

// testConcurrentApply applies from several goroutines at once; every batch
// must land exactly once.
func testConcurrentApply(t *testing.T, s pathstats.StatsStore) {
	const workers, calls, paths = 6, 5, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for c := range calls {
				var bs []*pathstats.Batch
				for k := range 2 {
					b := batch(fmt.Sprintf("w%d-c%d-b%d", w, c, k))
					for p := range paths {
						var cnt pathstats.Counts
						cnt.Status[1] = int64(w + 1)
						cnt.Latency[p%pathstats.NumLatencyBuckets] = 1
						cnt.LastSeenMs = int64(1000*w + c)
						b.Deltas = append(b.Deltas, delta(h(0), fmt.Sprintf("/c/%d", p), "p", cnt))
					}
					bs = append(bs, b)
				}
				res, err := s.Apply(context.Background(), bs, nil)
				if err != nil {
					t.Errorf("worker %d call %d: apply: %v", w, c, err)
					return
				}
				if res.Applied != 2 || res.Duplicates != 0 || res.Rows != paths {
					t.Errorf("worker %d call %d: result %+v", w, c, res)
				}
			}
		})
	}
	wg.Wait()
	var want []pathstats.PathTotal
	for p := range paths {
		var cnt pathstats.Counts
		cnt.Status[1] = calls * 2 * (workers * (workers + 1) / 2)
		cnt.Latency[p%pathstats.NumLatencyBuckets] = workers * calls * 2
		cnt.LastSeenMs = int64(1000*(workers-1) + calls - 1)
		want = append(want, total(fmt.Sprintf("/c/%d", p), "p", cnt))
	}
	wantTotals(t, s, h(0), h(1), want)
}

// testUnusualPaths stores paths and proxy ids that SQL quoting or LIKE
// matching could mangle, and reads them back exactly.
func testUnusualPaths(t *testing.T, s pathstats.StatsStore) {
	paths := []string{
		"/", "/it's", `/say "hi"`, "/100%", "/1000", "/100%25", "/a_b", "/axb", `/a%_b\c`,
		`/back\slash`, "/semi;colon--", "/space here", "/ünïcödé/日本語/😀", "/tab\there",
		"/" + strings.Repeat("x", pathstats.MaxPathLength-1),
	}
	proxies := []string{"default", "p'1", "日本"}
	b := batch("odd")
	var want []pathstats.PathTotal
	var keys []pathstats.Key
	for i, p := range paths {
		proxy := proxies[i%len(proxies)]
		b.Deltas = append(b.Deltas, delta(h(0), p, proxy, gen(int64(i+1))))
		want = append(want, total(p, proxy, gen(int64(i+1))))
		keys = append(keys, pathstats.Key{Path: p, ProxyID: proxy})
	}
	wantResult(t, apply(t, s, []*pathstats.Batch{b}, nil), pathstats.ApplyResult{Applied: 1, Rows: len(paths), Events: events(b)})
	sortTotals(want)
	wantTotals(t, s, h(0), h(1), want)
	for i, p := range paths {
		wantSeries(t, s, p, h(0), h(1), []pathstats.HourlyRow{row(h(0), p, proxies[i%len(proxies)], gen(int64(i+1)))})
	}
	wantSeries(t, s, "/a%", h(0), h(1), nil)
	wantSeries(t, s, "/a_", h(0), h(1), nil)
	wantDistinct(t, s, h(0), keys)
}
