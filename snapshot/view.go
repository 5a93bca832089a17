package snapshot

import (
	"bytes"
	"math"
	"slices"
	"strings"

	"github.com/pathstats/pathstats"
)

// sep ends every path in the lowercase search buffer.
const sep = 0

// View is one decoded snapshot version, immutable and ready to query from
// any number of goroutines. Its items are sorted by ComparePathItems; paths
// share two contiguous buffers (no allocation per path).
type View struct {
	// Config is the version's config; do not modify it.
	Config Config

	items    []pathstats.PathItem
	lower    string       // strings.ToLower of each path, each followed by sep
	lowerOff []uint32     // start of item i's lowercase path; lowerOff[n] = len(lower)
	hasSep   bool         // some lowercase path contains sep: scan per item
	freq     *[256]uint32 // occurrences of each byte in lower
	byProxy  map[string][]int32
}

// NewView builds a View from items (copied and sorted), for callers that
// already hold the data.
func NewView(cfg Config, items []pathstats.PathItem) *View {
	sorted := slices.Clone(items)
	sortIfNeeded(sorted)
	proxies, idx := proxyTable(sorted)
	proxyOf := make([]int32, len(sorted))
	total := 0
	for i := range sorted {
		proxyOf[i] = int32(idx[sorted[i].ProxyID])
		sorted[i].ProxyID = proxies[proxyOf[i]]
		total += len(sorted[i].Path)
	}
	pt := newPathTable(len(sorted), total)
	var buf []byte
	for i := range sorted {
		buf = append(buf[:0], sorted[i].Path...)
		pt.add(buf)
	}
	pt.finish(sorted)
	v := newViewFrom(sorted, pt, proxies, proxyOf)
	v.Config = cfg
	return v
}

func newViewFrom(items []pathstats.PathItem, pt *pathTable, proxies []string, proxyOf []int32) *View {
	counts := make([]int, len(proxies))
	for _, p := range proxyOf {
		counts[p]++
	}
	backing := make([]int32, len(items))
	next := make([]int, len(proxies))
	byProxy := make(map[string][]int32, len(proxies))
	off := 0
	for p, c := range counts {
		next[p] = off
		byProxy[proxies[p]] = backing[off : off+c : off+c]
		off += c
	}
	for i, p := range proxyOf {
		backing[next[p]] = int32(i)
		next[p]++
	}
	return &View{items: items, lower: pt.lowerStr, lowerOff: pt.lowerOff, hasSep: pt.hasSep, byProxy: byProxy, freq: byteFreq(pt.lowerStr)}
}

// Len is the number of paths in the view.
func (v *View) Len() int { return len(v.items) }

