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
