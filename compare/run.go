package compare

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/pathstats/pathstats"
)

// Run compares the window [HourBucket(now-Window), end of the current hour)
// of both sources. It merges the two walks in path order, so memory is
// constant in the number of paths apart from the MaxDiffs largest diffs.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Legacy == nil || o.SQL == nil {
		return Report{}, errors.New("compare: both sources are required")
	}
	o.setDefaults()
	now := o.Now()
	c := &comparison{
		opts:     o,
		openHour: pathstats.HourBucket(now),
		diffs:    diffHeap{},
		suspects: map[string]struct{}{},
	}
	from := pathstats.HourBucket(now.Add(-o.Window))
	if o.Pending != nil {
		p := o.Pending()
		c.rep.Pending.Events, c.rep.Pending.Messages = p.Events, p.Messages
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d1 := pull(cctx, o.SQL, from, "sql")
	defer d1.stop()
	do := pull(cctx, o.Legacy, from, "legacy")
	defer do.stop()
	if err := c.merge(ctx, d1, do); err != nil {
		return Report{}, err
	}
	if err := c.recheck(ctx, from); err != nil {
		return Report{}, err
	}
	c.finish(now, from)
	return c.rep, nil
}

// comparison is the state of one Run.
type comparison struct {
	opts     Options
	openHour int64
	rep      Report
	diffs    diffHeap
	hours    []HourDiff // scratch
	// suspects are paths that differ beyond the tolerance only in the open
	// hour on the first pass; rechecking is set during the second pass.
	suspects   map[string]struct{}
	rechecking bool
}

// recheck settles the pipeline and walks both sources again for the
// suspects: a live system's in-flight events land in SQL in between, so
// only differences that persist are reported. A suspect absent from both
// sides on the second walk no longer differs: it counts as in flight.
func (c *comparison) recheck(ctx context.Context, from int64) error {
	if len(c.suspects) == 0 {
		return nil
	}
	if !c.opts.Settle(ctx) {
		c.rep.Pending.Unsettled = true
		c.rep.Pending.OpenHourDiffs += len(c.suspects)
		return nil
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d1 := pull(cctx, c.opts.SQL, from, "sql")
	defer d1.stop()
	do := pull(cctx, c.opts.Legacy, from, "legacy")
	defer do.stop()
	c.rechecking = true
	if err := c.merge(ctx, d1, do); err != nil {
		return err
	}
	c.rep.Pending.OpenHourDiffs += len(c.suspects)
	c.rep.Pending.Rechecked += len(c.suspects)
	return nil
}

// merge walks both cursors in path order.
func (c *comparison) merge(ctx context.Context, d1, do *cursor) error {
	d1.advance()
	do.advance()
	for (d1.ok || do.ok) && d1.err == nil && do.err == nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case !do.ok || (d1.ok && d1.cur.Path < do.cur.Path):
			c.path(d1.cur.Path, d1.cur, PathHours{})
			d1.advance()
		case !d1.ok || do.cur.Path < d1.cur.Path:
			c.path(do.cur.Path, PathHours{}, do.cur)
			do.advance()
		default:
			c.path(d1.cur.Path, d1.cur, do.cur)
			d1.advance()
			do.advance()
		}
	}
	return errors.Join(d1.err, do.err)
}

// path compares one path's two sides (either may be empty). On the first
// pass a path whose only difference is in the open hour beyond the
// tolerance becomes a suspect (when a recheck is possible); on the recheck
// pass only suspects are looked at again.
func (c *comparison) path(path string, d1, do PathHours) {
	if c.rechecking {
		if _, ok := c.suspects[path]; ok {
			c.recheckPath(path, d1, do)
		}
		return
	}
	c.rep.TotalPaths++
	c.countSides(d1, do)
	t, v := c.judge(d1, do)
	c.addTotals(t)
	switch {
	case v.closedDiff:
		c.addDiff(path, t, v)
	case v.openOver && c.opts.Settle != nil && len(c.suspects) < c.opts.MaxRecheck:
		c.suspects[path] = struct{}{}
	case v.openOver, v.lastOff:
		c.addDiff(path, t, v)
	case v.openDiff:
		c.rep.Pending.OpenHourDiffs++
	}
}

// countSides counts the path on the sides that hold it.
func (c *comparison) countSides(d1, do PathHours) {
	if len(d1.Hours) > 0 {
		c.rep.D1Paths++
	}
	if len(do.Hours) > 0 {
		c.rep.DOPaths++
	}
}

