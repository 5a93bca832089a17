// Package compare compares the legacy system's hourly counters with the
// pipeline's SQL hourly rows over the same window, hour by hour (DESIGN §4):
// closed hours must match exactly; the open hour may differ within a
// tolerance, attributed to events still in flight. A path whose counts
// match must also have its lastAccessed aligned on both sides within
// LastAccessedTolerance (the plan's data acceptance: ±5 minutes).
package compare

import (
	"context"
	"time"
)

// Hour is one hour bucket's counters of a path.
type Hour struct {
	Bucket   int64 // unix seconds of the UTC hour
	Requests int64
	Errors   int64
}

// PathHours is one path's hours, ascending by Bucket. It is valid only
// during the callback that receives it.
type PathHours struct {
	Path  string
	Hours []Hour
	// LastAccessedMs is the unix milliseconds of the path's latest event
	// on this side (0: not known, then not compared).
	LastAccessedMs int64
}

// HourlySource iterates the paths with requests in hour buckets >= fromHour,
// sorted by path (byte order), calling fn once per path. An error from fn
// stops the walk and is returned.
type HourlySource interface {
	EachPath(ctx context.Context, fromHour int64, fn func(p PathHours) error) error
}

// TripleFunc adapts a walk that reports a path's latest event (unix
// milliseconds) and its hours as {hourBucket, requests, errors}
// (legacy.System.EachPathHourly, sqlite.StatsStore.EachPathHourly) to an
// HourlySource.
type TripleFunc func(ctx context.Context, fromHour int64, fn func(path string, lastMs int64, hours [][3]int64) error) error

// EachPath implements HourlySource.
func (f TripleFunc) EachPath(ctx context.Context, fromHour int64, fn func(p PathHours) error) error {
	var buf []Hour
	return f(ctx, fromHour, func(path string, lastMs int64, hours [][3]int64) error {
		buf = buf[:0]
		for _, h := range hours {
			buf = append(buf, Hour{Bucket: h[0], Requests: h[1], Errors: h[2]})
		}
		return fn(PathHours{Path: path, Hours: buf, LastAccessedMs: lastMs})
	})
}

// PendingInfo is what was still in flight when a comparison ran.
type PendingInfo struct {
	Events   int64 // events buffered by recorders
	Messages int64 // queue backlog (messages not yet applied)
}

// DefaultLastAccessedTolerance is how far apart the two sides' lastAccessed
// of a path may be: the plan's data acceptance (时间戳对齐 ±5 分钟).
const DefaultLastAccessedTolerance = 5 * time.Minute

// Options configure Run. Legacy and SQL are required.
type Options struct {
	Legacy, SQL HourlySource
	Window      time.Duration      // default 24h
	Tolerance   float64            // relative, for the open hour; 0: 0.01, < 0: exact
	Now         func() time.Time   // default time.Now
	Pending     func() PendingInfo // optional
	MaxDiffs    int                // default 100
	// Settle, when set, lets in-flight events land (flush recorders, drain
	// the queue) and reports whether everything landed; paths that differ
	// beyond the tolerance only in the open hour are then read again, and
	// reported only if they still differ. When the pipeline could not
	// settle (it is behind), the open hour cannot be judged: such paths are
	// counted as in flight and the report says so (Pending.Unsettled);
	// their hour is judged exactly once it has closed.
	Settle func(ctx context.Context) bool
	// MaxRecheck bounds the paths kept for the recheck (default 10,000);
	// beyond it open-hour differences are reported at once.
	MaxRecheck int
	// LastAccessedTolerance is the largest distance between the two sides'
	// lastAccessed of a path whose counts match (default
	// DefaultLastAccessedTolerance; < 0: lastAccessed is not compared).
	LastAccessedTolerance time.Duration
}