// ProxyIDs lists the distinct proxy ids, sorted.
func (v *View) ProxyIDs() []string {
	ids := make([]string, 0, len(v.byProxy))
	for id := range v.byProxy {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Query returns one page of the paths matching q and their total. Q matches
// as a literal, case-insensitive substring (strings.ToLower of both sides;
// %, _ and \ are plain characters); ProxyID matches exactly. Page below 1
// counts as 1 and Limit below 0 as 0. Only the page's items are copied.
func (v *View) Query(q pathstats.PathQuery) pathstats.PathPage {
	page, limit := max(q.Page, 1), max(q.Limit, 0)
	off := math.MaxInt
	if limit == 0 || page-1 <= math.MaxInt/limit {
		off = (page - 1) * limit
	}
	switch {
	case q.Q == "" && q.ProxyID == "":
		return v.rangePage(off, limit)
	case q.Q == "":
		return v.indexPage(v.byProxy[q.ProxyID], off, limit)
	}
	needle := strings.ToLower(q.Q)
	if q.ProxyID != "" {
		idx, ok := v.byProxy[q.ProxyID]
		if !ok {
			return pathstats.PathPage{Items: []pathstats.PathItem{}}
		}
		return v.filter(idx, len(idx), needle, off, limit)
	}
	if v.hasSep || strings.IndexByte(needle, sep) >= 0 {
		return v.filter(nil, len(v.items), needle, off, limit)
	}
	return v.search(needle, off, limit)
}

// pageBounds clips [off, off+limit) to [0, total).
func pageBounds(total, off, limit int) (int, int) {
	if off >= total {
		return total, total
	}
	return off, off + min(limit, total-off)
}

func (v *View) rangePage(off, limit int) pathstats.PathPage {
	lo, hi := pageBounds(len(v.items), off, limit)
	out := make([]pathstats.PathItem, hi-lo)
	copy(out, v.items[lo:hi])
	return pathstats.PathPage{Items: out, Total: len(v.items)}
}

func (v *View) indexPage(idx []int32, off, limit int) pathstats.PathPage {
	lo, hi := pageBounds(len(idx), off, limit)
	return pathstats.PathPage{Items: v.gather(idx[lo:hi]), Total: len(idx)}
}

func (v *View) gather(idx []int32) []pathstats.PathItem {
	out := make([]pathstats.PathItem, len(idx))
	for k, i := range idx {
		out[k] = v.items[i]
	}
	return out
}

// lowerOf is item i's lowercase path.
func (v *View) lowerOf(i int) string {
	return v.lower[v.lowerOff[i] : v.lowerOff[i+1]-1]
}

// filter tests every candidate (idx, or all items when idx is nil) with
// strings.Contains.
func (v *View) filter(idx []int32, n int, needle string, off, limit int) pathstats.PathPage {
	var hits []int32
	total := 0
	for k := range n {
		i := k
		if idx != nil {
			i = int(idx[k])
		}
		if !strings.Contains(v.lowerOf(i), needle) {
			continue
		}
		if total >= off && total-off < limit {
			hits = append(hits, int32(i))
		}
		total++
	}
	return pathstats.PathPage{Items: v.gather(hits), Total: total}
}

// search scans the contiguous lowercase buffer: each match is counted once
// and the scan resumes after its path's separator. needle contains no sep,
// so a match never spans two paths. When one of needle's bytes is rare in
// the buffer, candidates are found with IndexByte on that byte (memchr
// speed) and verified; otherwise strings.Index does the scan.
func (v *View) search(needle string, off, limit int) pathstats.PathPage {
	var hits []int32
	total := 0
	next := v.indexFunc(needle)
	s := v.lower
	for pos := 0; pos < len(s); {
		j := next(s, pos)
		if j < 0 {
			break
		}
		if total >= off && total-off < limit {
			hits = append(hits, v.itemAt(j))
		}
		total++
		end := j + len(needle)
		pos = end + strings.IndexByte(s[end:], sep) + 1
	}
	return pathstats.PathPage{Items: v.gather(hits), Total: total}
}

// rareDensity: a byte seen at most once per rareDensity bytes of the buffer
// makes IndexByte-and-verify faster than strings.Index.
const rareDensity = 128

// indexFunc returns a function giving the first match of needle in s at or
// after pos, or -1.
func (v *View) indexFunc(needle string) func(s string, pos int) int {
	k := 0
	for i := 1; i < len(needle); i++ {
		if v.freq[needle[i]] < v.freq[needle[k]] {
			k = i
		}
	}
	if len(needle) == 1 || uint64(v.freq[needle[k]])*rareDensity > uint64(len(v.lower)) {
		return func(s string, pos int) int {
			if j := strings.Index(s[pos:], needle); j >= 0 {
				return pos + j
			}
			return -1
		}
	}
	rare := needle[k]
	return func(s string, pos int) int {
		for p := pos + k; p < len(s); p++ {
			j := strings.IndexByte(s[p:], rare)
			if j < 0 {
				return -1
			}
			p += j
			if start := p - k; strings.HasPrefix(s[start:], needle) {
				return start
			}
		}
		return -1
	}
}

func byteFreq(s string) *[256]uint32 {
	var f [256]uint32
	for i := 0; i < len(s); i++ {
		f[s[i]]++
	}
	return &f
}

// itemAt is the index of the item whose lowercase path holds byte p.
func (v *View) itemAt(p int) int32 {
	i, found := slices.BinarySearch(v.lowerOff, uint32(p))
	if !found {
		i--
	}
	return int32(i)
}

// pathTable accumulates paths into the lowercase search buffer and, for the
// paths whose lowercase differs, a buffer of originals.
type pathTable struct {
	lower    []byte
	orig     []byte
	lowerOff []uint32
	origOff  []uint32 // item i's original is orig[origOff[i]:origOff[i+1]] when not empty
	hasSep   bool
	lowerStr string
}

func newPathTable(n, total int) *pathTable {
	return &pathTable{
		lower:    make([]byte, 0, total+n),
		lowerOff: make([]uint32, 0, n+1),
		origOff:  make([]uint32, 0, n+1),
	}
}

// add appends the next path.
func (t *pathTable) add(p []byte) {
	start := len(t.lower)
	t.lowerOff = append(t.lowerOff, uint32(start))
	t.origOff = append(t.origOff, uint32(len(t.orig)))
	t.lower = append(t.lower, p...)
	changed, ascii := lowerASCII(t.lower[start:])
	if !ascii {
		l := strings.ToLower(string(p))
		t.lower = append(t.lower[:start], l...)
		changed = l != string(p)
	}
	if changed {
		t.orig = append(t.orig, p...)
	}
	if !t.hasSep && bytes.IndexByte(t.lower[start:], sep) >= 0 {
		t.hasSep = true
	}
	t.lower = append(t.lower, sep)
}

// lowerASCII lowercases b in place if it is all ASCII.
func lowerASCII(b []byte) (changed, ascii bool) {
	for _, c := range b {
		if c >= 0x80 {
			return false, false
		}
		changed = changed || ('A' <= c && c <= 'Z')
	}
	if changed {
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
	}
	return changed, true
}

// finish freezes the buffers into strings and points each item's Path into
// them.
func (t *pathTable) finish(items []pathstats.PathItem) {
	t.lowerOff = append(t.lowerOff, uint32(len(t.lower)))
	t.origOff = append(t.origOff, uint32(len(t.orig)))
	t.lowerStr = string(t.lower)
	orig := string(t.orig)
	for i := range items {
		if a, b := t.origOff[i], t.origOff[i+1]; a < b {
			items[i].Path = orig[a:b]
		} else {
			items[i].Path = t.lowerStr[t.lowerOff[i] : t.lowerOff[i+1]-1]
		}
	}
	t.lower, t.orig, t.origOff = nil, nil, nil
}