// recheckPath decides a suspect on fresh reads: a difference that went back
// within the tolerance was in flight.
func (c *comparison) recheckPath(path string, d1, do PathHours) {
	delete(c.suspects, path)
	t, v := c.judge(d1, do)
	if v.closedDiff || v.openOver || v.lastOff {
		c.addDiff(path, t, v)
		return
	}
	c.rep.Pending.OpenHourDiffs++
	c.rep.Pending.Rechecked++
}

// verdict is how one path's two sides differ. lastOff is set only when the
// counts match in every hour: then no event of the path is in flight and
// both sides' lastAccessed name the same latest event, so a distance beyond
// the tolerance is a real misalignment, never a live migration's lag. (A
// path whose counts differ is a count diff already, or in flight in the
// open hour, where the in-flight events legitimately move lastAccessed.)
type verdict struct {
	closedDiff, openDiff, openOver, lastOff bool
	d1Last, doLast                          int64 // the sides' lastAccessed, unix ms
}

// judge compares a path's hours and, when they all match, its lastAccessed.
func (c *comparison) judge(d1, do PathHours) (Totals, verdict) {
	t, v := c.classify(d1.Hours, do.Hours)
	v.d1Last, v.doLast = d1.LastAccessedMs, do.LastAccessedMs
	if !v.closedDiff && !v.openDiff && !v.openOver {
		v.lastOff = c.lastMisaligned(v.d1Last, v.doLast)
	}
	return t, v
}

// lastMisaligned reports whether two known lastAccessed values are more
// than the tolerance apart.
func (c *comparison) lastMisaligned(a, b int64) bool {
	tol := c.opts.LastAccessedTolerance
	if tol < 0 || a <= 0 || b <= 0 {
		return false
	}
	return absDiff(a, b) > tol.Milliseconds()
}

// classify sums a path's hours and says how they differ; c.hours receives
// the hours that differ.
func (c *comparison) classify(d1, do []Hour) (Totals, verdict) {
	var t Totals
	var v verdict
	c.hours = c.hours[:0]
	i, j := 0, 0
	for i < len(d1) || j < len(do) {
		var a, b Hour
		switch {
		case j >= len(do) || (i < len(d1) && d1[i].Bucket < do[j].Bucket):
			a = d1[i]
			b.Bucket = a.Bucket
			i++
		case i >= len(d1) || do[j].Bucket < d1[i].Bucket:
			b = do[j]
			a.Bucket = b.Bucket
			j++
		default:
			a, b = d1[i], do[j]
			i++
			j++
		}
		t.D1Requests += a.Requests
		t.D1Errors += a.Errors
		t.DORequests += b.Requests
		t.DOErrors += b.Errors
		if a.Requests == b.Requests && a.Errors == b.Errors {
			continue
		}
		c.hours = append(c.hours, HourDiff{HourBucket: a.Bucket, D1Requests: a.Requests, DORequests: b.Requests, D1Errors: a.Errors, DOErrors: b.Errors})
		switch {
		case a.Bucket < c.openHour:
			v.closedDiff = true
		case within(a.Requests, b.Requests, c.opts.Tolerance) && within(a.Errors, b.Errors, c.opts.Tolerance):
			v.openDiff = true
		default:
			v.openOver = true
		}
	}
	return t, v
}

func (c *comparison) addTotals(t Totals) {
	c.rep.Totals.D1Requests += t.D1Requests
	c.rep.Totals.DORequests += t.DORequests
	c.rep.Totals.D1Errors += t.D1Errors
	c.rep.Totals.DOErrors += t.DOErrors
}

