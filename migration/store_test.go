package migration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	psnats "github.com/pathstats/pathstats/nats"
	"github.com/pathstats/pathstats/sqlite"
)

// cfgEnv is a real embedded NATS KV and a real SQLite history.
type cfgEnv struct {
	srv  *psnats.Server
	kv   *psnats.KV
	hist *sqlite.StatsStore
}

func cfgTestCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newCfgEnv(t *testing.T) *cfgEnv {
	t.Helper()
	ctx := cfgTestCtx(t)
	dir := t.TempDir()
	srv, err := psnats.StartEmbedded(ctx, psnats.EmbeddedOptions{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	hist, err := sqlite.Open(ctx, filepath.Join(dir, "pathstats.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { hist.Close() })
	return &cfgEnv{srv: srv, kv: cfgOpenKV(t, srv), hist: hist}
}

// cfgOpenKV opens the bucket on a connection of its own.
func cfgOpenKV(t *testing.T, srv *psnats.Server) *psnats.KV {
	t.Helper()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	kv, err := psnats.OpenKV(cfgTestCtx(t), nc, psnats.KVConfig{CompactInterval: -1})
	if err != nil {
		t.Fatalf("open kv: %v", err)
	}
	t.Cleanup(func() { kv.Close() })
	return kv
}

// runStore runs s until the test ends.
func runStore(t *testing.T, s *Store) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start), true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start), cond()
}

// quiet discards the store's log.
func quiet(o StoreOptions) StoreOptions {
	o.Logger = slog.New(slog.DiscardHandler)
	return o
}

func setPercent(p float64) func(*pathstats.MigrationConfig) error {
	return func(c *pathstats.MigrationConfig) error { c.NewAPIPercentage = p; return nil }
}

func TestUpdateStoresVersionsAndHistory(t *testing.T) {
	t.Parallel()
	e := newCfgEnv(t)
	ctx := cfgTestCtx(t)
	clock := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	s := NewStore(e.kv, e.hist, quiet(StoreOptions{Now: func() time.Time { return clock }}))
	if got := s.Current(); !sameConfig(got, pathstats.DefaultMigrationConfig()) {
		t.Fatalf("fresh store holds %+v", got)
	}
	c, err := s.Update(ctx, 0, "alice", "manual", "first", setPercent(12.5))
	if err != nil {
		t.Fatal(err)
	}
	want := pathstats.MigrationConfig{NewAPIPercentage: 12.5, ForceNewAPIIPs: []string{}, ForceOldAPIIPs: []string{},
		UpdatedAt: "2025-05-06T07:08:09Z", Version: 1}
	if !sameConfig(c, want) || !sameConfig(s.Current(), want) {
		t.Fatalf("update returned %+v, holds %+v; want %+v", c, s.Current(), want)
	}
	entry, err := e.kv.Get(ctx, pathstats.MigrationConfigKey)
	if err != nil {
		t.Fatal(err)
	}
	if stored, _ := decodeConfig(entry.Value); !sameConfig(stored, want) {
		t.Fatalf("stored %+v", stored)
	}
	// Stale If-Match fails and changes nothing; a matching one succeeds.
	_, err = s.Update(ctx, 7, "alice", "manual", "", setPercent(90))
	if pathstats.ErrorCode(err) != pathstats.EPreconditionFailed {
		t.Fatalf("stale if-match: %v", err)
	}
	c, err = s.Update(ctx, 1, "bob", "rollout", "step", func(c *pathstats.MigrationConfig) error {
		c.ForceOldAPIIPs = append(c.ForceOldAPIIPs, "10.9.8.7/8", "10.0.0.0/8", "::ffff:1.2.3.4")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 2 || c.NewAPIPercentage != 12.5 || !slices.Equal(c.ForceOldAPIIPs, []string{"10.0.0.0/8", "1.2.3.4"}) {
		t.Fatalf("second update %+v", c)
	}
	// A no-op stores nothing.
	if c, err = s.Update(ctx, 0, "bob", "manual", "", setPercent(12.5)); err != nil || c.Version != 2 {
		t.Fatalf("no-op update: %+v, %v", c, err)
	}
	// Invalid results are rejected before anything is stored.
	_, err = s.Update(ctx, 0, "bob", "manual", "", setPercent(100.5))
	if pathstats.ErrorCode(err) != pathstats.EInvalidPercentage {
		t.Fatalf("invalid update: %v", err)
	}
	mutErr := errors.New("mutate failed")
	if _, err = s.Update(ctx, 0, "bob", "manual", "", func(*pathstats.MigrationConfig) error { return mutErr }); !errors.Is(err, mutErr) {
		t.Fatalf("mutate error: %v", err)
	}

	changes, total, err := e.hist.ConfigChanges(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if total != 2 || len(changes) != 2 {
		t.Fatalf("history total %d, %d entries", total, len(changes))
	}
	h := changes[0]
	if h.Actor != "bob" || h.Source != "rollout" || h.Reason != "step" || !h.At.Equal(clock) ||
		h.Before.Version != 1 || h.After.Version != 2 || !sameConfig(h.Before, want) || !sameConfig(h.After, c) {
		t.Fatalf("newest history entry %+v", h)
	}
	if h := changes[1]; h.Actor != "alice" || h.Reason != "first" || h.Before.Version != 0 ||
		!sameConfig(h.Before, pathstats.DefaultMigrationConfig()) || !sameConfig(h.After, want) {
		t.Fatalf("oldest history entry %+v", h)
	}
}

func sameConfig(a, b pathstats.MigrationConfig) bool {
	return sameSettings(a, b) && a.Version == b.Version && a.UpdatedAt == b.UpdatedAt &&
		a.ForceNewAPIIPs != nil && a.ForceOldAPIIPs != nil
}

// Concurrent read-modify-writes through Update all survive: every one adds
// its own IP, and the version grows by exactly one per change.
func TestConcurrentUpdatesAllSurvive(t *testing.T) {
	t.Parallel()
	e := newCfgEnv(t)
	ctx := cfgTestCtx(t)
	// Two stores on separate connections, as on two nodes.
	stores := []*Store{NewStore(e.kv, e.hist, quiet(StoreOptions{})), NewStore(cfgOpenKV(t, e.srv), e.hist, quiet(StoreOptions{}))}
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := stores[i%2].Update(ctx, 0, fmt.Sprintf("w%d", i), "manual", "", func(c *pathstats.MigrationConfig) error {
				c.ForceNewAPIIPs = append(c.ForceNewAPIIPs, fmt.Sprintf("10.0.0.%d", i))
				return nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	c, _, err := stores[0].read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != n || len(c.ForceNewAPIIPs) != n {
		t.Fatalf("version %d with %d IPs, want %d and %d: %v", c.Version, len(c.ForceNewAPIIPs), n, n, c.ForceNewAPIIPs)
	}
	for i := range n {
		if !slices.Contains(c.ForceNewAPIIPs, fmt.Sprintf("10.0.0.%d", i)) {
			t.Errorf("IP of writer %d lost", i)
		}
	}
	changes, total, err := e.hist.ConfigChanges(ctx, 0, 100)
	if err != nil || total != n {
		t.Fatalf("history total %d, %v", total, err)
	}
	// Ids follow the order of the appends, which may differ from the
	// versions' under concurrency; each version appears once, one step on.
	slices.SortFunc(changes, func(a, b pathstats.ConfigChange) int { return int(b.After.Version) - int(a.After.Version) })
	for i, h := range changes {
		if h.After.Version != uint64(n-i) || h.Before.Version != h.After.Version-1 ||
			len(h.After.ForceNewAPIIPs) != len(h.Before.ForceNewAPIIPs)+1 {
			t.Errorf("history %d: version %d→%d, %d→%d IPs", i, h.Before.Version, h.After.Version,
				len(h.Before.ForceNewAPIIPs), len(h.After.ForceNewAPIIPs))
		}
	}
}

// A change through one store is seen by another on the same KV through its
// watch (the second store's poll interval is an hour); the time it took is
// logged, the wait only bounds a hang.
func TestPropagatesToSecondStore(t *testing.T) {
	t.Parallel()
	e := newCfgEnv(t)
	ctx := cfgTestCtx(t)
	a := NewStore(e.kv, e.hist, quiet(StoreOptions{}))
	b := NewStore(cfgOpenKV(t, e.srv), e.hist, quiet(StoreOptions{PollInterval: time.Hour}))
	notified := b.Subscribe()
	runStore(t, a)
	runStore(t, b)
	for i := 1; i <= 5; i++ {
		c, err := a.Update(ctx, 0, "admin", "manual", "", setPercent(float64(i*10)))
		if err != nil {
			t.Fatal(err)
		}
		took, ok := waitFor(time.Minute, func() bool { return b.Current().Version == c.Version })
		if !ok {
			t.Fatalf("change %d not seen by the second store after %v (holds %+v)", i, took, b.Current())
		}
		t.Logf("change %d seen by the second store after %v", i, took.Round(time.Millisecond))
		if got := b.Current().NewAPIPercentage; got != float64(i*10) {
			t.Fatalf("second store holds %v%%", got)
		}
	}
	select {
	case <-notified:
	default:
		t.Error("subscriber not notified")
	}
}

// noWatchKV is the real KV with watching broken, so Run must poll.
type noWatchKV struct{ pathstats.KV }

func (noWatchKV) Watch(context.Context, string) (<-chan pathstats.KVEntry, error) {
	return nil, fmt.Errorf("watch: %w", pathstats.ErrUnavailable)
}

func TestPollsWhenWatchFails(t *testing.T) {
	t.Parallel()
	e := newCfgEnv(t)
	ctx := cfgTestCtx(t)
	a := NewStore(e.kv, nil, quiet(StoreOptions{}))
	b := NewStore(noWatchKV{cfgOpenKV(t, e.srv)}, nil, quiet(StoreOptions{PollInterval: 200 * time.Millisecond}))
	runStore(t, b)
	c, err := a.Update(ctx, 0, "admin", "manual", "", setPercent(33.33))
	if err != nil {
		t.Fatal(err)
	}
	if took, ok := waitFor(time.Minute, func() bool { return b.Current().Version == c.Version }); !ok {
		t.Fatalf("polling store did not see the change within %v", took)
	}
}

// While KV is unreachable a node keeps its last good config; a node that
// never loaded one serves the default (0%).
func TestKeepsLastGoodConfigWhenKVDown(t *testing.T) {
	t.Parallel()
	e := newCfgEnv(t)
	ctx := cfgTestCtx(t)
	a := NewStore(e.kv, e.hist, quiet(StoreOptions{PollInterval: 100 * time.Millisecond}))
	runStore(t, a)
	other := NewStore(cfgOpenKV(t, e.srv), nil, quiet(StoreOptions{}))
	c, err := other.Update(ctx, 0, "admin", "manual", "", setPercent(42))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := waitFor(time.Minute, func() bool { return a.Current().Version == c.Version }); !ok {
		t.Fatal("config not loaded")
	}
	e.srv.Shutdown()
	fresh := NewStore(e.kv, nil, quiet(StoreOptions{PollInterval: 100 * time.Millisecond}))
	runStore(t, fresh)
	time.Sleep(600 * time.Millisecond) // several failed polls
	if got := a.Current(); got.NewAPIPercentage != 42 || got.Version != c.Version {
		t.Fatalf("store dropped its last good config: %+v", got)
	}
	if got := fresh.Current(); !sameConfig(got, pathstats.DefaultMigrationConfig()) {
		t.Fatalf("never-loaded store holds %+v, want the default", got)
	}
	if _, err := a.Update(ctx, 0, "admin", "manual", "", setPercent(1)); err == nil {
		t.Fatal("update succeeded with KV down")
	}
	if got := a.Current(); got.NewAPIPercentage != 42 {
		t.Fatalf("failed update changed the held config: %+v", got)
	}
}
