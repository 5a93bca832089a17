package readpath

import (
	"context"
	"strings"
	"testing"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
)

// TestUnavailableLoggedOnce: answers counted as unavailable log the SQL
// error, once per interval however many requests fail.
func TestUnavailableLoggedOnce(t *testing.T) {
	s, _ := newService(t)
	log, buf := testutil.NewLogger()
	s.opts.Logger = log
	if err := s.opts.SQL.(interface{ Close() error }).Close(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := s.Paths(context.Background(), pathstats.PathQuery{Page: 1, Limit: 10}); pathstats.ErrorCode(err) != pathstats.EUnavailable {
			t.Fatalf("got %v, want UNAVAILABLE", err)
		}
	}
	if n := s.Stats().Unavailable.Load(); n != 5 {
		t.Fatalf("unavailable %d, want 5", n)
	}
	lines := buf.Lines(`msg="SQL fallback failed"`)
	if len(lines) != 1 || !strings.Contains(lines[0], "err=") || !strings.Contains(lines[0], "closed") {
		t.Fatalf("want one line with the SQL error; log:\n%s", buf.String())
	}
}
