package lease

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Run campaigns for the lease until ctx ends: it tries to acquire it every
// ttl/3 (or as soon as the current holder's lease expires) and, while held,
// renews it every ttl/3 and runs onElected with a context cancelled when
// the lease is lost or ctx ends. Run waits for onElected to return before
// campaigning again, so at most one onElected of this Lease runs at a time.
// If onElected returns while the lease is held, the lease is released and
// the campaign goes on.
//
// Run does not release the lease when ctx ends (others take over after the
// ttl); call Release after Run returns for a quick handover.
func (l *Lease) Run(ctx context.Context, onElected func(ctx context.Context)) {
	interval := l.ttl / 3
	for ctx.Err() == nil {
		ok, err := l.tryAcquire(ctx)
		if err != nil && ctx.Err() == nil {
			l.log.Warn("lease acquire failed", "err", err)
		}
		if ok {
			l.log.Info("lease acquired")
			l.lead(ctx, onElected)
			if ctx.Err() != nil {
				return
			}
		}
		if !sleep(ctx, l.nextAttempt(interval)) {
			return
		}
	}
}

// tryAcquire is TryAcquire bounded by the ttl.
func (l *Lease) tryAcquire(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, l.ttl)
	defer cancel()
	return l.TryAcquire(ctx)
}

// nextAttempt is the wait before the next acquisition attempt: interval,
// or less when the holder's lease expires sooner.
func (l *Lease) nextAttempt(interval time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.other.IsZero() {
		return interval
	}
	until := time.Until(l.other) + time.Millisecond
	l.other = time.Time{}
	return max(min(interval, until), 0)
}

// lead runs onElected while the lease is held, renewing it.
func (l *Lease) lead(ctx context.Context, onElected func(ctx context.Context)) {
	jobCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		onElected(jobCtx)
	}()
	if l.keep(ctx, done) {
		// onElected finished by itself: let another contender have a go.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl)
		if err := l.Release(rctx); err != nil {
			l.log.Warn("lease release failed", "err", err)
		}
		rcancel()
	}
	cancel()
	<-done
}

// keep renews the lease every ttl/3 until it is lost, ctx ends or done is
// closed; it reports whether done was closed while the lease was held.
func (l *Lease) keep(ctx context.Context, done <-chan struct{}) bool {
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	for {
		expiry := time.NewTimer(l.untilExpiry())
		select {
		case <-ctx.Done():
			expiry.Stop()
			return false
		case <-done:
			expiry.Stop()
			return l.Held()
		case <-expiry.C:
			if !l.Held() {
				l.log.Warn("lease expired before renewal")
				return false
			}
		case <-tick.C:
			expiry.Stop()
			if !l.renew(ctx) {
				return false
			}
		}
	}
}

// renew renews once, bounded by ttl/2 and by the local expiry, and reports
// whether the lease is still held.
func (l *Lease) renew(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, min(l.ttl/2, l.untilExpiry()))
	defer cancel()
	err := l.Renew(rctx)
	switch {
	case err == nil:
		return true
	case errors.Is(err, ErrLost):
		if ctx.Err() == nil {
			l.log.Warn("lease lost", "err", err)
		}
		return false
	default:
		l.log.Warn("lease renewal failed", "err", err)
		return l.Held()
	}
}

func (l *Lease) untilExpiry() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(time.Until(l.expires), 0)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ErrBusy reports that another holder kept the lease for the whole wait.
var ErrBusy = errors.New("lease busy")

// Do uses the lease as a mutex across processes: it waits up to wait for the
// lease (trying every ttl/10), runs fn while holding it (renewed every
// ttl/3; fn's context is cancelled if the lease is lost) and releases it
// when fn returns. It returns ErrBusy when the lease stayed taken, and
// ErrLost (joined with fn's error) when it was lost while fn ran.
func (l *Lease) Do(ctx context.Context, wait time.Duration, fn func(ctx context.Context) error) error {
	if err := l.acquireWithin(ctx, wait); err != nil {
		return err
	}
	return l.Hold(ctx, fn)
}

// Hold runs fn while holding a lease already acquired (TryAcquire returned
// true): it renews the lease every ttl/3, cancels fn's context if the lease
// is lost and releases the lease when fn returns, also when ctx ended. It
// returns ErrLost (joined with fn's error) when the lease was lost while
// fn ran.
func (l *Lease) Hold(ctx context.Context, fn func(ctx context.Context) error) error {
	var fnErr error
	lost := false
	l.lead(ctx, func(jobCtx context.Context) {
		fnErr = fn(jobCtx)
		lost = !l.Held()
	})
	if l.Held() { // ctx ended: hand the lease over now rather than after the ttl
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(l.ttl, 5*time.Second))
		if err := l.Release(rctx); err != nil {
			l.log.Warn("lease release failed", "err", err)
		}
		cancel()
	}
	if lost && ctx.Err() == nil {
		return errors.Join(ErrLost, fnErr)
	}
	return fnErr
}

// acquireWithin tries to take the lease until it succeeds or wait passes.
func (l *Lease) acquireWithin(ctx context.Context, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		ok, err := l.tryAcquire(ctx)
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%w: %w", ErrBusy, err)
			}
			return ErrBusy
		}
		if !sleep(ctx, min(l.ttl/10, max(time.Until(deadline), time.Millisecond))) {
			return ctx.Err()
		}
	}
}
