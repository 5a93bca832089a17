package legacy

import (
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats/internal/testutil"
)

// TestMailboxDropsLogged: increments dropped on a full mailbox (counted in
// pathstats_legacy_dropped_total) are logged, once per interval: one line
// for a burst of 96 drops.
func TestMailboxDropsLogged(t *testing.T) {
	log, buf := testutil.NewLogger()
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, func(c *Config) {
		c.MailboxSize = 4
		c.FlushInterval = time.Hour // no snapshot request takes a mailbox slot
		c.Logger = log
	})
	s.Observe("p", "/slow", 200, 0, t0)
	release := holdActor(t, s, "/slow")
	for range 100 {
		s.Observe("p", "/slow", 500, 0, t0)
	}
	release()
	if d := s.dropped.Load(); d != 96 {
		t.Fatalf("dropped %d, want 96", d)
	}
	lines := buf.Lines(`msg="legacy actor mailbox full: increment dropped"`)
	if len(lines) != 1 || !strings.Contains(lines[0], "path=/slow") || !strings.Contains(lines[0], "level=WARN") {
		t.Fatalf("want one warning naming the path; log:\n%s", buf.String())
	}
}
