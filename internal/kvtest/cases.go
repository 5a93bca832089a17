package kvtest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func testGetMissing(t *testing.T, kv pathstats.KV, k keyspace) {
	expectNotFound(t, kv, k.key("missing"))
	expectNotFound(t, kv, k.key("snapshot:config"))
}

func testPutGet(t *testing.T, kv pathstats.KV, k keyspace) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	values := map[string][]byte{
		"binary":          binary,
		"empty":           {},
		"text":            []byte(`{"version":12}`),
		"snapshot:config": []byte("config"),
	}
	revs := map[string]uint64{}
	for name, v := range values {
		revs[name] = put(t, kv, k.key(name), v)
	}
	for name, v := range values {
		expectValue(t, kv, k.key(name), v, revs[name])
	}
	if e := get(t, kv, k.key("empty")); len(e.Value) != 0 {
		t.Fatalf("empty value read back as %d bytes", len(e.Value))
	}
}

func testLargeValue(t *testing.T, kv pathstats.KV, k keyspace) {
	big := randomBytes(pathstats.MaxKVValue)
	rev := put(t, kv, k.key("snapshot:v1:chunk:0"), big)
	expectValue(t, kv, k.key("snapshot:v1:chunk:0"), big, rev)
	big2 := randomBytes(pathstats.MaxKVValue)
	rev2, err := kv.Update(ctxT(t), k.key("snapshot:v1:chunk:0"), big2, rev)
	if err != nil {
		t.Fatalf("update with %d bytes: %v", len(big2), err)
	}
	expectValue(t, kv, k.key("snapshot:v1:chunk:0"), big2, rev2)
}

func testRevisions(t *testing.T, kv pathstats.KV, k keyspace) {
	key := k.key("rev")
	var last uint64
	for i := range 5 {
		rev := put(t, kv, key, []byte(strconv.Itoa(i)))
		if rev <= last {
			t.Fatalf("put %d: revision %d, not above %d", i, rev, last)
		}
		last = rev
		put(t, kv, k.key("other"), []byte("x")) // other keys may share the counter
	}
	expectValue(t, kv, key, []byte("4"), last)
	del(t, kv, key)
	rev := put(t, kv, key, []byte("again"))
	if rev <= last {
		t.Fatalf("put after delete: revision %d, not above %d", rev, last)
	}
}

func testCreate(t *testing.T, kv pathstats.KV, k keyspace) {
	ctx, key := ctxT(t), k.key("lease:snapshotter")
	rev, err := kv.Create(ctx, key, []byte("first"))
	if err != nil || rev == 0 {
		t.Fatalf("create = (%d, %v), want a revision", rev, err)
	}
	_, err = kv.Create(ctx, key, []byte("second"))
	expectConflict(t, "create on existing key", err)
	expectValue(t, kv, key, []byte("first"), rev)

	del(t, kv, key)
	rev2, err := kv.Create(ctx, key, []byte("third"))
	if err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	if rev2 <= rev {
		t.Fatalf("create after delete: revision %d, not above %d", rev2, rev)
	}
	expectValue(t, kv, key, []byte("third"), rev2)
	_, err = kv.Create(ctx, key, []byte("fourth"))
	expectConflict(t, "create on re-created key", err)
}

// testCreateRace: of concurrent creators exactly one wins, on a new key and
// on a deleted one.
func testCreateRace(t *testing.T, kv pathstats.KV, k keyspace) {
	key := k.key("race:create")
	for round := range 2 {
		if round == 1 {
			del(t, kv, key)
		}
		won := race(t, 8, func(i int) error {
			_, err := kv.Create(ctxT(t), key, []byte(strconv.Itoa(i)))
			return err
		})
		if len(won) != 1 {
			t.Fatalf("round %d: %d creators won, want exactly 1", round, len(won))
		}
		expectValue(t, kv, key, []byte(strconv.Itoa(won[0])), 0)
	}
}

func testUpdate(t *testing.T, kv pathstats.KV, k keyspace) {
	ctx, key := ctxT(t), k.key("migration:paths-api-config")
	rev := put(t, kv, key, []byte("v1"))
	rev2, err := kv.Update(ctx, key, []byte("v2"), rev)
	if err != nil {
		t.Fatalf("update with current revision: %v", err)
	}
	if rev2 <= rev {
		t.Fatalf("update: revision %d, not above %d", rev2, rev)
	}
	_, err = kv.Update(ctx, key, []byte("stale"), rev)
	expectConflict(t, "update with stale revision", err)
	_, err = kv.Update(ctx, key, []byte("future"), rev2+1000)
	expectConflict(t, "update with unknown revision", err)
	expectValue(t, kv, key, []byte("v2"), rev2)

	_, err = kv.Update(ctx, k.key("absent"), []byte("x"), rev2)
	expectConflict(t, "update of an absent key", err)
}