func (o *Options) setDefaults() {
	if o.Window <= 0 {
		o.Window = 24 * time.Hour
	}
	if o.Tolerance == 0 {
		o.Tolerance = 0.01
	}
	if o.LastAccessedTolerance == 0 {
		o.LastAccessedTolerance = DefaultLastAccessedTolerance
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxDiffs <= 0 {
		o.MaxDiffs = 100
	}
	if o.MaxRecheck <= 0 {
		o.MaxRecheck = 10_000
	}
}

// Issue kinds of a Diff (the plan's names, and one for the plan's
// timestamp acceptance). A path has at most one: a count difference wins,
// and lastAccessed is judged only for paths whose counts match in every
// hour.
const (
	MissingInDO   = "missing_in_do" // in SQL only
	MissingInD1   = "missing_in_d1" // in the legacy system only
	CountMismatch = "count_mismatch"
	// TimestampMismatch: the counts match, but the sides' lastAccessed are
	// more than LastAccessedTolerance apart.
	TimestampMismatch = "timestamp_mismatch"
)

// Report is the result of a comparison. d1 is the SQL side, do the legacy
// side (the plan's names). A path matches when it has no diff of any kind,
// timestamp_mismatch included, so Accuracy counts the timestamp check too.
type Report struct {
	TotalPaths   int     `json:"totalPaths"` // paths on either side
	MatchedPaths int     `json:"matchedPaths"`
	Diffs        []Diff  `json:"diffs"`
	Accuracy     float64 `json:"accuracy"` // percent; 100 without paths
	Timestamp    string  `json:"timestamp"`
	WindowStart  int64   `json:"windowStart"` // first hour bucket compared
	WindowEnd    int64   `json:"windowEnd"`   // end of the open hour (exclusive)
	Totals       Totals  `json:"totals"`
	Pending      Pending `json:"pending"`
	DiffsTotal   int     `json:"diffsTotal"`
	DiffsOmitted int     `json:"diffsOmitted"`
	// D1Paths and DOPaths are the paths with requests in the window on
	// each side (the plan's 路径统计数量一致).
	D1Paths int `json:"d1Paths"`
	DOPaths int `json:"doPaths"`
	// Issues counts the diffs by kind, omitted ones included.
	Issues IssueCounts `json:"issues"`
	// LastAccessedToleranceSeconds is the timestamp tolerance applied (-1:
	// lastAccessed was not compared).
	LastAccessedToleranceSeconds int64 `json:"lastAccessedToleranceSeconds"`
}

// IssueCounts counts diffs per issue kind; the keys are the kinds' names.
type IssueCounts struct {
	MissingInDO       int `json:"missing_in_do"`
	MissingInD1       int `json:"missing_in_d1"`
	CountMismatch     int `json:"count_mismatch"`
	TimestampMismatch int `json:"timestamp_mismatch"`
}

// add counts one diff of kind issue.
func (n *IssueCounts) add(issue string) {
	switch issue {
	case MissingInDO:
		n.MissingInDO++
	case MissingInD1:
		n.MissingInD1++
	case CountMismatch:
		n.CountMismatch++
	case TimestampMismatch:
		n.TimestampMismatch++
	}
}

// Totals sums both sides over the window.
type Totals struct {
	D1Requests int64 `json:"d1Requests"`
	DORequests int64 `json:"doRequests"`
	D1Errors   int64 `json:"d1Errors"`
	DOErrors   int64 `json:"doErrors"`
}

// Pending is what was in flight: the PendingInfo at the start and the paths
// whose only differences were in the open hour, within the tolerance.
type Pending struct {
	Events        int64 `json:"events"`
	Messages      int64 `json:"messages"`
	OpenHourDiffs int   `json:"openHourDiffs"`
	// Rechecked counts the open-hour differences beyond the tolerance that
	// were gone when read again after settling (included in OpenHourDiffs).
	Rechecked int `json:"rechecked"`
	// Unsettled is true when the pipeline was still behind after settling:
	// open-hour differences were not judged.
	Unsettled bool `json:"unsettled"`
}

// Diff is one path that does not match.
type Diff struct {
	Path       string     `json:"path"`
	Issue      string     `json:"issue"`
	D1Requests int64      `json:"d1Requests"`
	DORequests int64      `json:"doRequests"`
	ErrorRate  float64    `json:"errorRate"` // |d1-do| / max(d1, do), percent
	D1Errors   int64      `json:"d1Errors"`
	DOErrors   int64      `json:"doErrors"`
	Hours      []HourDiff `json:"hours"`
	// D1LastAccessed and DOLastAccessed are each side's latest event of the
	// path (RFC 3339, UTC; absent when the side has none or keeps none).
	D1LastAccessed string `json:"d1LastAccessed,omitempty"`
	DOLastAccessed string `json:"doLastAccessed,omitempty"`
	// LastAccessedSkewMs is d1's lastAccessed minus do's, in milliseconds,
	// for a timestamp_mismatch (absent for the other kinds).
	LastAccessedSkewMs int64 `json:"lastAccessedSkewMs,omitempty"`
}

// HourDiff is one hour where the two sides differ.
type HourDiff struct {
	HourBucket int64 `json:"hourBucket"`
	D1Requests int64 `json:"d1Requests"`
	DORequests int64 `json:"doRequests"`
	D1Errors   int64 `json:"d1Errors"`
	DOErrors   int64 `json:"doErrors"`
}
