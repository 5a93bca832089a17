package pathstats

import (
	"context"
	"errors"
)

// KV errors; backends wrap them.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("revision conflict")
)

// MaxKVValue is the largest value every KV backend must store; larger data
// (snapshots) is split into chunks.
const MaxKVValue = 512 * 1024

// KVEntry is one stored value and its revision.
type KVEntry struct {
	Key      string
	Value    []byte
	Revision uint64
	Deleted  bool
}

// KV is the shared key-value store (snapshots, migration config, leases):
// JetStream KV (embedded or external) or Redis. Revisions make
// compare-and-set possible; they grow on every change of a key.
type KV interface {
	// Get returns the current value; ErrNotFound when absent or deleted.
	Get(ctx context.Context, key string) (KVEntry, error)
	// Put stores value unconditionally and returns the new revision.
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	// Create stores value only if the key is absent (or deleted);
	// ErrConflict otherwise.
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Update stores value only if the key's revision is still rev;
	// ErrConflict otherwise.
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// Delete removes the key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// Keys lists present keys starting with prefix.
	Keys(ctx context.Context, prefix string) ([]string, error)
	// Watch sends the key's current entry (if any) and then every change
	// (Deleted set on deletion) until ctx ends; then the channel closes.
	Watch(ctx context.Context, key string) (<-chan KVEntry, error)
	Ping(ctx context.Context) error
	Close() error
}
