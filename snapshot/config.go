package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pathstats/pathstats"
)

// KV keys.
const (
	ConfigKey   = "snapshot:config"
	LatestKey   = "snapshot:latest"
	chunkPrefix = "snapshot:v"
)

// Config is the JSON stored under snapshot:config. It is written after the
// payload it describes.
type Config struct {
	Version         uint64    `json:"version"`
	Timestamp       time.Time `json:"timestamp"` // when the window was read from SQL (RFC 3339)
	PathCount       int       `json:"pathCount"`
	Checksum        string    `json:"checksum"` // "sha256:<hex>" of the compressed payload (all chunks in order)
	Chunks          int       `json:"chunks"`
	Bytes           int64     `json:"bytes"` // compressed payload size
	WindowStartHour int64     `json:"windowStartHour"`
}

// Age is how old the version is at now.
func (c Config) Age(now time.Time) time.Duration { return now.Sub(c.Timestamp) }

// chunkKey is the key of chunk i of a version.
func chunkKey(version uint64, i int) string {
	return chunkPrefix + strconv.FormatUint(version, 10) + ":" + strconv.Itoa(i)
}

// versionPrefix is the common prefix of a version's chunk keys.
func versionPrefix(version uint64) string {
	return chunkPrefix + strconv.FormatUint(version, 10) + ":"
}

// chunkVersion parses the version out of a chunk key.
func chunkVersion(key string) (uint64, bool) {
	rest, ok := strings.CutPrefix(key, chunkPrefix)
	if !ok {
		return 0, false
	}
	v, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

func checksum(payload []byte) string {
	sum := sha256.Sum256(payload)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// split cuts payload into chunks of at most size bytes (at least one chunk,
// so an empty snapshot still has a payload).
func split(payload []byte, size int) [][]byte {
	chunks := make([][]byte, 0, len(payload)/size+1)
	for len(payload) > size {
		chunks = append(chunks, payload[:size:size])
		payload = payload[size:]
	}
	return append(chunks, payload)
}

func parseConfig(b []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("%w: config: %w", ErrDecode, err)
	}
	if c.Version == 0 || c.Chunks < 1 || c.Bytes < 0 || c.PathCount < 0 || !strings.HasPrefix(c.Checksum, "sha256:") {
		return Config{}, fmt.Errorf("%w: config: invalid fields", ErrDecode)
	}
	return c, nil
}

// LatestEntry is one element of snapshot:latest, the migration plan's
// PathStatsSnapshot.
type LatestEntry struct {
	Path        string `json:"path"`
	Requests    int64  `json:"requests"`
	Errors      int64  `json:"errors"`
	LastUpdated string `json:"last_updated"` // RFC 3339, UTC, milliseconds
}

// encodeLatest returns the JSON array of the top items (items are sorted)
// that fits in limit bytes.
func encodeLatest(items []pathstats.PathItem, limit int) ([]byte, error) {
	out := append(make([]byte, 0, min(limit, 64*1024)), '[')
	for i := range items {
		it := &items[i]
		e, err := json.Marshal(LatestEntry{
			Path:        it.Path,
			Requests:    it.Requests,
			Errors:      it.Errors,
			LastUpdated: time.UnixMilli(it.LastAccessedMs).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		})
		if err != nil {
			return nil, fmt.Errorf("encode latest: %w", err)
		}
		if len(out)+len(e)+2 > limit { // a comma and the closing bracket
			break
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, e...)
	}
	return append(out, ']'), nil
}
