// Package storetest is the shared test suite that every pathstats.StatsStore
// backend runs, so that all backends agree on the same exact semantics: the
// hourly rows, the rolling window (WindowReader: exact totals at a fixed
// clock, hours leaving it, and QueryPaths against a reference that filters,
// sorts and pages WindowTotals in Go; q matches when strings.ToLower(path)
// contains strings.ToLower(q)), path configs and the archive's
// pathstats.ArchiveStore methods.
package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// Opener opens a new, empty store whose clock is now (nil: the real clock).
// It may register its own cleanup, such as a temp dir.
type Opener func(t *testing.T, now func() time.Time) pathstats.StatsStore

// Store is what a backend must implement to pass the suite: the hourly
// store, the window read path and path configs.
type Store interface {
	pathstats.StatsStore
	pathstats.WindowReader
	pathstats.PathConfigStore
	// AdvanceWindow moves the window forward to the hour buckets
	// >= HourBucket(now - 24h).
	AdvanceWindow(ctx context.Context, now time.Time) error
}

// Run runs the suite against the backend called name. open must return a new,
// empty store for each case; Run closes the store when the case ends. A
// backend that does not implement Store fails.
func Run(t *testing.T, name string, open Opener) {
	t.Helper()
	t.Logf("storetest: running the StatsStore suite on backend %q", name)
	cases := []struct {
		name string
		fn   func(t *testing.T, s pathstats.StatsStore)
	}{
		{"ApplyAndRead", testApplyAndRead},
		{"WindowBounds", testWindowBounds},
		{"DuplicateAcrossCalls", testDuplicateAcrossCalls},
		{"DuplicateWithinCall", testDuplicateWithinCall},
		{"CountersSummed", testCountersSummed},
		{"LastSeenIsMax", testLastSeenIsMax},
		{"DeadLetters", testDeadLetters},
		{"PruneLedger", testPruneLedger},
		{"EmptyApply", testEmptyApply},
		{"ManyDeltas", testManyDeltas},
		{"ConcurrentApply", testConcurrentApply},
		{"UnusualPaths", testUnusualPaths},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, openStore(t, name, open, nil))
		})
	}
	clocked := []struct {
		name string
		fn   func(t *testing.T, s Store, clk *Clock)
	}{
		{"WindowTotals", testWindowTotals},
		{"WindowAdvance", testWindowAdvance},
		{"WindowGap", testWindowGap},
		{"QueryPathsLiteral", testQueryPathsLiteral},
		{"QueryPathsReference", testQueryPathsReference},
		{"PathConfigs", testPathConfigs},
	}
	clocked = append(clocked, archiveCases...)
	for _, c := range clocked {
		t.Run(c.name, func(t *testing.T) {
			clk := NewClock(windowNow)
			s := openStore(t, name, open, clk.Now)
			ws, ok := s.(Store)
			if !ok {
				t.Fatalf("backend %s: %T does not implement storetest.Store (WindowReader, PathConfigStore, AdvanceWindow)", name, s)
			}
			c.fn(t, ws, clk)
		})
	}
}

// openStore opens a store and closes it when the test ends.
func openStore(t *testing.T, name string, open Opener, now func() time.Time) pathstats.StatsStore {
	t.Helper()
	s := open(t, now)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	return s
}

// Clock is a settable clock for stores under test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
