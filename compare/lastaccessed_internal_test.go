package compare

import (
	"context"
	"testing"
	"time"
)

// lastRun compares one path present on both sides with the same counts in
// a closed hour, lastAccessed d1Last and doLast (unix ms), and returns the
// report.
func lastRun(t *testing.T, d1Last, doLast int64, mod func(*Options)) Report {
	t.Helper()
	h := now.Unix() - now.Unix()%3600 - 2*3600
	hours := []Hour{{Bucket: h, Requests: 5, Errors: 1}}
	o := Options{
		SQL:    sliceSource{{Path: "/p", Hours: hours, LastAccessedMs: d1Last}},
		Legacy: sliceSource{{Path: "/p", Hours: hours, LastAccessedMs: doLast}},
		Now:    func() time.Time { return now },
	}
	if mod != nil {
		mod(&o)
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestLastAccessedTolerance(t *testing.T) {
	base := now.Add(-2 * time.Hour).Add(10 * time.Minute).UnixMilli()
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	for _, tc := range []struct {
		name string
		skew int64 // d1 - do, ms
		diff bool
	}{
		{"equal", 0, false},
		{"4m59s", ms(4*time.Minute + 59*time.Second), false},
		{"exactly 5m", ms(5 * time.Minute), false},
		{"5m and 1ms", ms(5*time.Minute) + 1, true},
		{"6m, pipeline later", ms(6 * time.Minute), true},
		{"6m, legacy later", -ms(6 * time.Minute), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := lastRun(t, base+tc.skew, base, nil)
			if rep.LastAccessedToleranceSeconds != 300 || rep.D1Paths != 1 || rep.DOPaths != 1 || rep.TotalPaths != 1 {
				t.Fatalf("summary %+v", rep)
			}
			if !tc.diff {
				if rep.DiffsTotal != 0 || rep.Accuracy != 100 || rep.Issues != (IssueCounts{}) {
					t.Fatalf("aligned: %+v", rep)
				}
				return
			}
			if rep.DiffsTotal != 1 || len(rep.Diffs) != 1 || rep.MatchedPaths != 0 || rep.Accuracy != 0 {
				t.Fatalf("misaligned: %+v", rep)
			}
			if rep.Issues != (IssueCounts{TimestampMismatch: 1}) {
				t.Fatalf("issues %+v", rep.Issues)
			}
			d := rep.Diffs[0]
			wantD1 := time.UnixMilli(base + tc.skew).UTC().Format(time.RFC3339Nano)
			wantDO := time.UnixMilli(base).UTC().Format(time.RFC3339Nano)
			if d.Path != "/p" || d.Issue != TimestampMismatch || d.LastAccessedSkewMs != tc.skew ||
				d.D1LastAccessed != wantD1 || d.DOLastAccessed != wantDO ||
				d.D1Requests != 5 || d.DORequests != 5 || d.ErrorRate != 0 || len(d.Hours) != 0 {
				t.Fatalf("diff %+v", d)
			}
		})
	}
}

func TestLastAccessedOptions(t *testing.T) {
	base := now.Add(-2 * time.Hour).UnixMilli()
	six := (6 * time.Minute).Milliseconds()
	// A wider tolerance accepts 6 minutes.
	if rep := lastRun(t, base+six, base, func(o *Options) { o.LastAccessedTolerance = 10 * time.Minute }); rep.DiffsTotal != 0 || rep.LastAccessedToleranceSeconds != 600 {
		t.Fatalf("10m tolerance: %+v", rep)
	}
	// Not compared at all.
	if rep := lastRun(t, base+six, base, func(o *Options) { o.LastAccessedTolerance = -1 }); rep.DiffsTotal != 0 || rep.LastAccessedToleranceSeconds != -1 {
		t.Fatalf("disabled: %+v", rep)
	}
	// A side that keeps no lastAccessed is not judged on it.
	if rep := lastRun(t, base, 0, nil); rep.DiffsTotal != 0 {
		t.Fatalf("unknown legacy lastAccessed: %+v", rep)
	}
}

// TestCountDiffWinsOverTimestamp: a path is one diff of one kind; a count
// difference hides a timestamp difference, and an open-hour difference
// within the tolerance (events in flight, which move lastAccessed) is not
// judged on timestamps.
func TestCountDiffWinsOverTimestamp(t *testing.T) {
	open := now.Unix() - now.Unix()%3600
	closed := open - 3600
	ten := (10 * time.Minute).Milliseconds()
	last := now.UnixMilli()
	sql := sliceSource{
		{Path: "/closed", Hours: []Hour{{Bucket: closed, Requests: 7}}, LastAccessedMs: last},
		{Path: "/live", Hours: []Hour{{Bucket: open, Requests: 201}}, LastAccessedMs: last},
		{Path: "/sql-only", Hours: []Hour{{Bucket: closed, Requests: 1}}, LastAccessedMs: last},
	}
	legacy := sliceSource{
		{Path: "/closed", Hours: []Hour{{Bucket: closed, Requests: 6}}, LastAccessedMs: last - ten},
		{Path: "/legacy-only", Hours: []Hour{{Bucket: closed, Requests: 2}}, LastAccessedMs: last},
		{Path: "/live", Hours: []Hour{{Bucket: open, Requests: 200}}, LastAccessedMs: last - ten},
	}
	rep, err := Run(context.Background(), Options{SQL: sql, Legacy: legacy, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TotalPaths != 4 || rep.D1Paths != 3 || rep.DOPaths != 3 || rep.DiffsTotal != 3 || rep.Pending.OpenHourDiffs != 1 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Issues != (IssueCounts{MissingInDO: 1, MissingInD1: 1, CountMismatch: 1}) {
		t.Fatalf("issues %+v", rep.Issues)
	}
	for _, d := range rep.Diffs {
		if d.Path == "/closed" && (d.Issue != CountMismatch || d.LastAccessedSkewMs != 0) {
			t.Fatalf("closed diff %+v", d)
		}
	}
}

// TestTimestampAfterRecheck: a suspect whose in-flight events landed has
// matching counts on the fresh read; its lastAccessed is judged then.
func TestTimestampAfterRecheck(t *testing.T) {
	open := now.Unix() - now.Unix()%3600
	last := now.UnixMilli()
	settled := false
	sql := func() HourlySource {
		n := int64(2)
		if settled {
			n = 3
		}
		return sliceSource{
			{Path: "/landed", Hours: []Hour{{Bucket: open, Requests: n}}, LastAccessedMs: last},
			{Path: "/skewed", Hours: []Hour{{Bucket: open, Requests: n}}, LastAccessedMs: last},
		}
	}
	legacy := sliceSource{
		{Path: "/landed", Hours: []Hour{{Bucket: open, Requests: 3}}, LastAccessedMs: last},
		{Path: "/skewed", Hours: []Hour{{Bucket: open, Requests: 3}}, LastAccessedMs: last - (6 * time.Minute).Milliseconds()},
	}
	rep, err := Run(context.Background(), Options{
		SQL: sourceFunc(func() HourlySource { return sql() }), Legacy: legacy, Now: func() time.Time { return now },
		Settle: func(context.Context) bool { settled = true; return true },
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DiffsTotal != 1 || rep.Diffs[0].Path != "/skewed" || rep.Diffs[0].Issue != TimestampMismatch || rep.Pending.Rechecked != 1 {
		t.Fatalf("report %+v", rep)
	}
}

// sourceFunc reads the source f returns at the start of each walk.
type sourceFunc func() HourlySource

func (f sourceFunc) EachPath(ctx context.Context, from int64, fn func(PathHours) error) error {
	return f().EachPath(ctx, from, fn)
}

// TestTimestampDiffsSorted: timestamp mismatches rank below count
// differences, larger skews first.
func TestTimestampDiffsSorted(t *testing.T) {
	h := now.Unix() - now.Unix()%3600 - 3600
	last := now.Add(-time.Hour).UnixMilli()
	m := func(d time.Duration) int64 { return last + d.Milliseconds() }
	sql := sliceSource{
		{Path: "/a", Hours: []Hour{{Bucket: h, Requests: 1}}, LastAccessedMs: m(7 * time.Minute)},
		{Path: "/b", Hours: []Hour{{Bucket: h, Requests: 1}}, LastAccessedMs: m(-9 * time.Minute)},
		{Path: "/c", Hours: []Hour{{Bucket: h, Requests: 2}}, LastAccessedMs: last},
	}
	legacy := sliceSource{
		{Path: "/a", Hours: []Hour{{Bucket: h, Requests: 1}}, LastAccessedMs: last},
		{Path: "/b", Hours: []Hour{{Bucket: h, Requests: 1}}, LastAccessedMs: last},
		{Path: "/c", Hours: []Hour{{Bucket: h, Requests: 1}}, LastAccessedMs: last},
	}
	rep, err := Run(context.Background(), Options{SQL: sql, Legacy: legacy, Now: func() time.Time { return now }, MaxDiffs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DiffsTotal != 3 || rep.DiffsOmitted != 1 || len(rep.Diffs) != 2 || rep.Diffs[0].Path != "/c" || rep.Diffs[1].Path != "/b" {
		t.Fatalf("report %+v", rep)
	}
	if rep.Issues != (IssueCounts{CountMismatch: 1, TimestampMismatch: 2}) {
		t.Fatalf("issues %+v", rep.Issues)
	}
}
