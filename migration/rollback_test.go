package migration

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// recordingUpdater is an in-memory ConfigUpdater that records its calls.
type recordingUpdater struct {
	mu    sync.Mutex
	cfg   pathstats.MigrationConfig
	calls []updateCall
}

type updateCall struct {
	actor, source, reason string
	before, after         pathstats.MigrationConfig
}

func newRecordingUpdater(c pathstats.MigrationConfig) *recordingUpdater {
	return &recordingUpdater{cfg: c}
}

func (u *recordingUpdater) Update(_ context.Context, ifMatch uint64, actor, source, reason string, mutate func(*pathstats.MigrationConfig) error) (pathstats.MigrationConfig, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if ifMatch > 0 && ifMatch != u.cfg.Version {
		return u.cfg, pathstats.Errorf(pathstats.EPreconditionFailed, "stale")
	}
	next := u.cfg
	if err := mutate(&next); err != nil {
		return u.cfg, err
	}
	next.Version++
	u.calls = append(u.calls, updateCall{actor, source, reason, u.cfg, next})
	u.cfg = next
	return next, nil
}

func (u *recordingUpdater) Current() pathstats.MigrationConfig {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cfg
}

func (u *recordingUpdater) Calls() []updateCall {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]updateCall(nil), u.calls...)
}

// fakeClock is a settable clock for the monitor's window.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestMonitor(pct float64) (*Monitor, *recordingUpdater, *fakeClock) {
	clk := &fakeClock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
	up := newRecordingUpdater(pathstats.MigrationConfig{NewAPIPercentage: pct, Version: 4})
	return NewMonitor(MonitorOptions{Updater: up, Actor: "node-a", Now: clk.Now}), up, clk
}

func observe(m *Monitor, total, failures int) {
	for i := range total {
		m.Observe(i >= failures, 20*time.Millisecond)
	}
}

func TestMonitorOneOfThreeNeverTriggers(t *testing.T) {
	m, up, _ := newTestMonitor(50)
	observe(m, 3, 1)
	if rolled, err := m.Check(context.Background()); rolled || err != nil {
		t.Fatalf("Check = %v, %v", rolled, err)
	}
	if len(up.Calls()) != 0 || up.Current().NewAPIPercentage != 50 {
		t.Fatal("config changed")
	}
}

func TestMonitorThresholds(t *testing.T) {
	cases := []struct {
		total, failures int
		want            bool
	}{
		{1000, 30, true},
		{1000, 5, false},
		{1000, 15, false}, // 1.5 % is not confidently above 1 %
		{199, 199, false}, // below MinSamples
		{200, 20, true},
	}
	for _, tc := range cases {
		m, up, _ := newTestMonitor(50)
		observe(m, tc.total, tc.failures)
		rolled, err := m.Check(context.Background())
		if err != nil || rolled != tc.want {
			t.Errorf("%d/%d: Check = %v, %v; want %v", tc.failures, tc.total, rolled, err, tc.want)
			continue
		}
		if !tc.want {
			continue
		}
		calls := up.Calls()
		if len(calls) != 1 || calls[0].after.NewAPIPercentage != 0 || calls[0].before.NewAPIPercentage != 50 ||
			calls[0].source != "auto-rollback" || calls[0].actor != "node-a" || calls[0].reason == "" {
			t.Errorf("%d/%d: calls = %+v", tc.failures, tc.total, calls)
		}
		if m.Rollbacks() != 1 || m.Stats().Samples != 0 {
			t.Errorf("rollbacks %d, samples after reset %d", m.Rollbacks(), m.Stats().Samples)
		}
	}
}

func TestMonitorSlowAnswersFail(t *testing.T) {
	m, up, _ := newTestMonitor(10)
	for range 500 {
		m.Observe(true, 1500*time.Millisecond)
	}
	s := m.Stats()
	if s.Samples != 500 || s.ErrorRate != 100 || s.P99Ms <= 1000 {
		t.Fatalf("stats %+v", s)
	}
	if rolled, _ := m.Check(context.Background()); !rolled || up.Current().NewAPIPercentage != 0 {
		t.Fatal("slow answers did not roll back")
	}
}

func TestMonitorWindowAgesOut(t *testing.T) {
	m, up, clk := newTestMonitor(50)
	observe(m, 1000, 100)
	clk.Add(30 * time.Second)
	observe(m, 100, 0)
	if s := m.Stats(); s.Samples != 1100 {
		t.Fatalf("samples %d", s.Samples)
	}
	clk.Add(35 * time.Second) // the failing burst is now older than 60s
	s := m.Stats()
	if s.Samples != 100 || s.ErrorRate != 0 {
		t.Fatalf("after aging: %+v", s)
	}
	if rolled, _ := m.Check(context.Background()); rolled || len(up.Calls()) != 0 {
		t.Fatal("rolled back on aged-out samples")
	}
	clk.Add(time.Hour)
	if s := m.Stats(); s.Samples != 0 {
		t.Fatalf("after an hour: %+v", s)
	}
}

func TestMonitorStaysAtZero(t *testing.T) {
	m, up, _ := newTestMonitor(20)
	observe(m, 1000, 500)
	if rolled, _ := m.Check(context.Background()); !rolled {
		t.Fatal("no rollback")
	}
	// Forced-new clients still hit the new path and still fail.
	observe(m, 1000, 500)
	for range 3 {
		if rolled, err := m.Check(context.Background()); rolled || err != nil {
			t.Fatalf("Check at 0%% = %v, %v", rolled, err)
		}
	}
	if n := len(up.Calls()); n != 1 || m.Rollbacks() != 1 || up.Current().NewAPIPercentage != 0 {
		t.Fatalf("calls %d rollbacks %d pct %v", n, m.Rollbacks(), up.Current().NewAPIPercentage)
	}
}

func TestMonitorRun(t *testing.T) {
	up := newRecordingUpdater(pathstats.MigrationConfig{NewAPIPercentage: 5})
	m := NewMonitor(MonitorOptions{Updater: up})
	observe(m, 400, 400)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx, 5*time.Millisecond); close(done) }()
	deadline := time.Now().Add(time.Minute)
	for up.Current().NewAPIPercentage != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if up.Current().NewAPIPercentage != 0 {
		t.Fatal("Run did not roll back")
	}
}

func TestWilsonLower(t *testing.T) {
	if got := WilsonLower(30, 1000, 2.33); got < 0.0195 || got > 0.0200 {
		t.Errorf("30/1000: %v", got)
	}
	// 1 of 3 is far from confident (the bound is 4.7 % against 33 %
	// observed); MinSamples keeps such tiny samples from judging at all.
	if got := WilsonLower(1, 3, 2.33); got < 0.04 || got > 0.05 {
		t.Errorf("1/3: %v", got)
	}
	if got := WilsonLower(5, 1000, 2.33); got > 0.01 {
		t.Errorf("5/1000: %v", got)
	}
	if got := WilsonLower(0, 0, 2.33); got != 0 {
		t.Errorf("0/0: %v", got)
	}
}
