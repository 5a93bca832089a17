package legacy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/pathstats/pathstats"
)

// Retention is how far back an actor keeps hourly counters: every hour
// bucket >= HourBucket(now - Retention) is kept, older ones are dropped.
const Retention = 48 * time.Hour

// window is the read window of Paths, the same as the new pipeline's.
const window = 24 * time.Hour

// Name returns the instance name of a path, the way a Durable Object is
// addressed by idFromName: the lowercase hex of the first 16 bytes of
// sha256("PathCollector:" + path).
func Name(path string) string {
	sum := sha256.Sum256([]byte("PathCollector:" + path))
	return hex.EncodeToString(sum[:16])
}

// hourCount is one hour's counters of an actor.
type hourCount struct {
	hour, requests, errors, clientErrors int64
}

// state is what an actor owns besides its name and path.
type state struct {
	proxyID      string
	requests     int64
	errors       int64 // 5xx
	clientErrors int64 // 4xx
	lastAccessed int64 // unix ms
	hourly       []hourCount
}

// add counts an increment of requests responses, errors of them 5xx and
// clientErrors 4xx, the latest at atMs (its hour is the increment's hour).
// cutoff returns the oldest hour bucket kept; it is called only when a new
// hour appears, so the clock is read rarely.
func (st *state) add(proxyID string, inc increment, cutoff func() int64) {
	st.proxyID = proxyID
	st.requests += inc.requests
	st.errors += inc.errors
	st.clientErrors += inc.clientErrors
	if inc.atMs > st.lastAccessed {
		st.lastAccessed = inc.atMs
	}
	hour := hourOfMs(inc.atMs)
	if n := len(st.hourly); n > 0 && st.hourly[n-1].hour == hour {
		st.hourly[n-1].addInc(inc)
		return
	}
	i, found := slices.BinarySearchFunc(st.hourly, hour, func(h hourCount, t int64) int { return cmpInt(h.hour, t) })
	if found {
		st.hourly[i].addInc(inc)
		return
	}
	oldest := cutoff()
	if hour < oldest {
		return // counted in the totals only
	}
	st.hourly = slices.Insert(st.hourly, i, hourCount{hour: hour})
	st.hourly[i].addInc(inc)
	st.prune(oldest)
}

// increment is a count of responses to one path within one hour.
type increment struct {
	atMs                           int64 // latest response, unix ms
	requests, errors, clientErrors int64
}

// incrementOf is one response.
func incrementOf(status int, atMs int64) increment {
	inc := increment{atMs: atMs, requests: 1}
	switch pathstats.StatusClass(status) {
	case 4:
		inc.errors = 1
	case 3:
		inc.clientErrors = 1
	}
	return inc
}

func (h *hourCount) addInc(inc increment) {
	h.requests += inc.requests
	h.errors += inc.errors
	h.clientErrors += inc.clientErrors
}

// prune drops hours older than oldest.
func (st *state) prune(oldest int64) {
	i := 0
	for i < len(st.hourly) && st.hourly[i].hour < oldest {
		i++
	}
	if i > 0 {
		st.hourly = slices.Delete(st.hourly, 0, i)
	}
}

// window sums the hours >= since into a path item; ok is false when the
// window holds no request.
func (st *state) window(path string, since int64) (it pathstats.PathItem, ok bool) {
	it.Path, it.ProxyID, it.LastAccessedMs = path, st.proxyID, st.lastAccessed
	for _, h := range st.hourly {
		if h.hour >= since {
			it.Requests += h.requests
			it.Errors += h.errors
			it.ClientErrors += h.clientErrors
		}
	}
	// The legacy state keeps no 1xx–3xx split and no latency: only the
	// 4xx and 5xx classes are known.
	it.Status[3], it.Status[4] = it.ClientErrors, it.Errors
	return it, it.Requests > 0
}

// clone returns a deep copy.
func (st *state) clone() state {
	c := *st
	c.hourly = slices.Clone(st.hourly)
	return c
}

func hourOfMs(ms int64) int64 {
	sec := ms / 1000
	if ms%1000 < 0 {
		sec--
	}
	return pathstats.HourBucket(time.Unix(sec, 0))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// hourlyVersion prefixes the hourly blob.
const hourlyVersion = 1

// appendHourly encodes hours (ascending) as a version byte followed by, per
// hour, the varint hour index delta (hours since the previous one) and the
// uvarint requests, errors and clientErrors.
func appendHourly(b []byte, hours []hourCount) []byte {
	b = append(b, hourlyVersion)
	var prev int64
	for _, h := range hours {
		idx := h.hour / 3600
		b = binary.AppendVarint(b, idx-prev)
		prev = idx
		b = binary.AppendUvarint(b, uint64(h.requests))
		b = binary.AppendUvarint(b, uint64(h.errors))
		b = binary.AppendUvarint(b, uint64(h.clientErrors))
	}
	return b
}

var errBadHourly = errors.New("malformed hourly blob")

// hourlyReader decodes an hourly blob one hour at a time without allocating.
type hourlyReader struct {
	b    []byte
	prev int64
	err  error
}

func newHourlyReader(b []byte) hourlyReader {
	if len(b) == 0 || b[0] != hourlyVersion {
		return hourlyReader{err: errBadHourly}
	}
	return hourlyReader{b: b[1:]}
}

// next returns the next hour; ok is false at the end or on error (see err).
func (r *hourlyReader) next() (h hourCount, ok bool) {
	if r.err != nil || len(r.b) == 0 {
		return h, false
	}
	d, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadHourly
		return h, false
	}
	r.b = r.b[n:]
	r.prev += d
	h.hour = r.prev * 3600
	h.requests, h.errors, h.clientErrors = r.uvarint(), r.uvarint(), r.uvarint()
	return h, r.err == nil
}

func (r *hourlyReader) uvarint() int64 {
	u, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadHourly
		return 0
	}
	r.b = r.b[n:]
	return int64(u)
}

// decodeHourly decodes a whole blob.
func decodeHourly(b []byte) ([]hourCount, error) {
	r := newHourlyReader(b)
	var out []hourCount
	for {
		h, ok := r.next()
		if !ok {
			return out, r.err
		}
		out = append(out, h)
	}
}
