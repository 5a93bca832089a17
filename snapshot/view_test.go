package snapshot

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pathstats/pathstats"
)

// randomQuery draws q from substrings of real paths (case flipped), the
// LIKE metacharacters, Unicode case variants and misses; proxyId from the
// known ones, "" and an unknown one; pages including past the end.
func randomQuery(r *rand.Rand, items []pathstats.PathItem) pathstats.PathQuery {
	q := pathstats.PathQuery{Page: 1 + r.IntN(4), Limit: []int{1, 7, 50, 200}[r.IntN(4)]}
	if r.IntN(6) == 0 {
		q.Page = 1 + r.IntN(1000)
	}
	switch r.IntN(9) {
	case 0:
	case 1, 2:
		if len(items) > 0 {
			q.Q = randomSubstring(r, items[r.IntN(len(items))].Path)
		}
	case 3:
		q.Q = []string{"%", "_", `\`, "%_", `a_b`, "100%", `\s`}[r.IntN(7)]
	case 4:
		q.Q = []string{"STRASSE", "Straße", "ÄPFEL", "İSTANBUL", "i̇stanbul", "ⱥB", "ǅ", "ǆemal", "σίσυφος", "ΣΊΣ"}[r.IntN(10)]
	case 5:
		q.Q = []string{"nothing-matches", "\x00", "nul\x00b", "\xff", "😀", "/"}[r.IntN(6)]
	default:
		q.Q = segments[r.IntN(len(segments))]
	}
	switch r.IntN(4) {
	case 0:
		q.ProxyID = proxies[r.IntN(len(proxies))]
	case 1:
		q.ProxyID = "unknown-proxy"
	}
	return q
}

func randomSubstring(r *rand.Rand, s string) string {
	runes := []rune(s)
	if len(runes) == 0 {
		return ""
	}
	i := r.IntN(len(runes))
	j := i + 1 + r.IntN(min(6, len(runes)-i))
	sub := string(runes[i:j])
	if r.IntN(2) == 0 {
		sub = strings.ToUpper(sub)
	}
	return sub
}

func TestQueryMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 13))
	items := randomItems(r, 3000)
	shuffled := slices.Clone(items)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	v := NewView(Config{Version: 1}, shuffled)
	ref := newReference(shuffled)
	for k := range 1000 {
		q := randomQuery(r, items)
		got, want := v.Query(q), ref.query(q)
		comparePages(t, q, got, want)
		if t.Failed() {
			t.Fatalf("query %d failed", k)
		}
	}
}

func comparePages(t *testing.T, q pathstats.PathQuery, got, want pathstats.PathPage) {
	t.Helper()
	if got.Total != want.Total || len(got.Items) != len(want.Items) {
		t.Errorf("%#v: total %d, %d items; want total %d, %d items", q, got.Total, len(got.Items), want.Total, len(want.Items))
		return
	}
	if got.Items == nil {
		t.Errorf("%#v: nil items, want empty slice", q)
	}
	for i := range want.Items {
		if got.Items[i] != want.Items[i] {
			t.Errorf("%#v: item %d = %+v, want %+v", q, i, got.Items[i], want.Items[i])
			return
		}
	}
}

func TestQueryLiteralCharacters(t *testing.T) {
	items := []pathstats.PathItem{
		{Path: "/a%b", Requests: 9}, {Path: "/a_b", Requests: 8}, {Path: `/a\b`, Requests: 7},
		{Path: "/aXb", Requests: 6}, {Path: "/ab", Requests: 5},
	}
	v := NewView(Config{}, items)
	for q, want := range map[string]string{"%": "/a%b", "_": "/a_b", `\`: `/a\b`, "a%": "/a%b", "A_B": "/a_b"} {
		p := v.Query(pathstats.PathQuery{Q: q, Page: 1, Limit: 10})
		if p.Total != 1 || p.Items[0].Path != want {
			t.Errorf("q %q: got %+v, want only %s", q, p, want)
		}
	}
}

func TestQueryUnicodeCase(t *testing.T) {
	items := []pathstats.PathItem{
		{Path: "/Straße/ÄPFEL", Requests: 3}, {Path: "/İstanbul", Requests: 2}, {Path: "/ΣΊΣΥΦΟΣ", Requests: 1},
	}
	v := NewView(Config{}, items)
	// strings.ToLower maps runes one by one: no final sigma, no ß → ss.
	cases := map[string]int{"äpfel": 1, "STRAßE": 1, "straße/ä": 1, "σίσυφοσ": 1, "ΣΊΣ": 1, "İSTANBUL": 1, "stanbul": 1, "/": 3, "strasse": 0}
	for q, want := range cases {
		if p := v.Query(pathstats.PathQuery{Q: q, Page: 1, Limit: 10}); p.Total != want {
			t.Errorf("q %q: total %d, want %d", q, p.Total, want)
		}
	}
	if !utf8.ValidString(v.lower) {
		t.Error("lowercase buffer is not valid UTF-8")
	}
}

func TestQueryPaging(t *testing.T) {
	items := realisticItems(1000)
	v := NewView(Config{}, items)
	seen := 0
	for page := 1; ; page++ {
		p := v.Query(pathstats.PathQuery{Page: page, Limit: 70})
		if p.Total != 1000 {
			t.Fatalf("total %d", p.Total)
		}
		if len(p.Items) == 0 {
			break
		}
		for i, it := range p.Items {
			if it != items[seen+i] {
				t.Fatalf("page %d item %d out of order", page, i)
			}
		}
		seen += len(p.Items)
	}
	if seen != 1000 {
		t.Fatalf("paged through %d items", seen)
	}
	for _, q := range []pathstats.PathQuery{{Page: 0, Limit: 5}, {Page: -3, Limit: 5}, {Page: 1 << 62, Limit: 200}, {Page: 1, Limit: 0}, {Page: 2, Limit: -1}} {
		p := v.Query(q)
		if p.Total != 1000 || p.Items == nil {
			t.Errorf("%+v: total %d, items nil %v", q, p.Total, p.Items == nil)
		}
	}
	if p := v.Query(pathstats.PathQuery{Page: 0, Limit: 5}); len(p.Items) != 5 || p.Items[0] != items[0] {
		t.Errorf("page 0 is not page 1")
	}
}

func TestQueryDoesNotExposeView(t *testing.T) {
	v := NewView(Config{}, realisticItems(10))
	p := v.Query(pathstats.PathQuery{Page: 1, Limit: 10})
	p.Items[0].Requests = -1
	if v.Query(pathstats.PathQuery{Page: 1, Limit: 1}).Items[0].Requests == -1 {
		t.Fatal("page items alias the view")
	}
}
