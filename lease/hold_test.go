package lease

import (
	"context"
	"errors"
	"testing"
)

// TestHoldReleasesWhenCancelled: a Hold ended by its context (a shutdown)
// releases the lease, so another contender takes it at once instead of
// after the ttl; and the holder was a mutex meanwhile.
func TestHoldReleasesWhenCancelled(t *testing.T) {
	kv := openKV(t)
	ls := contenders(kv, 2)
	if ok, err := ls[0].TryAcquire(context.Background()); !ok || err != nil {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err := ls[0].Hold(ctx, func(jobCtx context.Context) error {
		if ok, err := ls[1].TryAcquire(context.Background()); ok || err != nil {
			t.Errorf("taken while held: %v %v", ok, err)
		}
		cancel()
		<-jobCtx.Done()
		return jobCtx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Hold: %v", err)
	}
	if ok, err := ls[1].TryAcquire(context.Background()); !ok || err != nil {
		t.Fatalf("lease not released after a cancelled Hold: %v %v", ok, err)
	}
}
