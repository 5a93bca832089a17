package pathstats

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Key identifies one hourly row.
type Key struct {
	Hour    int64  `json:"h"` // HourBucket, unix seconds
	Path    string `json:"p"`
	ProxyID string `json:"x,omitempty"`
}

// Compare orders keys hour first, then path, then proxyId: the primary-key
// order of the hourly table, so sorted upserts touch pages in order.
func (k Key) Compare(o Key) int {
	if c := cmp.Compare(k.Hour, o.Hour); c != 0 {
		return c
	}
	if c := strings.Compare(k.Path, o.Path); c != 0 {
		return c
	}
	return strings.Compare(k.ProxyID, o.ProxyID)
}

// Delta is a counter increment for one hourly row.
type Delta struct {
	Key
	Counts
}

// Batch is the unit published to the queue and applied to SQL exactly once:
// its ID goes into the ledger in the same transaction as its deltas.
type Batch struct {
	ID        string  `json:"id"`
	Node      string  `json:"node,omitempty"`
	CreatedMs int64   `json:"created,omitempty"` // unix ms when the batch was built
	Deltas    []Delta `json:"deltas"`
}

// BatchObserver is told of every batch the queue accepted, once, after the
// acceptance (the legacy system's dual write). ObserveBatch must not block;
// it may keep the batch, which the caller no longer modifies.
type BatchObserver interface {
	ObserveBatch(b *Batch)
}

// Events is the number of events the batch carries.
func (b *Batch) Events() int64 {
	var n int64
	for i := range b.Deltas {
		n += b.Deltas[i].Requests()
	}
	return n
}

// MaxBatchBytes bounds an encoded batch so it fits a NATS message with the
// server's default 1 MiB max_payload, headers included.
const MaxBatchBytes = 900 * 1024

// MaxDeltasPerBatch bounds the deltas of one batch so that, with paths up to
// MaxPathLength, the encoding stays below MaxBatchBytes.
const MaxDeltasPerBatch = 500

// SortDeltas sorts deltas in key order.
func SortDeltas(ds []Delta) {
	slices.SortFunc(ds, func(a, b Delta) int { return a.Key.Compare(b.Key) })
}

// SplitBatches sorts deltas and cuts them into batches of at most
// MaxDeltasPerBatch, with ids derived deterministically from baseID, so a
// retried request produces the same ids and is deduplicated.
func SplitBatches(baseID, node string, deltas []Delta) []*Batch {
	SortDeltas(deltas)
	var out []*Batch
	for i := 0; i < len(deltas); i += MaxDeltasPerBatch {
		end := min(i+MaxDeltasPerBatch, len(deltas))
		id := baseID
		if len(deltas) > MaxDeltasPerBatch {
			id = fmt.Sprintf("%s#%d", baseID, i/MaxDeltasPerBatch)
		}
		out = append(out, &Batch{ID: id, Node: node, Deltas: deltas[i:end:end]})
	}
	return out
}

// MergeDeltas sums the deltas of batches per key and returns them sorted in
// key (primary-key) order, ready for one multi-row upsert. The batches' own
// deltas are not modified.
func MergeDeltas(batches []*Batch) []Delta {
	n := 0
	for _, b := range batches {
		n += len(b.Deltas)
	}
	all := make([]Delta, 0, n)
	for _, b := range batches {
		all = append(all, b.Deltas...)
	}
	SortDeltas(all)
	out := all[:0]
	for i := range all {
		if last := len(out) - 1; last >= 0 && out[last].Key == all[i].Key {
			out[last].Counts.Add(&all[i].Counts)
			continue
		}
		out = append(out, all[i])
	}
	return out
}
