package compare

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// genSource generates n paths x hours hours ending at the hour of now;
// bump adds to the requests of every path whose index is a multiple of it.
type genSource struct {
	n, hours int
	now      time.Time
	bump     int
}

func (g genSource) EachPath(ctx context.Context, from int64, fn func(PathHours) error) error {
	last := g.now.Unix() - g.now.Unix()%3600
	hs := make([]Hour, 0, g.hours)
	var name []byte
	for i := range g.n {
		hs = hs[:0]
		for h := g.hours - 1; h >= 0; h-- {
			b := last - int64(h)*3600
			if b < from {
				continue
			}
			r := int64(1 + (i+h)%50)
			if g.bump > 0 && i%g.bump == 0 && h == 1 {
				r += int64(i % 7)
			}
			hs = append(hs, Hour{Bucket: b, Requests: r, Errors: int64(h % 2)})
		}
		name = fmt.Appendf(name[:0], "/api/v1/items/%07d", i)
		if err := fn(PathHours{Path: string(name), Hours: hs}); err != nil {
			return err
		}
	}
	return nil
}

// sliceSource yields fixed paths (in the order given).
type sliceSource []PathHours

func (s sliceSource) EachPath(_ context.Context, _ int64, fn func(PathHours) error) error {
	for _, p := range s {
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

type errSource struct{ err error }

func (e errSource) EachPath(context.Context, int64, func(PathHours) error) error { return e.err }

var now = time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)

func TestUnsortedSourceFails(t *testing.T) {
	h := now.Unix() - now.Unix()%3600 - 3600
	bad := sliceSource{{Path: "/b", Hours: []Hour{{h, 1, 0}}}, {Path: "/a", Hours: []Hour{{h, 1, 0}}}}
	_, err := Run(context.Background(), Options{Legacy: bad, SQL: sliceSource{}, Now: func() time.Time { return now }})
	if err == nil || !strings.Contains(err.Error(), "not sorted") {
		t.Fatalf("err %v", err)
	}
}

func TestSourceErrorReturned(t *testing.T) {
	boom := errors.New("boom")
	_, err := Run(context.Background(), Options{Legacy: genSource{n: 10, hours: 3, now: now}, SQL: errSource{boom}, Now: func() time.Time { return now }})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}

func TestEmptyIsFullAccuracy(t *testing.T) {
	rep, err := Run(context.Background(), Options{Legacy: sliceSource{}, SQL: sliceSource{}, Now: func() time.Time { return now }})
	if err != nil || rep.Accuracy != 100 || rep.TotalPaths != 0 || rep.Diffs == nil {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestDiffsSortedAndCapped(t *testing.T) {
	const n = 1000
	rep, err := Run(context.Background(), Options{
		Legacy: genSource{n: n, hours: 24, now: now}, SQL: genSource{n: n, hours: 24, now: now, bump: 3},
		Now: func() time.Time { return now }, MaxDiffs: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Indexes multiple of 3 with i%7 != 0 differ by i%7 in one closed hour.
	want := 0
	for i := 0; i < n; i += 3 {
		if i%7 != 0 {
			want++
		}
	}
	if rep.TotalPaths != n || rep.DiffsTotal != want || len(rep.Diffs) != 10 || rep.DiffsOmitted != want-10 {
		t.Fatalf("total %d diffs %d kept %d omitted %d", rep.TotalPaths, rep.DiffsTotal, len(rep.Diffs), rep.DiffsOmitted)
	}
	for i, d := range rep.Diffs {
		if d.D1Requests-d.DORequests != 6 || d.Issue != CountMismatch || len(d.Hours) != 1 {
			t.Fatalf("diff %d: %+v", i, d)
		}
		if i > 0 && rep.Diffs[i-1].Path >= d.Path {
			t.Fatalf("ties not by path: %s then %s", rep.Diffs[i-1].Path, d.Path)
		}
	}
}

// BenchmarkCompare100k compares 100,000 paths x 24 hours (25 in the
// window's reach) on both sides, one side off by a few requests on every
// third path, from in-memory sources: the cost of the merge itself.
func BenchmarkCompare100k(b *testing.B) {
	const n = 100_000
	o := Options{
		Legacy: genSource{n: n, hours: 24, now: now}, SQL: genSource{n: n, hours: 24, now: now, bump: 3},
		Now: func() time.Time { return now },
	}
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Run(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		if rep.TotalPaths != n || len(rep.Diffs) != 100 {
			b.Fatalf("report %d paths %d diffs", rep.TotalPaths, len(rep.Diffs))
		}
	}
}
