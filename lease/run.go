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
			l.lim.Warn(l.log, "lease acquire failed", "err", err)
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

// lead runs onElected while the lease is held, renewing it. When the lease
// is lost, onElected's context is cancelled with the loss (wrapping ErrLost,
// saying why) as its cause.
func (l *Lease) lead(ctx context.Context, onElected func(ctx context.Context)) {
	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		onElected(jobCtx)
	}()
	finished, lost := l.keep(ctx, done)
	if finished {
		// onElected finished by itself: let another contender have a go.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl)
		if err := l.Release(rctx); err != nil {
			l.log.Warn("lease release failed", "err", err)
		}
		rcancel()
	}
	cancel(lost)
	<-done
}

// keep renews the lease every ttl/3 until it is lost, ctx ends or done is
// closed; it reports whether done was closed while the lease was held, and
// the loss (nil unless the lease was lost).
func (l *Lease) keep(ctx context.Context, done <-chan struct{}) (finished bool, lost error) {
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	for {
		expiry := time.NewTimer(l.untilExpiry())
		select {
		case <-ctx.Done():
			expiry.Stop()
			return false, nil
		case <-done:
			expiry.Stop()
			return l.Held(), nil
		case <-expiry.C:
			if !l.Held() {
				return false, l.expired(ctx)
			}
		case <-tick.C:
			expiry.Stop()
			if err := l.renew(ctx); err != nil {
				return false, err
			}
		}
	}
}

// renew renews once, bounded by ttl/2 and by the local expiry; it returns
// the loss when the lease is not held any more.
func (l *Lease) renew(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, min(l.ttl/2, l.untilExpiry()))
	defer cancel()
	err := l.Renew(rctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrLost):
		if ctx.Err() == nil {
			l.log.Warn("lease lost", "err", err)
		}
		return err
	default:
		l.lim.Warn(l.log, "lease renewal failed", "err", err)
		if !l.Held() {
			return l.expired(ctx)
		}
		return nil
	}
}

// expired marks a lease whose local expiry passed as lost, logs the loss
// (unless ctx ended) and returns it.
func (l *Lease) expired(ctx context.Context) error {
	err := fmt.Errorf("%s: %w: %s", l.key, ErrLost, l.markLost())
	if ctx.Err() == nil {
		l.log.Warn("lease lost", "err", err)
	}
	return err
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
	var fnErr, lost error
	l.lead(ctx, func(jobCtx context.Context) {
		fnErr = fn(jobCtx)
		if !l.Held() {
			lost = ErrLost
			if cause := context.Cause(jobCtx); errors.Is(cause, ErrLost) {
				lost = cause // says why
			}
		}
	})
	if l.Held() { // ctx ended: hand the lease over now rather than after the ttl
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(l.ttl, 5*time.Second))
		if err := l.Release(rctx); err != nil {
			l.log.Warn("lease release failed", "err", err)
		}
		cancel()
	}
	if lost != nil && ctx.Err() == nil {
		return errors.Join(lost, fnErr)
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
