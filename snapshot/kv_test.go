package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/lease"
	"github.com/pathstats/pathstats/nats"
)

// testKV starts an embedded NATS server and opens a KV bucket on it.
func testKV(t testing.TB) (*nats.KV, *nats.Server) {
	t.Helper()
	ctx := testCtx(t)
	srv, err := nats.StartEmbedded(ctx, nats.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	kv, err := nats.OpenKV(ctx, nc, nats.KVConfig{Bucket: "snapshot-test", CompactInterval: -1})
	if err != nil {
		t.Fatalf("open kv: %v", err)
	}
	t.Cleanup(func() { _ = kv.Close() })
	return kv, srv
}

func newTestWriter(kv pathstats.KV, src pathstats.WindowReader, holder string, chunk int) *Writer {
	return NewWriter(kv, src, WriterOptions{Holder: holder, ChunkSize: chunk, LeaseTTL: 10 * time.Second})
}

func mustBuild(t *testing.T, w *Writer) Config {
	t.Helper()
	cfg, err := w.Build(testCtx(t))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return cfg
}

func mustLoad(t *testing.T, r *Reader) *View {
	t.Helper()
	v, err := r.Load(testCtx(t))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return v
}

func assertItems(t *testing.T, v *View, want []pathstats.PathItem) {
	t.Helper()
	if v.Len() != len(want) {
		t.Fatalf("view has %d items, want %d", v.Len(), len(want))
	}
	for i := range want {
		if v.items[i] != want[i] {
			t.Fatalf("item %d = %+v, want %+v", i, v.items[i], want[i])
		}
	}
}

func TestRoundTripKV(t *testing.T) {
	for _, tc := range []struct {
		name  string
		items []pathstats.PathItem
	}{
		{"random10k", randomItems(rand.New(rand.NewPCG(1, 1)), 10_000)},
		{"realistic200k", realisticItems(200_000)},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv, _ := testKV(t)
			cfg := mustBuild(t, newTestWriter(kv, newWindow(tc.items), "a", 0))
			if cfg.Version != 1 || cfg.PathCount != len(tc.items) || cfg.WindowStartHour != testWindowStart {
				t.Fatalf("config %+v", cfg)
			}
			if tc.name == "realistic200k" && cfg.Chunks < 2 {
				t.Fatalf("200k paths in %d chunk(s) of %d bytes: chunking not exercised", cfg.Chunks, cfg.Bytes)
			}
			v := mustLoad(t, NewReader(kv, ReaderOptions{}))
			assertItems(t, v, tc.items)
			if v.Config != cfg {
				t.Fatalf("view config %+v, want %+v", v.Config, cfg)
			}
			t.Logf("%d paths: %d bytes in %d chunks", cfg.PathCount, cfg.Bytes, cfg.Chunks)
		})
	}
}

func TestConfigFormat(t *testing.T) {
	kv, _ := testKV(t)
	items := realisticItems(500)
	mustBuild(t, newTestWriter(kv, newWindow(items), "a", 1000))
	e, err := kv.Get(testCtx(t), ConfigKey)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Value, &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"version", "timestamp", "pathCount", "checksum", "chunks", "bytes", "windowStartHour"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("config lacks %q: %s", f, e.Value)
		}
	}
	if _, err := time.Parse(time.RFC3339, raw["timestamp"].(string)); err != nil {
		t.Errorf("timestamp: %v", err)
	}
	if !strings.HasPrefix(raw["checksum"].(string), "sha256:") || len(raw["checksum"].(string)) != 7+64 {
		t.Errorf("checksum %v", raw["checksum"])
	}
	chunks := int(raw["chunks"].(float64))
	for i := range chunks {
		c, err := kv.Get(testCtx(t), chunkKey(1, i))
		if err != nil || len(c.Value) > 1000 {
			t.Fatalf("chunk %d: %v, %d bytes", i, err, len(c.Value))
		}
	}
}

