package gateway

import (
	"sync/atomic"
	"time"
)

// logLimiter lets at most one log line through per interval and counts the
// ones it held back, so a dead upstream under load does not flood the log.
type logLimiter struct {
	interval   int64 // nanoseconds
	last       atomic.Int64
	suppressed atomic.Int64
}

func newLogLimiter(interval time.Duration) *logLimiter {
	l := &logLimiter{interval: int64(interval)}
	l.last.Store(time.Now().UnixNano() - l.interval)
	return l
}

// allow reports whether to log now and how many lines were held back since
// the last one logged.
func (l *logLimiter) allow() (bool, int64) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < l.interval || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
