package pathstats

import "time"

// Event is one request observation: from the gateway or the ingest API.
type Event struct {
	Time      time.Time
	Path      string
	Method    string
	Status    int
	LatencyMs float64
	ProxyID   string
	ClientIP  string
}

// MaxPathLength caps a normalised path, in bytes.
const MaxPathLength = 1024

// DefaultProxyID is the proxyId of the --upstream route and of ingest events
// that name none.
const DefaultProxyID = "default"

// IsControlByte reports whether b is an ASCII control character: below 0x20
// or DEL (0x7f). Paths must not hold any (DESIGN §4).
func IsControlByte(b byte) bool { return b < 0x20 || b == 0x7f }

// IndexControl returns the index of the first control byte of s, or -1.
func IndexControl(s string) int {
	for i := 0; i < len(s); i++ {
		if IsControlByte(s[i]) {
			return i
		}
	}
	return -1
}
