package legacy

import (
	"sync/atomic"
	"time"
)

// ringer wakes parked actors that received increments. Observe only pushes
// the actor on a lock-free list (once per parking); the ringer goroutine
// takes the whole list every ringInterval and rings each actor's bell, so
// goroutine wake-ups happen off the request path and an actor handles the
// increments of up to one interval per wake-up. An increment waits at most
// about ringInterval before it is applied; requests ring directly.
type ringer struct {
	head atomic.Pointer[actor]
	idle atomic.Bool // the ringer goroutine waits on kick
	kick chan struct{}
}

const (
	ringInterval = 250 * time.Microsecond
	// ringIdleTurns empty turns (100 ms) put the ringer to sleep until the
	// next push, so an idle system does not tick.
	ringIdleTurns = 400
)

// schedule queues a parked actor for a ring. The sender that flips parked
// owns the ring; queued keeps the actor on the list at most once.
func (g *ringer) schedule(a *actor) {
	if !a.parked.CompareAndSwap(true, false) || !a.queued.CompareAndSwap(false, true) {
		return
	}
	for {
		old := g.head.Load()
		a.wnext = old
		if g.head.CompareAndSwap(old, a) {
			break
		}
	}
	if g.idle.Load() && g.idle.CompareAndSwap(true, false) {
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
}

// ringAll rings every queued actor; false when none was queued.
func (g *ringer) ringAll() bool {
	a := g.head.Swap(nil)
	if a == nil {
		return false
	}
	for a != nil {
		next := a.wnext
		a.wnext = nil
		a.queued.Store(false)
		select {
		case a.bell <- struct{}{}:
		default:
		}
		a = next
	}
	return true
}

// ringLoop is the ringer goroutine.
func (s *System) ringLoop() {
	defer s.bgWG.Done()
	g := &s.ringer
	t := time.NewTicker(ringInterval)
	defer t.Stop()
	for empty := 0; ; {
		if g.ringAll() {
			empty = 0
		} else if empty++; empty >= ringIdleTurns {
			g.idle.Store(true)
			if g.head.Load() == nil || !g.idle.CompareAndSwap(true, false) {
				select {
				case <-g.kick:
				case <-s.quit:
					g.ringAll()
					return
				}
			}
			empty = 0
			continue
		}
		select {
		case <-t.C:
		case <-s.quit:
			g.ringAll()
			return
		}
	}
}
