// Package kvtest is the shared test suite every pathstats.KV backend runs
// (JetStream KV embedded and external, Redis, …), so all backends agree on
// the same semantics.
package kvtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// watchWait is how long the suite waits for a watch event it expects: a
// bound on a hang, generous for a busy machine.
const watchWait = time.Minute

// Run runs the suite against the backend called name. open returns a KV for
// one case and arranges its cleanup with t.Cleanup; it may return the same
// store every time: each case uses keys unique to the run.
func Run(t *testing.T, name string, open func(t *testing.T) pathstats.KV) {
	t.Helper()
	t.Logf("kvtest: running the KV suite on backend %q", name)
	cases := []struct {
		name string
		fn   func(t *testing.T, kv pathstats.KV, k keyspace)
	}{
		{"GetMissing", testGetMissing},
		{"PutGetRoundTrip", testPutGet},
		{"LargeValue", testLargeValue},
		{"RevisionsIncrease", testRevisions},
		{"Create", testCreate},
		{"CreateRace", testCreateRace},
		{"Update", testUpdate},
		{"UpdateRace", testUpdateRace},
		{"CASCounter", testCASCounter},
		{"Delete", testDelete},
		{"UnusualKeys", testUnusualKeys},
		{"KeysPrefix", testKeysPrefix},
		{"Watch", testWatch},
		{"WatchAbsentKey", testWatchAbsent},
		{"WatchDeletedKey", testWatchDeleted},
		{"WatchClosesOnCancel", testWatchCancel},
		{"Ping", testPing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, open(t), newKeyspace())
		})
	}
}

// keyspace prefixes keys with a random id so cases never see each other's
// keys, even on a shared server.
type keyspace string

func newKeyspace() keyspace {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return keyspace("kvtest-" + hex.EncodeToString(b) + ":")
}

func (k keyspace) key(name string) string { return string(k) + name }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, kv pathstats.KV, key string, value []byte) uint64 {
	t.Helper()
	rev, err := kv.Put(ctxT(t), key, value)
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	if rev == 0 {
		t.Fatalf("put %q: revision 0", key)
	}
	return rev
}

func get(t *testing.T, kv pathstats.KV, key string) pathstats.KVEntry {
	t.Helper()
	e, err := kv.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return e
}

func del(t *testing.T, kv pathstats.KV, key string) {
	t.Helper()
	if err := kv.Delete(ctxT(t), key); err != nil {
		t.Fatalf("delete %q: %v", key, err)
	}
}

// expectValue checks key's value and, when rev != 0, its revision.
func expectValue(t *testing.T, kv pathstats.KV, key string, value []byte, rev uint64) {
	t.Helper()
	e := get(t, kv, key)
	if e.Key != key || !bytes.Equal(e.Value, value) || e.Deleted {
		t.Fatalf("get %q = {%q, %d bytes, deleted %v}, want {%q, %d bytes}", key, e.Key, len(e.Value), e.Deleted, key, len(value))
	}
	if rev != 0 && e.Revision != rev {
		t.Fatalf("get %q revision = %d, want %d", key, e.Revision, rev)
	}
}

func expectNotFound(t *testing.T, kv pathstats.KV, key string) {
	t.Helper()
	e, err := kv.Get(ctxT(t), key)
	if !errors.Is(err, pathstats.ErrNotFound) {
		t.Fatalf("get %q = (%+v, %v), want ErrNotFound", key, e, err)
	}
}

func expectConflict(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, pathstats.ErrConflict) {
		t.Fatalf("%s: err = %v, want ErrConflict", what, err)
	}
}

func watch(t *testing.T, kv pathstats.KV, ctx context.Context, key string) <-chan pathstats.KVEntry {
	t.Helper()
	ch, err := kv.Watch(ctx, key)
	if err != nil {
		t.Fatalf("watch %q: %v", key, err)
	}
	return ch
}

// next waits up to watchWait for the next watch entry.
func next(t *testing.T, ch <-chan pathstats.KVEntry) pathstats.KVEntry {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed, want an entry")
		}
		return e
	case <-time.After(watchWait):
		t.Fatalf("no watch entry within %s", watchWait)
	}
	return pathstats.KVEntry{}
}

// expectQuiet fails if an entry arrives within d.
func expectQuiet(t *testing.T, ch <-chan pathstats.KVEntry, d time.Duration) {
	t.Helper()
	select {
	case e, ok := <-ch:
		t.Fatalf("watch sent %+v (open %v), want nothing", e, ok)
	case <-time.After(d):
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
