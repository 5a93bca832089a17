package storetest

import (
	"cmp"
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// h0 is the first hour bucket the cases write to; h(n) is n hours later.
const h0 int64 = 1_767_225_600 // 2026-01-01T00:00:00Z

func h(n int) int64 { return h0 + int64(n)*3600 }

// gen returns distinct, deterministic counts for seed (>= 1).
func gen(seed int64) pathstats.Counts {
	var c pathstats.Counts
	for i := range c.Status {
		c.Status[i] = seed*int64(i+1) + int64(i)
	}
	for i := range c.Latency {
		c.Latency[i] = (seed*int64(i+3))%11 + int64(i%2)
	}
	c.LastSeenMs = h0*1000 + seed*37
	return c
}

// sum adds counts the long way (LastSeenMs is the max).
func sum(cs ...pathstats.Counts) pathstats.Counts {
	var out pathstats.Counts
	for _, c := range cs {
		for i, v := range c.Status {
			out.Status[i] += v
		}
		for i, v := range c.Latency {
			out.Latency[i] += v
		}
		out.LastSeenMs = max(out.LastSeenMs, c.LastSeenMs)
	}
	return out
}

func delta(hour int64, path, proxy string, c pathstats.Counts) pathstats.Delta {
	return pathstats.Delta{Key: pathstats.Key{Hour: hour, Path: path, ProxyID: proxy}, Counts: c}
}

func batch(id string, ds ...pathstats.Delta) *pathstats.Batch {
	return &pathstats.Batch{ID: id, Node: "storetest", Deltas: ds}
}

func events(bs ...*pathstats.Batch) int64 {
	var n int64
	for _, b := range bs {
		for _, d := range b.Deltas {
			n += d.Requests()
		}
	}
	return n
}

func apply(t *testing.T, s pathstats.StatsStore, bs []*pathstats.Batch, dead []pathstats.DeadLetter) pathstats.ApplyResult {
	t.Helper()
	res, err := s.Apply(context.Background(), bs, dead)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

func wantResult(t *testing.T, got, want pathstats.ApplyResult) {
	t.Helper()
	if got != want {
		t.Errorf("apply result = %+v, want %+v", got, want)
	}
}

// total is the expected PathTotal of counts (UpdatedAt is checked apart).
func total(path, proxy string, c pathstats.Counts) pathstats.PathTotal {
	return pathstats.PathTotal{Path: path, ProxyID: proxy, Requests: c.Requests(),
		Errors: c.Errors(), ClientErrors: c.ClientErrors(), Counts: c}
}

// pathTotals reads totals sorted by (path, proxyId), with UpdatedAt checked
// to be set and then cleared for comparison.
func pathTotals(t *testing.T, s pathstats.StatsStore, from, to int64) []pathstats.PathTotal {
	t.Helper()
	got, err := s.PathTotals(context.Background(), from, to)
	if err != nil {
		t.Fatalf("path totals: %v", err)
	}
	slices.SortFunc(got, func(a, b pathstats.PathTotal) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.ProxyID, b.ProxyID))
	})
	for i := range got {
		if got[i].UpdatedAt.IsZero() {
			t.Errorf("path totals: %s %s: UpdatedAt not set", got[i].Path, got[i].ProxyID)
		}
		got[i].UpdatedAt = time.Time{}
	}
	return got
}

func wantTotals(t *testing.T, s pathstats.StatsStore, from, to int64, want []pathstats.PathTotal) {
	t.Helper()
	got := pathTotals(t, s, from, to)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("path totals [%d, %d):\n got %+v\nwant %+v", from, to, got, want)
	}
}

// row is an expected hourly row.
func row(hour int64, path, proxy string, c pathstats.Counts) pathstats.HourlyRow {
	return pathstats.HourlyRow{Key: pathstats.Key{Hour: hour, Path: path, ProxyID: proxy}, Counts: c}
}

// wantSeries checks HourlySeries exactly, in order (hour, then proxyId).
func wantSeries(t *testing.T, s pathstats.StatsStore, path string, from, to int64, want []pathstats.HourlyRow) {
	t.Helper()
	got, err := s.HourlySeries(context.Background(), path, from, to)
	if err != nil {
		t.Fatalf("hourly series: %v", err)
	}
	for i := range got {
		if got[i].UpdatedAt.IsZero() {
			t.Errorf("hourly series %q: row %d: UpdatedAt not set", path, i)
		}
		got[i].UpdatedAt = time.Time{}
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hourly series %q [%d, %d):\n got %+v\nwant %+v", path, from, to, got, want)
	}
}

// wantDistinct checks the (proxyId, path) pairs of DistinctPaths, in any order.
func wantDistinct(t *testing.T, s pathstats.StatsStore, from int64, want []pathstats.Key) {
	t.Helper()
	got, err := s.DistinctPaths(context.Background(), from)
	if err != nil {
		t.Fatalf("distinct paths: %v", err)
	}
	norm := func(ks []pathstats.Key) []pathstats.Key {
		out := make([]pathstats.Key, len(ks))
		for i, k := range ks {
			out[i] = pathstats.Key{Path: k.Path, ProxyID: k.ProxyID}
		}
		slices.SortFunc(out, func(a, b pathstats.Key) int { return a.Compare(b) })
		return out
	}
	if g, w := norm(got), norm(want); !slices.Equal(g, w) {
		t.Errorf("distinct paths since %d:\n got %+v\nwant %+v", from, g, w)
	}
}

func wantDeadLetters(t *testing.T, s pathstats.StatsStore, want int64) {
	t.Helper()
	n, err := s.DeadLetters(context.Background())
	if err != nil {
		t.Fatalf("dead letters: %v", err)
	}
	if n != want {
		t.Errorf("dead letters = %d, want %d", n, want)
	}
}

func sortTotals(ts []pathstats.PathTotal) {
	slices.SortFunc(ts, func(a, b pathstats.PathTotal) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.ProxyID, b.ProxyID))
	})
}
