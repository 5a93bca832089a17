package recorder

import (
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/pathstats/pathstats"
)

// slot holds one hour's counters of a path. A path has two slots, chosen by
// the parity of the hour, so the hour boundary needs no lock on the hot path.
// Counts are 32-bit: they are emptied every flush interval.
type slot struct {
	hour     atomic.Int64
	lastSeen atomic.Int64
	status   [pathstats.NumStatusClasses]atomic.Uint32
	latency  [pathstats.NumLatencyBuckets]atomic.Uint32
}

// entry is one admitted path of a proxy.
type entry struct {
	path  string
	dirty atomic.Bool
	slots [2]slot
}

// index is an open-addressing hash table from path hash to entry. Readers
// probe it without locks; writers insert under table.mu and replace the whole
// index when it grows.
type index struct {
	mask  uint64
	slots []indexSlot
}

type indexSlot struct {
	hash  atomic.Uint64
	entry atomic.Pointer[entry]
}

func newIndex(size int) *index {
	return &index{mask: uint64(size - 1), slots: make([]indexSlot, size)}
}

func find[T string | []byte](ix *index, h uint64, path T) *entry {
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		s := &ix.slots[i]
		e := s.entry.Load()
		if e == nil {
			return nil
		}
		if s.hash.Load() == h && e.path == string(path) {
			return e
		}
	}
}

// put stores e; the hash is published before the entry pointer, so a reader
// that sees the entry sees its hash.
func (ix *index) put(h uint64, e *entry) {
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		s := &ix.slots[i]
		if s.entry.Load() == nil {
			s.hash.Store(h)
			s.entry.Store(e)
			return
		}
	}
}

// table holds the counters of one proxy.
type table struct {
	proxyID string
	tmpl    Template
	idx     atomic.Pointer[index]
	mu      sync.Mutex // guards inserts, entries, relabels and spill
	entries []*entry
	hashes  []uint64
	spill   []pathstats.Delta // counts moved out of a slot whose hour changed before a flush
	paths   atomic.Int64      // admitted paths, OtherPath excluded
	other   *entry
}

func newTable(proxyID string, tmpl Template) *table {
	t := &table{proxyID: proxyID, tmpl: tmpl}
	t.idx.Store(newIndex(64))
	t.mu.Lock()
	t.other = t.insertLocked(hashPath([]byte(OtherPath)), OtherPath)
	t.mu.Unlock()
	return t
}

// lookup finds a known path without locking or allocating.
func lookup[T string | []byte](t *table, h uint64, path T) *entry {
	return find(t.idx.Load(), h, path)
}

// admit returns the entry for path, creating it if the guard allows; nil
// means the guard refused it.
func (t *table) admit(h uint64, path []byte, g *guard) *entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := find(t.idx.Load(), h, path); e != nil {
		return e
	}
	if !g.reserve(&t.paths) {
		return nil
	}
	return t.insertLocked(h, string(path))
}

func (t *table) insertLocked(h uint64, path string) *entry {
	e := &entry{path: path}
	t.entries = append(t.entries, e)
	t.hashes = append(t.hashes, h)
	ix := t.idx.Load()
	if len(t.entries)*4 > len(ix.slots)*3 {
		ix = newIndex(len(ix.slots) * 2)
		for i, old := range t.entries[:len(t.entries)-1] {
			ix.put(t.hashes[i], old)
		}
		ix.put(h, e)
		t.idx.Store(ix)
		return e
	}
	ix.put(h, e)
	return e
}

// add counts one response in e. It returns true when e turned dirty, i.e. a
// new key may have appeared since the last flush.
func (t *table) add(e *entry, hour int64, class, bucket int, ms int64) bool {
	s := &e.slots[(hour/3600)&1]
	if s.hour.Load() != hour {
		t.relabel(e, s, hour)
	}
	s.status[class].Add(1)
	s.latency[bucket].Add(1)
	if s.lastSeen.Load() < ms {
		s.lastSeen.Store(ms)
	}
	if !e.dirty.Load() {
		e.dirty.Store(true)
		return true
	}
	return false
}

// relabel moves a slot to a new hour, keeping counts of the old hour that
// the flusher has not taken yet in the spill list. A recording that checked
// the old hour just before the relabel lands in the new hour; that needs a
// goroutine to stall across two hour boundaries and is accepted.
func (t *table) relabel(e *entry, s *slot, hour int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.hour.Load() == hour {
		return
	}
	if d, ok := t.take(e, s); ok {
		t.spill = append(t.spill, d)
	}
	s.hour.Store(hour)
}

// take swaps a slot's counters to zero and returns them as a delta.
func (t *table) take(e *entry, s *slot) (pathstats.Delta, bool) {
	var c pathstats.Counts
	for i := range s.status {
		c.Status[i] = int64(s.status[i].Swap(0))
	}
	for i := range s.latency {
		c.Latency[i] = int64(s.latency[i].Swap(0))
	}
	c.LastSeenMs = s.lastSeen.Load()
	if c.IsZero() {
		return pathstats.Delta{}, false
	}
	return pathstats.Delta{Key: pathstats.Key{Hour: s.hour.Load(), Path: e.path, ProxyID: t.proxyID}, Counts: c}, true
}

// collect appends every pending count of the table to out and resets them.
func (t *table) collect(out []pathstats.Delta) []pathstats.Delta {
	t.mu.Lock()
	defer t.mu.Unlock()
	out = append(out, t.spill...)
	t.spill = t.spill[:0]
	for _, e := range t.entries {
		if !e.dirty.Swap(false) {
			continue
		}
		for j := range e.slots {
			if d, ok := t.take(e, &e.slots[j]); ok {
				out = append(out, d)
			}
		}
	}
	return out
}

// hashPath is a fast non-cryptographic hash of a path (the index compares
// the full path after a hash match, so collisions cost only time).
func hashPath[T string | []byte](p T) uint64 {
	const m1, m2 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db
	h := uint64(len(p)) * m1
	for len(p) >= 8 {
		w := uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16 | uint64(p[3])<<24 |
			uint64(p[4])<<32 | uint64(p[5])<<40 | uint64(p[6])<<48 | uint64(p[7])<<56
		h = mix(h^w, m2)
		p = p[8:]
	}
	var tail uint64
	for i := 0; i < len(p); i++ {
		tail |= uint64(p[i]) << (8 * i)
	}
	return mix(h^tail, m1)
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// guard is the cardinality cap: distinct paths per proxy and in total.
type guard struct {
	perProxy int64
	total    int64
	admitted atomic.Int64
}

// reserve takes one admission from the proxy's and the global budget.
func (g *guard) reserve(proxyPaths *atomic.Int64) bool {
	if proxyPaths.Load() >= g.perProxy {
		return false
	}
	if g.admitted.Add(1) > g.total {
		g.admitted.Add(-1)
		return false
	}
	proxyPaths.Add(1)
	return true
}