// within reports whether a and b differ by at most tol relative to the
// larger of them.
func within(a, b int64, tol float64) bool {
	d, m := absDiff(a, b), max(a, b)
	return d == 0 || float64(d) <= tol*float64(m)
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// addDiff records a mismatching path, keeping only the MaxDiffs largest.
func (c *comparison) addDiff(path string, t Totals, v verdict) {
	d := Diff{Path: path, Issue: issueOf(t, v), D1Requests: t.D1Requests, DORequests: t.DORequests, D1Errors: t.D1Errors, DOErrors: t.DOErrors}
	if d.Issue == TimestampMismatch {
		d.LastAccessedSkewMs = v.d1Last - v.doLast
	}
	c.rep.DiffsTotal++
	c.rep.Issues.add(d.Issue)
	if len(c.diffs) == c.opts.MaxDiffs && !less(c.diffs[0], d) {
		return // smaller than every kept diff
	}
	if m := max(t.D1Requests, t.DORequests); m > 0 {
		d.ErrorRate = float64(absDiff(t.D1Requests, t.DORequests)) / float64(m) * 100
	}
	d.D1LastAccessed, d.DOLastAccessed = formatMs(v.d1Last), formatMs(v.doLast)
	d.Hours = slices.Clone(c.hours)
	if len(c.diffs) < c.opts.MaxDiffs {
		heap.Push(&c.diffs, d)
		return
	}
	c.diffs[0] = d
	heap.Fix(&c.diffs, 0)
}

// issueOf names the kind of a diff.
func issueOf(t Totals, v verdict) string {
	switch {
	case t.DORequests == 0:
		return MissingInDO
	case t.D1Requests == 0:
		return MissingInD1
	case v.closedDiff || v.openDiff || v.openOver:
		return CountMismatch
	}
	return TimestampMismatch
}

// formatMs renders unix milliseconds as RFC 3339 (UTC); "" for 0.
func formatMs(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// finish fills the summary fields and sorts the kept diffs, largest first.
func (c *comparison) finish(now time.Time, from int64) {
	r := &c.rep
	r.Diffs = []Diff(c.diffs)
	slices.SortFunc(r.Diffs, func(a, b Diff) int {
		switch {
		case less(b, a):
			return -1
		case less(a, b):
			return 1
		}
		return 0
	})
	if r.Diffs == nil {
		r.Diffs = []Diff{}
	}
	r.DiffsOmitted = r.DiffsTotal - len(r.Diffs)
	r.MatchedPaths = r.TotalPaths - r.DiffsTotal
	r.Accuracy = 100
	if r.TotalPaths > 0 {
		r.Accuracy = float64(r.MatchedPaths) / float64(r.TotalPaths) * 100
	}
	r.Timestamp = now.UTC().Format(time.RFC3339)
	r.LastAccessedToleranceSeconds = -1
	if tol := c.opts.LastAccessedTolerance; tol >= 0 {
		r.LastAccessedToleranceSeconds = int64(tol / time.Second)
	}
	r.WindowStart, r.WindowEnd = from, c.openHour+3600
}

// less orders diffs by size: a is smaller than b when its request
// difference is smaller, or equal with a smaller lastAccessed skew (0 but
// for timestamp mismatches), or both equal with a larger path (so that
// sorting by size descending lists ties by path ascending).
func less(a, b Diff) bool {
	da, db := absDiff(a.D1Requests, a.DORequests), absDiff(b.D1Requests, b.DORequests)
	if da != db {
		return da < db
	}
	if sa, sb := absDiff(a.LastAccessedSkewMs, 0), absDiff(b.LastAccessedSkewMs, 0); sa != sb {
		return sa < sb
	}
	return strings.Compare(a.Path, b.Path) > 0
}

// diffHeap is a min-heap of diffs by size: the root is the smallest kept.
type diffHeap []Diff

func (h diffHeap) Len() int           { return len(h) }
func (h diffHeap) Less(i, j int) bool { return less(h[i], h[j]) }
func (h diffHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *diffHeap) Push(x any)        { *h = append(*h, x.(Diff)) }
func (h *diffHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// cursor pulls one source's paths one at a time.
type cursor struct {
	name string
	next func() (PathHours, bool)
	stop func()
	err  error
	werr *error // the walk's error, set when it returns
	cur  PathHours
	ok   bool
}

var errStopped = errors.New("compare: stopped")

// pull starts src's walk as a pull iterator.
func pull(ctx context.Context, src HourlySource, from int64, name string) *cursor {
	c := &cursor{name: name, werr: new(error)}
	seq := func(yield func(PathHours) bool) {
		err := src.EachPath(ctx, from, func(p PathHours) error {
			if !yield(p) {
				return errStopped
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStopped) {
			*c.werr = fmt.Errorf("compare: read %s: %w", name, err)
		}
	}
	c.next, c.stop = iter.Pull(seq)
	return c
}

// advance moves to the next path; it checks the walk is sorted by path.
func (c *cursor) advance() {
	if c.err != nil {
		c.ok = false
		return
	}
	prev, had := c.cur.Path, c.ok
	c.cur, c.ok = c.next()
	if !c.ok {
		c.err = *c.werr
		return
	}
	if had && c.cur.Path <= prev {
		c.err = fmt.Errorf("compare: %s source not sorted by path (%q after %q)", c.name, c.cur.Path, prev)
		c.ok = false
	}
}