// testUpdateRace: of concurrent updates from one revision exactly one wins.
func testUpdateRace(t *testing.T, kv pathstats.KV, k keyspace) {
	key := k.key("race:update")
	rev := put(t, kv, key, []byte("start"))
	won := race(t, 8, func(i int) error {
		_, err := kv.Update(ctxT(t), key, []byte(strconv.Itoa(i)), rev)
		return err
	})
	if len(won) != 1 {
		t.Fatalf("%d updaters won, want exactly 1", len(won))
	}
	expectValue(t, kv, key, []byte(strconv.Itoa(won[0])), 0)
}

// race runs fn(0..n-1) at once and returns who succeeded; any error other
// than ErrConflict fails the test.
func race(t *testing.T, n int, fn func(i int) error) []int {
	t.Helper()
	var (
		mu    sync.Mutex
		won   []int
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			err := fn(i)
			switch {
			case err == nil:
				mu.Lock()
				won = append(won, i)
				mu.Unlock()
			case !errors.Is(err, pathstats.ErrConflict):
				t.Errorf("contender %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	return won
}

// testCASCounter: two goroutines increment one counter 50 times each with
// compare-and-set, retrying on conflict; no increment is lost.
func testCASCounter(t *testing.T, kv pathstats.KV, k keyspace) {
	key := k.key("counter")
	if _, err := kv.Create(ctxT(t), key, []byte("0")); err != nil {
		t.Fatalf("create counter: %v", err)
	}
	var wg sync.WaitGroup
	var conflicts sync.Map
	for g := range 2 {
		wg.Go(func() {
			n, err := increment(t, kv, key, 50)
			conflicts.Store(g, n)
			if err != nil {
				t.Errorf("goroutine %d: %v", g, err)
			}
		})
	}
	wg.Wait()
	expectValue(t, kv, key, []byte("100"), 0)
	c0, _ := conflicts.Load(0)
	c1, _ := conflicts.Load(1)
	t.Logf("conflicts retried: %v + %v", c0, c1)
}

// increment adds 1 to the counter n times and returns the conflicts seen.
func increment(t *testing.T, kv pathstats.KV, key string, n int) (int, error) {
	ctx, conflicts := ctxT(t), 0
	for done := 0; done < n; {
		e, err := kv.Get(ctx, key)
		if err != nil {
			return conflicts, err
		}
		v, err := strconv.Atoi(string(e.Value))
		if err != nil {
			return conflicts, err
		}
		_, err = kv.Update(ctx, key, []byte(strconv.Itoa(v+1)), e.Revision)
		switch {
		case err == nil:
			done++
		case errors.Is(err, pathstats.ErrConflict):
			if conflicts++; conflicts > 10000 {
				return conflicts, err
			}
		default:
			return conflicts, err
		}
	}
	return conflicts, nil
}

func testDelete(t *testing.T, kv pathstats.KV, k keyspace) {
	key := k.key("snapshot:v12:chunk:0")
	put(t, kv, key, []byte("chunk"))
	del(t, kv, key)
	expectNotFound(t, kv, key)
	del(t, kv, key) // deleting again
	expectNotFound(t, kv, key)
	del(t, kv, k.key("never-written"))
	expectNotFound(t, kv, k.key("never-written"))
	rev := put(t, kv, key, []byte("back"))
	expectValue(t, kv, key, []byte("back"), rev)
}

// unusualKeys are keys with characters some backends must encode.
var unusualKeys = []string{
	"a:b", "a::b", "a:::b", "trailing:", "dots.in.key", "mixed:a.b:c", ".", "..", ":",
	"=", "=3A", "eq=sign", "star*", "gt>", "space key", "tab\tkey", "slash/x",
	"percent%20", "unicode-ü-路径", "$dollar", "#hash", "back\\slash", "quote\"'",
}

func testUnusualKeys(t *testing.T, kv pathstats.KV, k keyspace) {
	for i, name := range unusualKeys {
		put(t, kv, k.key(name), []byte(strconv.Itoa(i)))
	}
	for i, name := range unusualKeys {
		expectValue(t, kv, k.key(name), []byte(strconv.Itoa(i)), 0)
	}
	got, err := kv.Keys(ctxT(t), string(k))
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	want := make([]string, len(unusualKeys))
	for i, name := range unusualKeys {
		want[i] = k.key(name)
	}
	expectKeys(t, string(k), got, want)
}

func testKeysPrefix(t *testing.T, kv pathstats.KV, k keyspace) {
	present := []string{
		"snapshot:config", "snapshot:latest", "snapshot:v12:chunk:0", "snapshot:v12:chunk:1",
		"snapshot:v12.5:meta", "snapshot:v1:chunk:0", "snapshot:", "snapshotx", "snap", "migration:paths-api-config",
	}
	for _, name := range present {
		put(t, kv, k.key(name), []byte(name))
	}
	put(t, kv, k.key("snapshot:v12:chunk:2"), []byte("gone"))
	del(t, kv, k.key("snapshot:v12:chunk:2"))

	cases := map[string][]string{
		"":                     present,
		"snapshot:":            {"snapshot:config", "snapshot:latest", "snapshot:v12:chunk:0", "snapshot:v12:chunk:1", "snapshot:v12.5:meta", "snapshot:v1:chunk:0", "snapshot:"},
		"snapshot":             {"snapshot:config", "snapshot:latest", "snapshot:v12:chunk:0", "snapshot:v12:chunk:1", "snapshot:v12.5:meta", "snapshot:v1:chunk:0", "snapshot:", "snapshotx"},
		"snapshot:v12:":        {"snapshot:v12:chunk:0", "snapshot:v12:chunk:1"},
		"snapshot:v12":         {"snapshot:v12:chunk:0", "snapshot:v12:chunk:1", "snapshot:v12.5:meta"},
		"snapshot:v12.":        {"snapshot:v12.5:meta"},
		"snapshot:v1":          {"snapshot:v12:chunk:0", "snapshot:v12:chunk:1", "snapshot:v12.5:meta", "snapshot:v1:chunk:0"},
		"snapshot:v12:ch":      {"snapshot:v12:chunk:0", "snapshot:v12:chunk:1"},
		"snapshot:v12:chunk:2": nil,
		"nothing:":             nil,
		"migration:":           {"migration:paths-api-config"},
	}
	for prefix, names := range cases {
		got, err := kv.Keys(ctxT(t), k.key(prefix))
		if err != nil {
			t.Fatalf("keys %q: %v", prefix, err)
		}
		want := make([]string, len(names))
		for i, name := range names {
			want[i] = k.key(name)
		}
		expectKeys(t, k.key(prefix), got, want)
	}
}

func expectKeys(t *testing.T, prefix string, got, want []string) {
	t.Helper()
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Fatalf("keys %q = %q, want %q", prefix, got, want)
	}
}

func testWatch(t *testing.T, kv pathstats.KV, k keyspace) {
	key := k.key("snapshot:config")
	rev1 := put(t, kv, key, []byte("v1"))
	ch := watch(t, kv, ctxT(t), key)
	expectEntry(t, next(t, ch), pathstats.KVEntry{Key: key, Value: []byte("v1"), Revision: rev1})

	// Keys sharing a prefix are not the watched key.
	put(t, kv, key+":sub", []byte("other"))
	put(t, kv, key+"x", []byte("other"))
	put(t, kv, k.key("snapshot"), []byte("other"))
	rev2 := put(t, kv, key, []byte("v2"))
	expectEntry(t, next(t, ch), pathstats.KVEntry{Key: key, Value: []byte("v2"), Revision: rev2})

	del(t, kv, key)
	e := next(t, ch)
	if !e.Deleted || e.Key != key || len(e.Value) != 0 || e.Revision <= rev2 {
		t.Fatalf("after delete watch sent %+v, want a Deleted entry for %q with revision above %d", e, key, rev2)
	}
	rev3 := put(t, kv, key, []byte("v3"))
	expectEntry(t, next(t, ch), pathstats.KVEntry{Key: key, Value: []byte("v3"), Revision: rev3})
	expectQuiet(t, ch, 100*time.Millisecond)
}

func testWatchAbsent(t *testing.T, kv pathstats.KV, k keyspace) {
	key := k.key("absent")
	ch := watch(t, kv, ctxT(t), key)
	expectQuiet(t, ch, 200*time.Millisecond)
	rev := put(t, kv, key, []byte("now"))
	expectEntry(t, next(t, ch), pathstats.KVEntry{Key: key, Value: []byte("now"), Revision: rev})
}

// testWatchDeletedKey: a deleted key has no current entry to send.
func testWatchDeleted(t *testing.T, kv pathstats.KV, k keyspace) {
	key := k.key("deleted")
	put(t, kv, key, []byte("old"))
	del(t, kv, key)
	ch := watch(t, kv, ctxT(t), key)
	expectQuiet(t, ch, 200*time.Millisecond)
	rev := put(t, kv, key, []byte("new"))
	expectEntry(t, next(t, ch), pathstats.KVEntry{Key: key, Value: []byte("new"), Revision: rev})
}

func testWatchCancel(t *testing.T, kv pathstats.KV, k keyspace) {
	key := k.key("cancel")
	put(t, kv, key, []byte("v"))
	ctx, cancel := context.WithCancel(ctxT(t))
	ch := watch(t, kv, ctx, key)
	next(t, ch)
	cancel()
	deadline := time.After(watchWait)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel still open %s after cancel", watchWait)
		}
	}
}

func expectEntry(t *testing.T, got, want pathstats.KVEntry) {
	t.Helper()
	if got.Key != want.Key || string(got.Value) != string(want.Value) || got.Revision != want.Revision || got.Deleted != want.Deleted {
		t.Fatalf("watch sent {%q %q rev %d deleted %v}, want {%q %q rev %d deleted %v}",
			got.Key, got.Value, got.Revision, got.Deleted, want.Key, want.Value, want.Revision, want.Deleted)
	}
}

func testPing(t *testing.T, kv pathstats.KV, _ keyspace) {
	if err := kv.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
}
