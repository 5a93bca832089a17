package lease

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
)

// slowTTL leaves a renewal (every slowTTL/3) ample time to run before the
// local expiry (0.9 × slowTTL) on a busy machine, so the reason of a loss is
// the one the test arranged.
const slowTTL = 3 * time.Second

// failingKV fails every Update while fail is set (the KV unreachable for
// renewals), and passes everything else to a real KV.
type failingKV struct {
	pathstats.KV
	fail atomic.Bool
}

func (k *failingKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if k.fail.Load() {
		return 0, errors.New("injected: kv unreachable")
	}
	return k.KV.Update(ctx, key, value, rev)
}

// runElected runs l.Run until the test ends and returns, once l is elected,
// a channel that receives the cause its job's context ends with.
func runElected(t *testing.T, l *Lease) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	elected := make(chan struct{})
	cause := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx, func(jobCtx context.Context) {
			select {
			case <-elected:
				return // re-elected after the loss: the test is over
			default:
			}
			close(elected)
			<-jobCtx.Done()
			cause <- context.Cause(jobCtx)
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-elected:
	case <-time.After(60 * time.Second):
		t.Fatal("not elected within 60s")
	}
	return cause
}

func waitCause(t *testing.T, cause <-chan error) error {
	t.Helper()
	select {
	case err := <-cause:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("job still running 60s after the lease was lost")
	}
	return nil
}

// TestRunLostToAnotherHolderSaysWhy: the "lease lost" warning and the job's
// cancellation cause name the holder that took the lease.
func TestRunLostToAnotherHolderSaysWhy(t *testing.T) {
	t.Parallel()
	kv := openKV(t)
	l := New(kv, "snapshotter", "node-0", slowTTL)
	log, buf := testutil.NewLogger()
	l.SetLogger(log)
	cause := runElected(t, l)
	putRecord(t, kv, record{Holder: "usurper", ExpiresAtMs: time.Now().Add(time.Minute).UnixMilli()})

	err := waitCause(t, cause)
	line := buf.WaitLine(t, `msg="lease lost"`)
	if !strings.Contains(line, `another holder took it (holder \"usurper\")`) || !strings.Contains(line, "level=WARN") {
		t.Fatalf("lease lost line does not say why: %s", line)
	}
	const why = `another holder took it (holder "usurper")`
	if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), why) {
		t.Fatalf("job cancelled with %v; want ErrLost saying %s", err, why)
	}
}

// TestRunLostAfterFailedRenewalsSaysWhy: renewals that fail until the local
// expiry end in a "lease lost" warning carrying the last renewal error.
func TestRunLostAfterFailedRenewalsSaysWhy(t *testing.T) {
	t.Parallel()
	kv := &failingKV{KV: openKV(t)}
	l := New(kv, "snapshotter", "node-0", slowTTL)
	log, buf := testutil.NewLogger()
	l.SetLogger(log)
	cause := runElected(t, l)
	kv.fail.Store(true)

	err := waitCause(t, cause)
	line := buf.WaitLine(t, `msg="lease lost"`)
	if !strings.Contains(line, "not renewed before its local expiry; last renew error:") ||
		!strings.Contains(line, "injected: kv unreachable") {
		t.Fatalf("lease lost line does not say why: %s", line)
	}
	for _, want := range []string{"not renewed before its local expiry", "last renew error", "injected: kv unreachable"} {
		if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), want) {
			t.Fatalf("job cancelled with %v; want ErrLost saying %q", err, want)
		}
	}
	if lines := buf.Lines(`msg="lease renewal failed"`, "injected: kv unreachable"); len(lines) == 0 {
		t.Fatalf("renewal failures not logged:\n%s", buf.String())
	}
}

// TestHoldLostSaysWhy: Hold returns the loss with its reason.
func TestHoldLostSaysWhy(t *testing.T) {
	t.Parallel()
	kv := openKV(t)
	l := New(kv, "snapshotter", "node-0", slowTTL)
	l.SetLogger(slog.New(slog.DiscardHandler))
	if ok, err := l.TryAcquire(t.Context()); !ok || err != nil {
		t.Fatalf("acquire = (%v, %v)", ok, err)
	}
	err := l.Hold(t.Context(), func(ctx context.Context) error {
		putRecord(t, kv, record{Holder: "usurper", ExpiresAtMs: time.Now().Add(time.Minute).UnixMilli()})
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), `another holder took it (holder "usurper")`) {
		t.Fatalf("Hold = %v; want ErrLost naming the usurper", err)
	}
}
