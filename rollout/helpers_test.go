package rollout

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openKV opens a KV bucket on an embedded JetStream server.
func openKV(t *testing.T) pathstats.KV {
	t.Helper()
	return testutil.MustOpenKV(t, testutil.MustStartNATS(t, 0), "rollout_test")
}

// memUpdater is a ConfigUpdater keeping the config in memory and recording
// every change.
type memUpdater struct {
	mu      sync.Mutex
	cfg     pathstats.MigrationConfig
	changes []pathstats.ConfigChange
}

func newMemUpdater() *memUpdater { return &memUpdater{cfg: pathstats.DefaultMigrationConfig()} }

func (u *memUpdater) Update(_ context.Context, ifMatch uint64, actor, source, reason string, mutate func(*pathstats.MigrationConfig) error) (pathstats.MigrationConfig, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if ifMatch > 0 && ifMatch != u.cfg.Version {
		return u.cfg, pathstats.Errorf(pathstats.EPreconditionFailed, "stale")
	}
	before := u.cfg
	next := u.cfg
	next.ForceNewAPIIPs = slices.Clone(u.cfg.ForceNewAPIIPs)
	next.ForceOldAPIIPs = slices.Clone(u.cfg.ForceOldAPIIPs)
	if err := mutate(&next); err != nil {
		return u.cfg, err
	}
	next.Version++
	next.UpdatedAt = time.Now().UTC().Format(time.RFC3339Nano)
	u.cfg = next
	u.changes = append(u.changes, pathstats.ConfigChange{
		ID: int64(len(u.changes) + 1), At: time.Now(), Actor: actor, Source: source,
		Reason: reason, Before: before, After: next,
	})
	return next, nil
}

func (u *memUpdater) Current() pathstats.MigrationConfig {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cfg
}

func (u *memUpdater) history() []pathstats.ConfigChange {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.changes)
}

func (u *memUpdater) percentages() []float64 {
	var ps []float64
	for _, c := range u.history() {
		ps = append(ps, c.After.NewAPIPercentage)
	}
	return ps
}

// health is a settable source of route stats and accuracy.
type health struct {
	mu       sync.Mutex
	stats    func(pct float64) pathstats.RouteStats
	accuracy float64
	accOK    bool
	up       *memUpdater
}

func healthy(up *memUpdater) *health {
	return &health{
		up: up, accuracy: 99.5, accOK: true,
		stats: func(float64) pathstats.RouteStats {
			return pathstats.RouteStats{Samples: 1000, ErrorRate: 0.1, P99Ms: 50}
		},
	}
}

func (h *health) set(f func(pct float64) pathstats.RouteStats) {
	h.mu.Lock()
	h.stats = f
	h.mu.Unlock()
}

func (h *health) setAccuracy(v float64, ok bool) {
	h.mu.Lock()
	h.accuracy, h.accOK = v, ok
	h.mu.Unlock()
}

func (h *health) Stats() pathstats.RouteStats {
	h.mu.Lock()
	f := h.stats
	h.mu.Unlock()
	return f(h.up.Current().NewAPIPercentage)
}

func (h *health) Accuracy() (float64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accuracy, h.accOK
}

func newDriver(kv pathstats.KV, up *memUpdater, h *health, holder string) *Driver {
	return New(Options{
		KV: kv, Updater: up, Stats: h.Stats, Accuracy: h.Accuracy, Holder: holder,
		LeaseTTL: 300 * time.Millisecond, Tick: 10 * time.Millisecond,
	})
}

// run runs d until the returned stop is called (or the test ends).
func run(t *testing.T, d *Driver) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

func plan(dwell time.Duration, steps ...float64) Plan {
	return Plan{Steps: steps, Dwell: Duration(dwell), Gates: DefaultGates(), MinSamples: 100}
}

func start(t *testing.T, d *Driver, p Plan) State {
	t.Helper()
	st, err := d.Start(ctxT(t), p)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return st
}

// waitFor polls the stored state until cond holds (fails after a minute).
func waitFor(t *testing.T, d *Driver, what string, cond func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var st State
	for time.Now().Before(deadline) {
		var err error
		st, err = d.State(ctxT(t))
		if err == nil && cond(st) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last state %+v", what, st)
	return st
}

func statusIs(s Status) func(State) bool { return func(st State) bool { return st.Status == s } }
