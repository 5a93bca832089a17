// Package hourmerge merges per-hour row streams into per-path hour series:
// the walk behind the SQL stores' EachPathHourly. Each store reads one
// cursor per hour bucket in path order (a range of its (hour, path, proxy)
// key, so no sort) and hands the cursors to Walk, which merges them with a
// min-heap by (path, hour) and sums the rows of a path's proxies.
package hourmerge

import (
	"bytes"
	"container/heap"
	"fmt"
)

// Cursor is one hour bucket's rows in path order (byte order), the rows of
// one path's proxies adjacent.
type Cursor interface {
	// Next moves to the next row and reports whether there is one; false
	// with a nil error is the end.
	Next() (bool, error)
	// Row returns the current row: lastSeenMs is the unix milliseconds of
	// its latest event (0: not known). path stays valid until the cursor's
	// next call of Next.
	Row() (path []byte, requests, errors, lastSeenMs int64)
}

// Hour is the cursor of one hour bucket.
type Hour struct {
	Bucket int64 // unix seconds of the start of the hour
	Cursor Cursor
}

// Walk calls fn for every path with requests or errors in the hours, in
// path order (byte order), with its hours ascending as {hourBucket,
// requests, errors} summed over the rows of the hour and lastSeenMs the
// largest of those rows; rows with neither requests nor errors are left
// out, and a path with only such rows is not visited. hours is reused
// between calls and valid only during fn. Walk reads each cursor to its end
// (unless it stops early) but closes none. An error from fn stops the walk
// and is returned as is.
func Walk(hours []Hour, fn func(path string, lastSeenMs int64, hours [][3]int64) error) error {
	m := make(merge, 0, len(hours))
	for _, h := range hours {
		c := &cursor{Hour: h}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			m = append(m, c)
		}
	}
	heap.Init(&m)
	return m.walk(fn)
}

// cursor is an hour's cursor positioned on a row.
type cursor struct {
	Hour
	path                         []byte
	requests, errors, lastSeenMs int64
}

// next moves to the next row and caches it; ok is false at the end.
func (c *cursor) next() (ok bool, err error) {
	ok, err = c.Cursor.Next()
	if err != nil {
		return false, fmt.Errorf("hour %d: %w", c.Bucket, err)
	}
	if ok {
		c.path, c.requests, c.errors, c.lastSeenMs = c.Cursor.Row()
	}
	return ok, nil
}

// merge is a min-heap of cursors by (path, hour).
type merge []*cursor

func (m merge) Len() int { return len(m) }
func (m merge) Less(i, j int) bool {
	if c := bytes.Compare(m[i].path, m[j].path); c != 0 {
		return c < 0
	}
	return m[i].Bucket < m[j].Bucket
}
func (m merge) Swap(i, j int) { m[i], m[j] = m[j], m[i] }
func (m *merge) Push(x any)   { *m = append(*m, x.(*cursor)) }
func (m *merge) Pop() any {
	old := *m
	x := old[len(old)-1]
	*m = old[:len(old)-1]
	return x
}

// walk pops the cursors in (path, hour) order and calls fn once per path.
func (m *merge) walk(fn func(path string, lastSeenMs int64, hours [][3]int64) error) error {
	var (
		path  []byte
		hours [][3]int64
		last  int64
	)
	for m.Len() > 0 {
		c := (*m)[0]
		if len(hours) > 0 && !bytes.Equal(c.path, path) {
			if err := fn(string(path), last, hours); err != nil {
				return err
			}
			hours = hours[:0]
		}
		if len(hours) == 0 {
			path, last = append(path[:0], c.path...), 0
		}
		switch n := len(hours); {
		case c.requests == 0 && c.errors == 0:
		case n > 0 && hours[n-1][0] == c.Bucket: // another proxy of the hour
			hours[n-1][1] += c.requests
			hours[n-1][2] += c.errors
			last = max(last, c.lastSeenMs)
		default:
			hours = append(hours, [3]int64{c.Bucket, c.requests, c.errors})
			last = max(last, c.lastSeenMs)
		}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(m, 0)
		} else {
			heap.Pop(m)
		}
	}
	if len(hours) > 0 {
		return fn(string(path), last, hours)
	}
	return nil
}
