package snapshot

import "errors"

// Errors returned by Reader.Load, so a caller can fall back to SQL and say
// why. KV unavailability wraps pathstats.ErrUnavailable instead.
var (
	// ErrNoConfig: snapshot:config is missing; nothing was published yet.
	ErrNoConfig = errors.New("snapshot config missing")
	// ErrPayloadMissing: a chunk of the configured version is missing.
	ErrPayloadMissing = errors.New("snapshot payload missing")
	// ErrChecksum: the payload does not match the config's size or checksum.
	ErrChecksum = errors.New("snapshot checksum mismatch")
	// ErrDecode: the config or the payload cannot be decoded.
	ErrDecode = errors.New("snapshot corrupt")
)

// ErrBusy is returned by Writer.Build when another writer holds the
// snapshotter lease (or published a version concurrently); nothing was
// published.
var ErrBusy = errors.New("snapshot writer busy: another node holds the lease")