func TestReaderDecodesOnce(t *testing.T) {
	kv, _ := testKV(t)
	w := newTestWriter(kv, newWindow(realisticItems(20_000)), "a", 0)
	mustBuild(t, w)
	r := NewReader(kv, ReaderOptions{})
	var wg sync.WaitGroup
	views := make([]*View, 16)
	for i := range views {
		wg.Go(func() {
			v, err := r.Load(testCtx(t))
			if err != nil {
				t.Errorf("load: %v", err)
			}
			views[i] = v
		})
	}
	wg.Wait()
	for _, v := range views {
		if v != views[0] {
			t.Fatal("concurrent loads of one version decoded it more than once")
		}
	}
	if again := mustLoad(t, r); again != views[0] || r.Current() != views[0] {
		t.Fatal("unchanged version decoded again")
	}
	mustBuild(t, w)
	v2 := mustLoad(t, r)
	if v2 == views[0] || v2.Config.Version != 2 || r.Current() != v2 {
		t.Fatalf("new version not swapped in: %+v", v2.Config)
	}
}

func TestReaderFaults(t *testing.T) {
	items := realisticItems(3000)
	setup := func(t *testing.T) (pathstats.KV, Config, *Reader) {
		kv, _ := testKV(t)
		cfg := mustBuild(t, newTestWriter(kv, newWindow(items), "a", 4096))
		if cfg.Chunks < 3 {
			t.Fatalf("want several chunks, got %d", cfg.Chunks)
		}
		return kv, cfg, NewReader(kv, ReaderOptions{})
	}
	ctx := testCtx(t)
	t.Run("no config", func(t *testing.T) {
		kv, _, r := setup(t)
		mustLoad(t, r)
		if err := kv.Delete(ctx, ConfigKey); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Load(ctx); !errors.Is(err, ErrNoConfig) {
			t.Fatalf("err = %v, want ErrNoConfig", err)
		}
		if r.Current() == nil {
			t.Fatal("held view dropped on error")
		}
	})
	t.Run("chunk missing", func(t *testing.T) {
		kv, cfg, r := setup(t)
		if err := kv.Delete(ctx, chunkKey(cfg.Version, 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Load(ctx); !errors.Is(err, ErrPayloadMissing) {
			t.Fatalf("err = %v, want ErrPayloadMissing", err)
		}
	})
	t.Run("garbage chunk", func(t *testing.T) {
		kv, cfg, r := setup(t)
		e, _ := kv.Get(ctx, chunkKey(cfg.Version, 1))
		garbage := make([]byte, len(e.Value))
		for i := range garbage {
			garbage[i] = byte(i * 7)
		}
		if _, err := kv.Put(ctx, chunkKey(cfg.Version, 1), garbage); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Load(ctx); !errors.Is(err, ErrChecksum) {
			t.Fatalf("err = %v, want ErrChecksum", err)
		}
	})
	t.Run("truncated chunk", func(t *testing.T) {
		kv, cfg, r := setup(t)
		e, _ := kv.Get(ctx, chunkKey(cfg.Version, cfg.Chunks-1))
		if _, err := kv.Put(ctx, chunkKey(cfg.Version, cfg.Chunks-1), e.Value[:len(e.Value)/2]); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Load(ctx); !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrDecode) {
			t.Fatalf("err = %v, want ErrChecksum or ErrDecode", err)
		}
	})
	t.Run("corrupt config", func(t *testing.T) {
		kv, _, r := setup(t)
		if _, err := kv.Put(ctx, ConfigKey, []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Load(ctx); !errors.Is(err, ErrDecode) {
			t.Fatalf("err = %v, want ErrDecode", err)
		}
	})
	t.Run("kv down", func(t *testing.T) {
		kv, srv := testKV(t)
		mustBuild(t, newTestWriter(kv, newWindow(items), "a", 0))
		r := NewReader(kv, ReaderOptions{})
		mustLoad(t, r)
		srv.Shutdown()
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := r.Load(tctx); !errors.Is(err, pathstats.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if r.Current() == nil {
			t.Fatal("held view dropped while KV is down")
		}
	})
}

// TestReadersNeverSeeMissingPayload reads while another goroutine builds
// version after version: every Load returns exactly the dataset of its
// version, and a payload may be missing only for a reader two versions
// behind (its chunks were deleted by design).
func TestReadersNeverSeeMissingPayload(t *testing.T) {
	kv, _ := testKV(t)
	r := rand.New(rand.NewPCG(9, 9))
	datasets := make([][]pathstats.PathItem, 15)
	for i := range datasets {
		datasets[i] = randomItems(r, 200+r.IntN(800))
	}
	w := newTestWriter(kv, newWindow(datasets...), "a", 2048)
	ctx := testCtx(t)
	done := make(chan struct{})
	var loads, behind int
	var wg sync.WaitGroup
	wg.Go(func() {
		rd := NewReader(kv, ReaderOptions{})
		for {
			select {
			case <-done:
				return
			default:
			}
			before, _ := rd.readConfig(ctx)
			v, err := rd.Load(ctx)
			switch {
			case errors.Is(err, ErrNoConfig):
			case errors.Is(err, ErrPayloadMissing):
				after, _ := rd.readConfig(ctx)
				if after.Version < before.Version+2 {
					t.Errorf("payload missing with config at v%d (read v%d before): %v", after.Version, before.Version, err)
				}
				behind++
			case err != nil:
				t.Errorf("load: %v", err)
			default:
				loads++
				want := datasets[v.Config.Version-1]
				if v.Len() != len(want) || v.items[0] != want[0] || v.items[len(want)-1] != want[len(want)-1] {
					t.Errorf("v%d holds another version's data", v.Config.Version)
				}
			}
		}
	})
	for range datasets {
		mustBuild(t, w)
	}
	close(done)
	wg.Wait()
	if loads < 5 {
		t.Fatalf("only %d successful loads during %d builds", loads, len(datasets))
	}
	t.Logf("%d loads, %d too far behind", loads, behind)
}

func TestOldVersionsDeleted(t *testing.T) {
	kv, _ := testKV(t)
	ctx := testCtx(t)
	w := newTestWriter(kv, newWindow(realisticItems(2000)), "a", 4096)
	mustBuild(t, w)
	// A crashed build left chunks of v2 without a config pointing at them.
	if _, err := kv.Put(ctx, chunkKey(2, 0), []byte("leftover")); err != nil {
		t.Fatal(err)
	}
	cfg := mustBuild(t, w)
	if cfg.Version != 3 {
		t.Fatalf("version %d, want 3 (v2's keys are never reused)", cfg.Version)
	}
	assertVersions(t, kv, 1, 3)
	var older, prev Config
	for range 3 {
		older, prev = prev, cfg
		cfg = mustBuild(t, w)
	}
	assertVersions(t, kv, prev.Version, cfg.Version)
	// A reader that read the previous config can still load its payload;
	// the one before is gone.
	r := NewReader(kv, ReaderOptions{})
	if v, err := r.fetch(ctx, prev); err != nil || v.Len() != 2000 {
		t.Fatalf("previous version v%d: %v", prev.Version, err)
	}
	if _, err := r.fetch(ctx, older); !errors.Is(err, ErrPayloadMissing) {
		t.Fatalf("version v%d: err = %v, want ErrPayloadMissing", older.Version, err)
	}
}

func assertVersions(t *testing.T, kv pathstats.KV, want ...uint64) {
	t.Helper()
	keys, err := kv.Keys(testCtx(t), chunkPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, k := range keys {
		if v, ok := chunkVersion(k); ok && !slices.Contains(got, v) {
			got = append(got, v)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("chunk versions in KV %v, want %v", got, want)
	}
}

func TestOneWriterAtATime(t *testing.T) {
	kv, _ := testKV(t)
	ctx := testCtx(t)
	items := realisticItems(1000)
	a := newTestWriter(kv, newWindow(items), "a", 0)
	b := newTestWriter(kv, newWindow(items), "b", 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[string]int{}
	for range 5 {
		for name, w := range map[string]*Writer{"a": a, "b": b} {
			wg.Go(func() {
				_, err := w.Build(ctx)
				switch {
				case err == nil:
					mu.Lock()
					wins[name]++
					mu.Unlock()
				case !errors.Is(err, ErrBusy):
					t.Errorf("%s: %v", name, err)
				}
			})
		}
		wg.Wait()
	}
	if len(wins) != 1 || wins["a"]+wins["b"] != 5 {
		t.Fatalf("wins %v: want one writer winning every round", wins)
	}
	winner, loser := a, b
	if wins["b"] > 0 {
		winner, loser = b, a
	}
	if _, err := loser.Build(ctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("second writer: err = %v, want ErrBusy", err)
	}
	if err := winner.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if cfg, err := loser.Build(ctx); err != nil || cfg.Version != 6 {
		t.Fatalf("after release: %+v, %v; want version 6", cfg, err)
	}
}

// TestConcurrentWritersWithoutLease simulates a split brain (two writers
// that both believe they hold the lease): the config compare-and-set and
// create-only chunks still keep every published config consistent with
// its payload.
func TestConcurrentWritersWithoutLease(t *testing.T) {
	kv, _ := testKV(t)
	ctx := testCtx(t)
	r := rand.New(rand.NewPCG(4, 4))
	ds := [][]pathstats.PathItem{randomItems(r, 700), randomItems(r, 900)}
	a := newTestWriter(kv, newWindow(ds[0]), "a", 2048)
	b := newTestWriter(kv, newWindow(ds[1]), "b", 2048)
	b.lease = lease.New(kv, "other-lease", "b", time.Minute)
	var wg sync.WaitGroup
	for _, w := range []*Writer{a, b} {
		wg.Go(func() {
			for range 6 {
				if _, err := w.Build(ctx); err != nil && !errors.Is(err, ErrBusy) {
					t.Errorf("build: %v", err)
				}
				rd := NewReader(kv, ReaderOptions{})
				v, err := rd.Load(ctx)
				if err != nil && !errors.Is(err, ErrPayloadMissing) && !errors.Is(err, ErrNoConfig) {
					t.Errorf("load: %v", err)
				}
				if err == nil && v.Len() != len(ds[0]) && v.Len() != len(ds[1]) {
					t.Errorf("view of %d items", v.Len())
				}
			}
		})
	}
	wg.Wait()
	mustLoad(t, NewReader(kv, ReaderOptions{}))
}

func TestTriggerCoalesces(t *testing.T) {
	kv, _ := testKV(t)
	src := newWindow(realisticItems(100))
	src.gate = make(chan struct{})
	w := newTestWriter(kv, src, "a", 0)
	ctx, cancel := context.WithCancel(testCtx(t))
	runDone := make(chan error, 1)
	go func() { runDone <- w.Run(ctx, time.Hour) }()

	waitFor(t, func() bool { return src.calls.Load() == 1 }) // first build, blocked
	for range 100 {
		w.Trigger()
	}
	src.gate <- struct{}{} // finish the first build
	src.gate <- struct{}{} // the one coalesced build
	waitFor(t, func() bool { return buildCount(w, resultOK) == 2 })
	time.Sleep(100 * time.Millisecond)
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("%d builds for 100 triggers during a build, want 2 in all", n)
	}
	// 100 triggers while idle: the first starts a build, the rest coalesce.
	for range 100 {
		w.Trigger()
	}
	// The first build must come (within a minute); a second may follow.
	released := 0
	select {
	case src.gate <- struct{}{}:
		released++
	case <-time.After(time.Minute):
	}
	for done := released == 0; !done; {
		select {
		case src.gate <- struct{}{}:
			released++
		case <-time.After(300 * time.Millisecond):
			done = true
		}
	}
	if released < 1 || released > 2 {
		t.Fatalf("%d builds for 100 triggers while idle, want 1 or 2", released)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := kv.Get(testCtx(t), "lease:"+leaseName); err != nil {
		t.Fatalf("lease record: %v", err)
	}
	// Run released the lease: another writer can build at once.
	if _, err := newTestWriter(kv, newWindow(realisticItems(10)), "b", 0).Build(testCtx(t)); err != nil {
		t.Fatalf("build after Run ended: %v", err)
	}
}

func buildCount(w *Writer, result string) int {
	return int(metricValue(w.metrics.builds.WithLabelValues(result)))
}

func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 1m")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunBuildsOnInterval(t *testing.T) {
	kv, _ := testKV(t)
	w := newTestWriter(kv, newWindow(realisticItems(100)), "a", 0)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go func() { _ = w.Run(ctx, 50*time.Millisecond) }()
	waitFor(t, func() bool { return buildCount(w, resultOK) >= 3 })
	cancel()
}

func TestMetrics(t *testing.T) {
	kv, _ := testKV(t)
	reg := prometheus.NewRegistry()
	w := NewWriter(kv, newWindow(realisticItems(1234)), WriterOptions{Holder: "a", Registerer: reg})
	cfg := mustBuild(t, w)
	if n := buildCount(w, resultOK); n != 1 {
		t.Fatalf("builds ok = %d", n)
	}
	if got := metricValue(w.metrics.paths); got != 1234 {
		t.Fatalf("paths gauge %v", got)
	}
	if got := metricValue(w.metrics.bytes); got != float64(cfg.Bytes) {
		t.Fatalf("bytes gauge %v", got)
	}
	if got := metricValue(w.metrics.version); got != 1 {
		t.Fatalf("version gauge %v", got)
	}
	b := NewWriter(kv, newWindow(nil), WriterOptions{Holder: "b"})
	if _, err := b.Build(testCtx(t)); !errors.Is(err, ErrBusy) || buildCount(b, resultBusy) != 1 {
		t.Fatalf("busy build: %v, counted %d", err, buildCount(b, resultBusy))
	}
	families, err := reg.Gather()
	if err != nil || len(families) != 5 {
		t.Fatalf("gathered %d metric families: %v", len(families), err)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "pathstats_snapshot_") {
			t.Errorf("metric %s", f.GetName())
		}
	}
}

func TestLatestKey(t *testing.T) {
	kv, _ := testKV(t)
	items := realisticItems(10_000)
	mustBuild(t, newTestWriter(kv, newWindow(items), "a", 0))
	e, err := kv.Get(testCtx(t), LatestKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Value) > pathstats.MaxKVValue {
		t.Fatalf("snapshot:latest is %d bytes", len(e.Value))
	}
	var latest []struct {
		Path        string `json:"path"`
		Requests    int64  `json:"requests"`
		Errors      int64  `json:"errors"`
		LastUpdated string `json:"last_updated"`
	}
	if err := json.Unmarshal(e.Value, &latest); err != nil {
		t.Fatalf("snapshot:latest is not the plan's JSON array: %v", err)
	}
	if len(latest) < 1000 || len(latest) >= len(items) {
		t.Fatalf("snapshot:latest holds %d entries", len(latest))
	}
	for i, l := range latest {
		it := items[i]
		ts, err := time.Parse(time.RFC3339, l.LastUpdated)
		if err != nil || l.Path != it.Path || l.Requests != it.Requests || l.Errors != it.Errors || ts.UnixMilli() != it.LastAccessedMs {
			t.Fatalf("entry %d = %+v (%v), want top item %+v", i, l, err, it)
		}
	}
	t.Logf("snapshot:latest: top %d of %d paths in %d bytes", len(latest), len(items), len(e.Value))
}
