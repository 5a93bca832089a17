// Package lograte rate-limits log lines so that a storm of one error cannot
// flood the log: a Limiter lets at most one line per key through per
// interval and reports, on the next line it lets through, how many it held
// back (the "suppressed" attribute).
//
// Every place that counts an error in a metric logs it through a Limiter, so
// an operator who sees the counter move also finds a line saying why.
package lograte

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultEvery is the interval of a Limiter whose Every is zero.
const DefaultEvery = 10 * time.Second

// MaxKeys bounds the keys a Limiter tracks; lines of further keys share one
// overflow key.
const MaxKeys = 1024

// overflowKey is the key of lines whose own key did not fit under MaxKeys.
const overflowKey = "\x00lograte-overflow"

// Limiter lets at most one line per key through per interval. The zero value
// is ready to use (one line per key per DefaultEvery on the real clock). It
// is safe for concurrent use and starts no goroutine; Every and Now must be
// set before first use.
type Limiter struct {
	// Every is the shortest time between two lines of one key
	// (DefaultEvery when zero).
	Every time.Duration
	// Now is the clock (time.Now when nil), injectable for tests.
	Now func() time.Time

	keys  sync.Map // key → *entry
	count atomic.Int64
}

// entry is the state of one key.
type entry struct {
	last       atomic.Int64 // unix nanoseconds of the last line let through; 0: none yet
	suppressed atomic.Int64 // lines held back since then
}

// Allow reports whether a line of key may be logged now and, when it may,
// how many lines of key were held back since the last one let through.
// Lines that are not allowed are counted as suppressed.
func (l *Limiter) Allow(key string) (ok bool, suppressed int64) {
	e := l.entry(key)
	now := l.now().UnixNano()
	last := e.last.Load()
	if (last != 0 && now-last < int64(l.every())) || !e.last.CompareAndSwap(last, now) {
		e.suppressed.Add(1)
		return false, 0
	}
	return true, e.suppressed.Swap(0)
}

// Warn logs msg with args at Warn level through log, at most once per
// interval per msg (the key).
func (l *Limiter) Warn(log *slog.Logger, msg string, args ...any) bool {
	return l.log(log, slog.LevelWarn, msg, msg, args)
}

// Error logs msg with args at Error level through log, at most once per
// interval per msg (the key).
func (l *Limiter) Error(log *slog.Logger, msg string, args ...any) bool {
	return l.log(log, slog.LevelError, msg, msg, args)
}

// Log logs msg with args at level through log, at most once per interval
// per key; use it when one message covers several kinds of failure (a key
// per stage or operation). It reports whether the line was logged.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, key, msg string, args ...any) bool {
	return l.log(log, level, key, msg, args)
}

// log emits the line when key allows it, adding "suppressed" when lines were
// held back. Its caller's caller is the source of the line.
func (l *Limiter) log(log *slog.Logger, level slog.Level, key, msg string, args []any) bool {
	ok, n := l.Allow(key)
	if !ok {
		return false
	}
	ctx := context.Background()
	if !log.Enabled(ctx, level) {
		return true
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // runtime.Callers, log, Warn/Error/Log
	r := slog.NewRecord(time.Now(), level, msg, pcs[0])
	r.Add(args...)
	if n > 0 {
		r.AddAttrs(slog.Int64("suppressed", n))
	}
	_ = log.Handler().Handle(ctx, r)
	return true
}

// entry returns the state of key, creating it; past MaxKeys new keys share
// the overflow entry.
func (l *Limiter) entry(key string) *entry {
	if e, ok := l.keys.Load(key); ok {
		return e.(*entry)
	}
	if l.count.Load() >= MaxKeys {
		key = overflowKey
	}
	e, loaded := l.keys.LoadOrStore(key, new(entry))
	if !loaded {
		l.count.Add(1)
	}
	return e.(*entry)
}

func (l *Limiter) every() time.Duration {
	if l.Every > 0 {
		return l.Every
	}
	return DefaultEvery
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}
