package compare_test

import (
	"testing"
	"time"

	"github.com/pathstats/pathstats/compare"
)

// TestLastAccessedAlignment feeds a real legacy system and a real SQLite
// store the same counts, with the last event of some paths at different
// times on the two sides: within 5 minutes is aligned, 6 minutes apart is
// one timestamp_mismatch, and the summary counts both sides' paths.
func TestLastAccessedAlignment(t *testing.T) {
	s := newSides(t)
	s.feed(mixed(), true, true)
	at := testNow.Add(-2 * time.Hour).Truncate(time.Hour).Add(10 * time.Minute)
	// Same counts in the same hour; only the last event's time differs.
	s.feed([]event{{"/aligned", 200, at}, {"/aligned", 200, at}}, true, false)
	s.feed([]event{{"/aligned", 200, at}, {"/aligned", 200, at.Add(5 * time.Minute)}}, false, true)
	s.feed([]event{{"/skewed", 200, at}, {"/skewed", 500, at}}, true, false)
	s.feed([]event{{"/skewed", 200, at}, {"/skewed", 500, at.Add(6 * time.Minute)}}, false, true)
	// The open hour, drained: both sides hold the same events.
	s.feed([]event{{"/live", 200, testNow.Add(-time.Minute)}}, true, true)
	s.feed([]event{{"/sql-only", 200, at}}, false, true)

	rep := s.run(nil)
	if rep.TotalPaths != 24 || rep.D1Paths != 24 || rep.DOPaths != 23 || rep.DiffsTotal != 2 || rep.MatchedPaths != 22 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Issues != (compare.IssueCounts{MissingInDO: 1, TimestampMismatch: 1}) {
		t.Fatalf("issues %+v", rep.Issues)
	}
	if want := float64(22) / 24 * 100; rep.Accuracy != want {
		t.Fatalf("accuracy %v, want %v: the timestamp check counts", rep.Accuracy, want)
	}
	var d compare.Diff
	for _, x := range rep.Diffs {
		if x.Path == "/skewed" {
			d = x
		}
	}
	if d.Issue != compare.TimestampMismatch || d.LastAccessedSkewMs != (6*time.Minute).Milliseconds() ||
		d.D1Requests != 2 || d.DORequests != 2 || d.D1Errors != 1 || d.DOErrors != 1 ||
		d.D1LastAccessed != at.Add(6*time.Minute).Format(time.RFC3339Nano) || d.DOLastAccessed != at.Format(time.RFC3339Nano) {
		t.Fatalf("skewed diff %+v in %+v", d, rep.Diffs)
	}
}
