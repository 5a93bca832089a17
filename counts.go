package pathstats

import (
	"math"
	"time"
)

// LatencyBoundsMs are the upper bounds (inclusive, in milliseconds) of the fixed
// latency buckets. A last, unbounded bucket follows them. Bucket counts add up
// across batches, rows and nodes, so percentiles survive any merging.
var LatencyBoundsMs = [...]float64{1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// NumLatencyBuckets is the number of latency buckets, the unbounded one included.
const NumLatencyBuckets = len(LatencyBoundsMs) + 1

// NumStatusClasses is the number of status classes counted (1xx … 5xx).
const NumStatusClasses = 5

// LatencyBucket returns the bucket index for a latency given in milliseconds.
func LatencyBucket(ms float64) int {
	for i, b := range LatencyBoundsMs {
		if ms <= b {
			return i
		}
	}
	return len(LatencyBoundsMs)
}

// LatencyBucketOf returns the bucket index for a duration; it avoids float
// arithmetic on the hot path.
func LatencyBucketOf(d time.Duration) int {
	us := d.Microseconds()
	for i, b := range latencyBoundsUs {
		if us <= b {
			return i
		}
	}
	return len(latencyBoundsUs)
}

var latencyBoundsUs = func() (out [len(LatencyBoundsMs)]int64) {
	for i, b := range LatencyBoundsMs {
		out[i] = int64(b * 1000)
	}
	return out
}()

// StatusClass returns 0 for 1xx … 4 for 5xx; statuses outside 100–599 are
// clamped (the gateway never produces them and ingest rejects them).
func StatusClass(status int) int {
	c := status/100 - 1
	if c < 0 {
		return 0
	}
	if c > 4 {
		return 4
	}
	return c
}

// HourBucket returns the unix seconds of the start of the UTC hour holding t.
func HourBucket(t time.Time) int64 {
	s := t.Unix()
	return s - mod(s, 3600)
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// Counts are the additive counters kept per (path, proxyId, hour).
// Requests, errors (5xx, including the gateway's own 502/504) and client errors
// (4xx) derive from the status classes.
type Counts struct {
	Status     [NumStatusClasses]int64  `json:"s"`
	Latency    [NumLatencyBuckets]int64 `json:"l"`
	LastSeenMs int64                    `json:"t"` // unix milliseconds of the latest event
}

// Requests is the number of responses counted.
func (c *Counts) Requests() int64 {
	var n int64
	for _, v := range c.Status {
		n += v
	}
	return n
}

// Errors is the number of 5xx responses (upstream failures included).
func (c *Counts) Errors() int64 { return c.Status[4] }

// ClientErrors is the number of 4xx responses.
func (c *Counts) ClientErrors() int64 { return c.Status[3] }

// Add adds o to c.
func (c *Counts) Add(o *Counts) {
	for i := range c.Status {
		c.Status[i] += o.Status[i]
	}
	for i := range c.Latency {
		c.Latency[i] += o.Latency[i]
	}
	if o.LastSeenMs > c.LastSeenMs {
		c.LastSeenMs = o.LastSeenMs
	}
}

// Observe counts one response.
func (c *Counts) Observe(status int, latencyMs float64, at time.Time) {
	c.Status[StatusClass(status)]++
	c.Latency[LatencyBucket(latencyMs)]++
	if ms := at.UnixMilli(); ms > c.LastSeenMs {
		c.LastSeenMs = ms
	}
}

// IsZero reports whether nothing was counted.
func (c *Counts) IsZero() bool { return c.Requests() == 0 }

// Percentile estimates the q-th quantile (0 < q <= 1) of latency in
// milliseconds by linear interpolation inside the bucket that holds it. The
// unbounded bucket reports its lower bound. It returns 0 without data.
func (c *Counts) Percentile(q float64) float64 {
	return PercentileOf(c.Latency[:], q)
}

// PercentileOf estimates a quantile from latency bucket counts (see Percentile).
func PercentileOf(buckets []int64, q float64) float64 {
	var total int64
	for _, v := range buckets {
		total += v
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, v := range buckets {
		if v == 0 {
			continue
		}
		if seen+float64(v) >= rank {
			lo := 0.0
			if i > 0 {
				lo = LatencyBoundsMs[i-1]
			}
			if i >= len(LatencyBoundsMs) {
				return lo
			}
			hi := LatencyBoundsMs[i]
			frac := (rank - seen) / float64(v)
			return math.Round((lo+(hi-lo)*frac)*100) / 100
		}
		seen += float64(v)
	}
	return LatencyBoundsMs[len(LatencyBoundsMs)-1]
}
