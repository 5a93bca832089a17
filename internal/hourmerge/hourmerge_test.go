package hourmerge

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// row is one row of a sliceCursor.
type row struct {
	path                   string
	requests, errors, last int64
}

// sliceCursor walks rows; its path buffer is overwritten on each Next, as a
// store's fetch buffer may be.
type sliceCursor struct {
	rows []row
	i    int
	buf  []byte
	err  error // returned by Next after the rows
}

func (c *sliceCursor) Next() (bool, error) {
	if c.i == len(c.rows) {
		return false, c.err
	}
	c.buf = append(c.buf[:0], c.rows[c.i].path...)
	c.i++
	return true, nil
}

func (c *sliceCursor) Row() ([]byte, int64, int64, int64) {
	r := c.rows[c.i-1]
	return c.buf, r.requests, r.errors, r.last
}

type visit struct {
	path  string
	last  int64
	hours [][3]int64
}

func collect(t *testing.T, hours []Hour) []visit {
	t.Helper()
	var got []visit
	if err := Walk(hours, func(p string, last int64, hs [][3]int64) error {
		got = append(got, visit{p, last, slices.Clone(hs)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWalk(t *testing.T) {
	// lastSeen is the largest of a path's rows with counts; an empty row's
	// (the /a row of 400 with 0, 0 at 499) does not count.
	hours := []Hour{
		{200, &sliceCursor{rows: []row{{"/a", 1, 0, 210}, {"/b", 2, 1, 250}, {"/b", 3, 0, 240}, {"/z", 0, 0, 299}}}},
		{100, &sliceCursor{rows: []row{{"/C", 5, 5, 150}, {"/b", 1, 1, 199}, {"/\u00e9", 7, 0, 0}}}},
		{300, &sliceCursor{}},
		{400, &sliceCursor{rows: []row{{"/a", 0, 0, 499}, {"/a", 0, 2, 401}, {"/y", 0, 0, 400}}}},
	}
	want := []visit{
		{"/C", 150, [][3]int64{{100, 5, 5}}},
		{"/a", 401, [][3]int64{{200, 1, 0}, {400, 0, 2}}},
		{"/b", 250, [][3]int64{{100, 1, 1}, {200, 5, 1}}}, // two proxies in hour 200
		{"/\u00e9", 0, [][3]int64{{100, 7, 0}}},           // byte order; "/y", "/z" have only empty rows
	}
	if got := collect(t, hours); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

func TestWalkEmpty(t *testing.T) {
	if got := collect(t, nil); len(got) != 0 {
		t.Fatalf("no hours: got %v", got)
	}
	only := []Hour{{100, &sliceCursor{rows: []row{{"/a", 0, 0, 1}}}}}
	if got := collect(t, only); len(got) != 0 {
		t.Fatalf("only empty rows: got %v", got)
	}
}

func TestWalkErrors(t *testing.T) {
	boom := errors.New("boom")
	bad := []Hour{{100, &sliceCursor{rows: []row{{"/a", 1, 0, 1}}, err: boom}}}
	err := Walk(bad, func(string, int64, [][3]int64) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("cursor error: got %v", err)
	}
	stop := errors.New("stop")
	n := 0
	two := []Hour{{100, &sliceCursor{rows: []row{{"/a", 1, 0, 1}, {"/b", 1, 0, 1}}}}}
	if err := Walk(two, func(string, int64, [][3]int64) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("stop: err %v after %d calls", err, n)
	}
}
