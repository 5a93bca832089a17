package legacy

import (
	"strings"
	"sync/atomic"
)

// pathIndex maps a path (by hash) to its actor with open addressing.
// Readers probe it without locks; writers hold System.mu, insert in place or
// build a new index and publish it with one atomic store.
type pathIndex struct {
	mask  uint64
	used  int
	slots []indexSlot
}

type indexSlot struct {
	hash  atomic.Uint64
	actor atomic.Pointer[actor]
}

func newPathIndex(capacity int) *pathIndex {
	size := 64
	for size*3 < capacity*4 {
		size *= 2
	}
	return &pathIndex{mask: uint64(size - 1), slots: make([]indexSlot, size)}
}

// find returns the actor of path, or nil.
func (ix *pathIndex) find(h uint64, path string) *actor {
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		s := &ix.slots[i]
		a := s.actor.Load()
		if a == nil {
			return nil
		}
		if s.hash.Load() == h && a.path == path {
			return a
		}
	}
}

// put stores a, replacing the actor of the same path. The hash is published
// before the actor pointer, so a reader that sees the actor sees its hash.
// The caller holds System.mu and has checked there is room (full).
func (ix *pathIndex) put(h uint64, a *actor) {
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		s := &ix.slots[i]
		old := s.actor.Load()
		if old == nil {
			s.hash.Store(h)
			s.actor.Store(a)
			ix.used++
			return
		}
		if s.hash.Load() == h && old.path == a.path {
			s.actor.Store(a)
			return
		}
	}
}

// full reports whether one more actor would exceed a 3/4 load factor.
func (ix *pathIndex) full() bool { return (ix.used+1)*4 > len(ix.slots)*3 }

// proxyTable interns proxy ids so a mailbox message carries a small index
// instead of a string. It is copied on write.
type proxyTable struct {
	names []string
	index map[string]uint32
}

// maxProxies caps interned proxy ids; further ones share the last index
// (the recorder already caps proxies far below this).
const maxProxies = 1 << 16

// proxyIndex returns the index of a proxy id without locking or allocating
// when it is known.
func (s *System) proxyIndex(p string) uint32 {
	t := s.proxies.Load()
	for i, n := range t.names[:min(len(t.names), 8)] {
		if n == p {
			return uint32(i)
		}
	}
	if i, ok := t.index[p]; ok {
		return i
	}
	return s.addProxy(p)
}

func (s *System) addProxy(p string) uint32 {
	s.proxyMu.Lock()
	defer s.proxyMu.Unlock()
	old := s.proxies.Load()
	if i, ok := old.index[p]; ok {
		return i
	}
	if len(old.names) >= maxProxies {
		return uint32(len(old.names) - 1)
	}
	p = strings.Clone(p)
	t := &proxyTable{names: append(old.names[:len(old.names):len(old.names)], p), index: make(map[string]uint32, len(old.index)+1)}
	for k, v := range old.index {
		t.index[k] = v
	}
	i := uint32(len(t.names) - 1)
	t.index[p] = i
	s.proxies.Store(t)
	return i
}

// proxyName returns an interned proxy id.
func (s *System) proxyName(i uint32) string { return s.proxies.Load().names[i] }
