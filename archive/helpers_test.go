package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/sqlite"
)

// testRetention is the retention of the test archivers.
const testRetention = 30 * 24 * time.Hour

// openStore opens an empty SQLite stats store (real clock) in a temp dir.
func openStore(t testing.TB) *sqlite.StatsStore {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "stats.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openFileBucket opens a file:// bucket in a temp dir.
func openFileBucket(t testing.TB) pathstats.ObjectStore {
	t.Helper()
	return openURL(t, "file://"+filepath.ToSlash(filepath.Join(t.TempDir(), "archive")))
}

// openURL opens the bucket at url, closed at cleanup.
func openURL(t testing.TB, url string) pathstats.ObjectStore {
	t.Helper()
	b, err := OpenBucket(context.Background(), url)
	if err != nil {
		t.Fatalf("open bucket %s: %v", url, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// clock is a settable clock for the archiver.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newArchiver returns an archiver on store and bucket with testRetention
// and the given clock.
func newArchiver(t testing.TB, store pathstats.ArchiveStore, bucket pathstats.ObjectStore, c *clock) *Archiver {
	t.Helper()
	a, err := New(Config{Store: store, Bucket: bucket, Retention: testRetention, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// testHours are the hours the tests fill: three before the retention
// cutoff (archived), one after it but before the rolling window, one in
// the window (both kept).
type testHours struct {
	old          []int64
	recent, live int64
}

func hoursAt(now time.Time) testHours {
	h := pathstats.HourBucket(now)
	return testHours{
		old:    []int64{h - 45*24*3600, h - 45*24*3600 + 3600, h - 40*24*3600 + 5*3600},
		recent: h - 10*24*3600,
		live:   h - 3600,
	}
}

// all returns every test hour in order.
func (th testHours) all() []int64 {
	return append(slices.Clone(th.old), th.recent, th.live)
}

// seedRows returns n rows of hour with varied counters over two proxies;
// salt varies the counters between calls.
func seedRows(hour int64, n int, salt int64) []pathstats.Delta {
	ds := make([]pathstats.Delta, n)
	for i := range ds {
		d := &ds[i]
		proxy := pathstats.DefaultProxyID
		if i%3 == 0 {
			proxy = "billing"
		}
		d.Key = pathstats.Key{Hour: hour, Path: fmt.Sprintf("/api/items/%04d", i/2), ProxyID: proxy}
		k := int64(i) + salt
		d.Status = [pathstats.NumStatusClasses]int64{k % 2, 5 + k%11, k % 3, k % 5, k % 4}
		for j := range d.Latency {
			if j == int(k)%pathstats.NumLatencyBuckets {
				d.Latency[j] = d.Requests()
			}
		}
		d.LastSeenMs = hour*1000 + 1000*(k%3600)
	}
	return ds
}

// apply applies deltas as one batch.
func apply(t testing.TB, s *sqlite.StatsStore, id string, ds []pathstats.Delta) {
	t.Helper()
	if _, err := s.Apply(context.Background(), []*pathstats.Batch{{ID: id, Deltas: ds}}, nil); err != nil {
		t.Fatalf("apply %s: %v", id, err)
	}
}

// seed fills every test hour with rowsPerHour rows.
func seed(t testing.TB, s *sqlite.StatsStore, th testHours, rowsPerHour int) {
	t.Helper()
	for i, h := range th.all() {
		apply(t, s, fmt.Sprintf("seed-%d", h), seedRows(h, rowsPerHour, int64(i)))
	}
}

// snapshot returns the rows of each hour.
func snapshot(t testing.TB, s pathstats.ArchiveStore, hours []int64) map[int64][]pathstats.HourlyRow {
	t.Helper()
	out := make(map[int64][]pathstats.HourlyRow)
	for _, h := range hours {
		rows, err := s.HourRows(context.Background(), h)
		if err != nil {
			t.Fatalf("hour rows %d: %v", h, err)
		}
		out[h] = rows
	}
	return out
}

// sameCounts reports the first difference between two hours' rows in keys
// and counters (UpdatedAt is the store's clock at the last write).
func sameCounts(got, want []pathstats.HourlyRow) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Key != want[i].Key || got[i].Counts != want[i].Counts {
			return fmt.Errorf("row %d = %+v %+v, want %+v %+v", i, got[i].Key, got[i].Counts, want[i].Key, want[i].Counts)
		}
	}
	return nil
}

// checkHours fails unless each hour's rows match want in keys and counters.
func checkHours(t testing.TB, s pathstats.ArchiveStore, want map[int64][]pathstats.HourlyRow) {
	t.Helper()
	for h, rows := range want {
		got, err := s.HourRows(context.Background(), h)
		if err != nil {
			t.Fatalf("hour rows %d: %v", h, err)
		}
		if err := sameCounts(got, rows); err != nil {
			t.Fatalf("hour %s: %v", hourDir(h), err)
		}
	}
}

// sumRows totals rows.
func sumRows(rows []pathstats.HourlyRow) HourInfo {
	t := totalsOf(rows)
	return HourInfo{Rows: t.Rows, Requests: t.Requests, Errors: t.Errors}
}

// keys lists the object keys under prefix.
func keys(t testing.TB, b pathstats.ObjectStore, prefix string) []string {
	t.Helper()
	objs, err := b.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

// checkConsistent fails unless the bucket holds no intents and exactly the
// part objects its manifests list.
func checkConsistent(t testing.TB, a *Archiver) {
	t.Helper()
	b := a.cfg.Bucket
	if p := keys(t, b, pendingPrefix); len(p) != 0 {
		t.Fatalf("intents left: %v", p)
	}
	var listed []string
	for _, mk := range keys(t, b, manifestsPrefix) {
		hour, ok := parseHourKey(manifestsPrefix, mk)
		if !ok {
			t.Fatalf("stray key %s", mk)
		}
		m, err := readManifest(context.Background(), b, hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Parts {
			listed = append(listed, p.Key)
		}
	}
	slices.Sort(listed)
	if got := keys(t, b, partsPrefix); !slices.Equal(got, listed) {
		t.Fatalf("part objects %v, manifests list %v", got, listed)
	}
}

// errInjected is the failure faultyStore injects.
var errInjected = errors.New("injected failure")

// faultyStore wraps a bucket and fails (or runs a hook on) chosen calls.
// fail returns true for the call (op "put", "get", "list", "delete" and
// key) that must fail; once set, it fails only the first matching call.
type faultyStore struct {
	pathstats.ObjectStore
	mu    sync.Mutex
	fail  func(op, key string) bool
	after func(op, key string) // runs after a successful call
	hit   int
}

func (f *faultyStore) check(op, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil && f.fail(op, key) {
		f.fail = nil
		f.hit++
		return fmt.Errorf("%s %s: %w", op, key, errInjected)
	}
	return nil
}

func (f *faultyStore) done(op, key string) {
	f.mu.Lock()
	hook := f.after
	f.mu.Unlock()
	if hook != nil {
		hook(op, key)
	}
}

func (f *faultyStore) Put(ctx context.Context, key string, data []byte) error {
	if err := f.check("put", key); err != nil {
		return err
	}
	err := f.ObjectStore.Put(ctx, key, data)
	if err == nil {
		f.done("put", key)
	}
	return err
}

func (f *faultyStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := f.check("get", key); err != nil {
		return nil, err
	}
	return f.ObjectStore.Get(ctx, key)
}

func (f *faultyStore) Delete(ctx context.Context, key string) error {
	if err := f.check("delete", key); err != nil {
		return err
	}
	err := f.ObjectStore.Delete(ctx, key)
	if err == nil {
		f.done("delete", key)
	}
	return err
}

// on returns a fail function matching op on keys with prefix.
func on(op, prefix string) func(string, string) bool {
	return func(o, key string) bool { return o == op && strings.HasPrefix(key, prefix) }
}
