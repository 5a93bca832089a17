// Package storetest is the shared test suite that every pathstats.StatsStore
// backend runs, so that all backends agree on the same exact semantics.
package storetest

import (
	"testing"

	"github.com/pathstats/pathstats"
)

// Run runs the suite against the backend called name. open must return a new,
// empty store for each case (it may register its own cleanup, such as a temp
// dir); Run closes the store when the case ends.
func Run(t *testing.T, name string, open func(t *testing.T) pathstats.StatsStore) {
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
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close %s: %v", name, err)
				}
			})
			c.fn(t, s)
		})
	}
}
