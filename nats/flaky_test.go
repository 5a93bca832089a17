package nats

import (
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// maxRev is the highest revision an Update of w returned.
func (w *casWriter) maxRev() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var top uint64
	for r := range w.revs {
		top = max(top, r)
	}
	return top
}

// readCaughtUp reads key until the answer is at revision atLeast or later,
// for up to failoverWait, and returns the last answer. A KV Get is a direct
// get, answered by any replica of the bucket: after a failover, on a busy
// machine, a follower still applying the last writes answers an older
// revision. A write that was really lost never shows up, so the caller's
// checks still fail on it.
func readCaughtUp(t *testing.T, k *KV, key string, atLeast uint64) pathstats.KVEntry {
	t.Helper()
	deadline := time.Now().Add(failoverWait)
	stale := 0
	for {
		e, err := k.Get(testCtx(t), key)
		if err == nil && e.Revision >= atLeast {
			if stale > 0 {
				t.Logf("%d reads of %s answered a revision below %d before one caught up", stale, key, atLeast)
			}
			return e
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("get %s after the kill: %v", key, err)
			}
			return e
		}
		if err == nil {
			stale++
		}
		time.Sleep(50 * time.Millisecond)
	}
}
