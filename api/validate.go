package api

import (
	"math"
	"net/netip"
	"strconv"
	"time"

	"github.com/pathstats/pathstats"
)

// DefaultRetention is the oldest event age accepted when Ingest.Retention is
// not set (the --retention default).
const DefaultRetention = 720 * time.Hour

// maxInterned bounds the strings (methods, proxy ids) a decoder interns.
const maxInterned = 1024

// checker validates scanned events against the request's clock.
type checker struct {
	now              time.Time
	oldest, newest   time.Time
	oldestMs, newMs  float64
	retentionMessage string
	intern           map[string]string
}

func (c *checker) reset(now time.Time, retention time.Duration) {
	if retention <= 0 {
		retention = DefaultRetention
	}
	c.now = now
	c.oldest = now.Add(-retention)
	c.newest = now.Add(maxFutureSkew)
	c.oldestMs = float64(c.oldest.UnixMilli())
	c.newMs = float64(c.newest.UnixMilli())
	c.retentionMessage = "older than the retention (" + retention.String() + ")"
	if c.intern == nil {
		c.intern = make(map[string]string)
	}
}

// event validates raw into ev, reporting each invalid field; it returns
// whether the event is valid.
func (c *checker) event(raw *rawEvent, idx int, ev *pathstats.Event, p *problems) bool {
	before := p.total
	bad := func(field, reason string) { p.add(EventError{Index: idx, Field: field, Reason: reason}) }
	if reason := c.timestamp(raw.timestamp, &ev.Time); reason != "" {
		bad("timestamp", reason)
	}
	if reason := checkPath(raw.path, &ev.Path); reason != "" {
		bad("path", reason)
	}
	if reason := c.method(raw.method, &ev.Method); reason != "" {
		bad("method", reason)
	}
	if reason := checkStatus(raw.status, &ev.Status); reason != "" {
		bad("status", reason)
	}
	if reason := checkLatency(raw.latency, &ev.LatencyMs); reason != "" {
		bad("latencyMs", reason)
	}
	if reason := c.proxyID(raw.proxyID, &ev.ProxyID); reason != "" {
		bad("proxyId", reason)
	}
	if reason := checkClientIP(raw.clientIP, &ev.ClientIP); reason != "" {
		bad("clientIp", reason)
	}
	return p.total == before
}

func absent(v rawValue) bool { return v.kind == kindAbsent || v.kind == kindNull }

func (c *checker) timestamp(v rawValue, out *time.Time) string {
	const reason = "must be an RFC 3339 string or unix milliseconds"
	switch v.kind {
	case kindAbsent, kindNull:
		*out = time.Time{} // the request's time: the batch builder's now
		return ""
	case kindString:
		var t time.Time
		if err := t.UnmarshalText(v.b); err != nil {
			return reason
		}
		*out = t.UTC()
	case kindNumber:
		ms, ok := parseFinite(v.b)
		if !ok {
			return reason
		}
		if ms > c.newMs {
			return "more than 5 minutes in the future"
		}
		if ms < c.oldestMs {
			return c.retentionMessage
		}
		*out = unixMilli(ms)
	default:
		return reason
	}
	if out.After(c.newest) {
		return "more than 5 minutes in the future"
	}
	if out.Before(c.oldest) {
		return c.retentionMessage
	}
	return ""
}

// unixMilli converts unix milliseconds, in the accepted range, to a time
// without losing the sub-millisecond part to float rounding.
func unixMilli(ms float64) time.Time {
	whole := math.Floor(ms)
	ns := int64(math.Round((ms - whole) * 1e6))
	return time.UnixMilli(int64(whole)).Add(time.Duration(ns)).UTC()
}

func checkPath(v rawValue, out *string) string {
	switch {
	case absent(v):
		return "required"
	case v.kind != kindString:
		return "must be a string"
	case len(v.b) == 0 || v.b[0] != '/':
		return `must start with "/"`
	case len(v.b) > MaxEventPathBytes:
		return "longer than " + strconv.Itoa(MaxEventPathBytes) + " bytes"
	case hasControl(v.b):
		return "must not contain control characters (bytes below 0x20 or 0x7f); percent-encode them"
	}
	*out = string(v.b)
	return ""
}

// hasControl reports whether b holds an ASCII control character.
func hasControl(b []byte) bool {
	for _, c := range b {
		if pathstats.IsControlByte(c) {
			return true
		}
	}
	return false
}

func (c *checker) method(v rawValue, out *string) string {
	switch {
	case absent(v):
		return ""
	case v.kind != kindString:
		return "must be a string"
	case len(v.b) > maxMethodLen:
		return "longer than " + strconv.Itoa(maxMethodLen) + " characters"
	}
	for _, b := range v.b {
		if !isTokenChar(b) {
			return "must be an HTTP method token"
		}
	}
	*out = c.interned(v.b)
	return ""
}

func checkStatus(v rawValue, out *int) string {
	switch {
	case absent(v):
		return "required"
	case v.kind != kindNumber:
		return "must be an integer"
	}
	f, ok := parseFinite(v.b)
	if !ok || f != math.Trunc(f) {
		return "must be an integer"
	}
	if f < 100 || f > 599 {
		return "must be between 100 and 599"
	}
	*out = int(f)
	return ""
}

func checkLatency(v rawValue, out *float64) string {
	switch {
	case absent(v):
		return ""
	case v.kind != kindNumber:
		return "must be a number"
	}
	f, ok := parseFinite(v.b)
	if !ok {
		return "must be a finite number"
	}
	if f < 0 {
		return "must be >= 0"
	}
	*out = f
	return ""
}

func (c *checker) proxyID(v rawValue, out *string) string {
	switch {
	case absent(v) || (v.kind == kindString && len(v.b) == 0):
		*out = pathstats.DefaultProxyID
		return ""
	case v.kind != kindString:
		return "must be a string"
	case len(v.b) > maxProxyIDLen:
		return "longer than " + strconv.Itoa(maxProxyIDLen) + " characters"
	}
	for _, b := range v.b {
		if !isProxyIDChar(b) {
			return "may only hold A-Z a-z 0-9 _ . -"
		}
	}
	*out = c.interned(v.b)
	return ""
}

func checkClientIP(v rawValue, out *string) string {
	switch {
	case absent(v):
		return ""
	case v.kind != kindString:
		return "must be a string"
	case len(v.b) == 0:
		return ""
	}
	s := string(v.b)
	if _, err := netip.ParseAddr(s); err != nil {
		return "must be an IP address"
	}
	*out = s
	return ""
}

// parseFinite parses a JSON number's text (already checked by the scanner).
func parseFinite(b []byte) (float64, bool) {
	if n, ok := smallInt(b); ok {
		return float64(n), true
	}
	f, _ := strconv.ParseFloat(string(b), 64) // overflow gives ±Inf
	return f, !math.IsInf(f, 0) && !math.IsNaN(f)
}

// smallInt is the fast path of parseFinite for plain non-negative integers.
func smallInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// interned returns b as a string, sharing one copy per distinct value.
func (c *checker) interned(b []byte) string {
	if s, ok := c.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(c.intern) < maxInterned {
		c.intern[s] = s
	}
	return s
}

// isTokenChar reports whether b is an RFC 9110 tchar.
func isTokenChar(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	switch b {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isProxyIDChar(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	return b == '_' || b == '.' || b == '-'
}
