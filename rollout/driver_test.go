package rollout

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func TestRolloutAdvancesToCompletion(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	d := newDriver(kv, up, healthy(up), "node-a")
	run(t, d)
	const dwell = 50 * time.Millisecond
	started := start(t, d, plan(dwell, 1, 10, 50, 100))

	st := waitFor(t, d, "completed", statusIs(StatusCompleted))
	if want := []float64{1, 10, 50, 100}; !slices.Equal(up.percentages(), want) {
		t.Fatalf("percentages = %v, want %v", up.percentages(), want)
	}
	if st.ID != started.ID || st.StepIndex != 3 || st.LastCheck == nil || st.LastCheck.Verdict != VerdictAdvance {
		t.Fatalf("final state = %+v", st)
	}
	if st.LastCheck.Accuracy == nil || *st.LastCheck.Accuracy != 99.5 || st.LastCheck.Samples != 1000 {
		t.Fatalf("last check = %+v", *st.LastCheck)
	}
	h := up.history()
	for i, c := range h {
		want := []string{"step 1/4: 1%", "step 2/4: 10%", "step 3/4: 50%", "step 4/4: 100%"}[i]
		if c.Source != Source || c.Actor != "node-a" || !strings.Contains(c.Reason, want) || !strings.Contains(c.Reason, st.ID) {
			t.Fatalf("change %d = %+v, want reason with %q", i, c, want)
		}
		if i > 0 && c.At.Sub(h[i-1].At) < dwell {
			t.Fatalf("step %d applied %v after the previous one, dwell is %v", i+1, c.At.Sub(h[i-1].At), dwell)
		}
	}
	// Nothing more happens after completion.
	time.Sleep(100 * time.Millisecond)
	if n := len(up.history()); n != 4 {
		t.Fatalf("%d changes after completion, want 4", n)
	}
}

func TestRolloutRollsBackOnErrorRate(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	h := healthy(up)
	h.set(func(pct float64) pathstats.RouteStats {
		if pct >= 10 { // the new path breaks under more load
			return pathstats.RouteStats{Samples: 500, ErrorRate: 5, P99Ms: 80}
		}
		return pathstats.RouteStats{Samples: 500, ErrorRate: 0.2, P99Ms: 80}
	})
	d := newDriver(kv, up, h, "node-a")
	run(t, d)
	start(t, d, plan(50*time.Millisecond, 1, 10, 50, 100))

	st := waitFor(t, d, "rolled back", statusIs(StatusRolledBack))
	if want := []float64{1, 10, 0}; !slices.Equal(up.percentages(), want) {
		t.Fatalf("percentages = %v, want %v", up.percentages(), want)
	}
	if st.StepIndex != 1 || st.LastCheck == nil || st.LastCheck.Verdict != VerdictRollback || st.LastCheck.ErrorRate != 5 {
		t.Fatalf("state = %+v", st)
	}
	for _, want := range []string{"step 2/4 (10%)", "error rate 5.00% > 1%", "samples 500"} {
		if !strings.Contains(st.Reason, want) {
			t.Fatalf("reason %q lacks %q", st.Reason, want)
		}
	}
	last := up.history()[2]
	if last.Source != Source || last.Reason != st.Reason || last.After.NewAPIPercentage != 0 {
		t.Fatalf("rollback change = %+v", last)
	}
	if up.Current().NewAPIPercentage != 0 {
		t.Fatalf("percentage = %v after rollback", up.Current().NewAPIPercentage)
	}
}

func TestRolloutRollsBackOnP99(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	h := healthy(up)
	h.set(func(float64) pathstats.RouteStats { return pathstats.RouteStats{Samples: 300, P99Ms: 450} })
	d := newDriver(kv, up, h, "node-a")
	run(t, d)
	start(t, d, plan(20*time.Millisecond, 5, 100))
	st := waitFor(t, d, "rolled back", statusIs(StatusRolledBack))
	if !strings.Contains(st.Reason, "p99 450.0ms > 200ms") || !slices.Equal(up.percentages(), []float64{5, 0}) {
		t.Fatalf("reason %q, percentages %v", st.Reason, up.percentages())
	}
}

func TestRolloutRollsBackOnAccuracy(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	h := healthy(up)
	h.setAccuracy(97.5, true)
	d := newDriver(kv, up, h, "node-a")
	run(t, d)
	start(t, d, plan(20*time.Millisecond, 1, 10, 100))

	st := waitFor(t, d, "rolled back", statusIs(StatusRolledBack))
	if want := []float64{1, 0}; !slices.Equal(up.percentages(), want) {
		t.Fatalf("percentages = %v, want %v", up.percentages(), want)
	}
	if !strings.Contains(st.Reason, "accuracy 97.50% < 99%") || strings.Contains(st.Reason, "error rate") {
		t.Fatalf("reason = %q", st.Reason)
	}
}

func TestRolloutSkipsAccuracyWithoutComparison(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	h := healthy(up)
	h.setAccuracy(0, false)
	d := newDriver(kv, up, h, "node-a")
	run(t, d)
	start(t, d, plan(20*time.Millisecond, 50, 100))

	st := waitFor(t, d, "completed", statusIs(StatusCompleted))
	c := st.LastCheck
	if c == nil || c.Accuracy != nil || !slices.Contains(c.Skipped, "accuracy: no comparison yet") {
		t.Fatalf("last check = %+v", c)
	}
}

func TestRolloutHoldsOnTooFewSamples(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	h := healthy(up)
	// Few samples, all failing: not enough to judge, so hold, not roll back.
	h.set(func(float64) pathstats.RouteStats {
		return pathstats.RouteStats{Samples: 3, ErrorRate: 66.7, P99Ms: 900}
	})
	d := newDriver(kv, up, h, "node-a")
	run(t, d)
	start(t, d, plan(30*time.Millisecond, 1, 100))

	st := waitFor(t, d, "holding", statusIs(StatusHolding))
	if st.StepIndex != 0 || !strings.Contains(st.Reason, "too few samples: 3 < 100") ||
		st.LastCheck == nil || st.LastCheck.Verdict != VerdictHold {
		t.Fatalf("holding state = %+v", st)
	}
	time.Sleep(80 * time.Millisecond) // several dwells: still holding
	if st, _ = d.State(ctxT(t)); st.Status != StatusHolding || !slices.Equal(up.percentages(), []float64{1}) {
		t.Fatalf("state %s, percentages %v; want holding at [1]", st.Status, up.percentages())
	}

	h.set(func(float64) pathstats.RouteStats {
		return pathstats.RouteStats{Samples: 150, ErrorRate: 0.5, P99Ms: 90}
	})
	waitFor(t, d, "completed", statusIs(StatusCompleted))
	if want := []float64{1, 100}; !slices.Equal(up.percentages(), want) {
		t.Fatalf("percentages = %v, want %v", up.percentages(), want)
	}
}

func TestRolloutAbort(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	d := newDriver(kv, up, healthy(up), "node-a")
	run(t, d)
	start(t, d, plan(time.Hour, 1, 10, 100))
	waitFor(t, d, "step 1 applied", func(st State) bool { return !st.StepStartedAt.IsZero() })

	st, err := d.Abort(ctxT(t), "operator says stop")
	if err != nil {
		t.Fatalf("abort: %v", err)
	}
	if st.Status != StatusAborted || st.Reason != "operator says stop" {
		t.Fatalf("aborted state = %+v", st)
	}
	time.Sleep(60 * time.Millisecond)
	if got := up.Current().NewAPIPercentage; got != 1 || len(up.history()) != 1 {
		t.Fatalf("percentage %v, %d changes after abort; want 1%% left as is", got, len(up.history()))
	}
	if _, err := d.Abort(ctxT(t), ""); pathstats.ErrorCode(err) != pathstats.EConflict {
		t.Fatalf("second abort: %v, want CONFLICT", err)
	}
	if st, _ := d.State(ctxT(t)); st.Status != StatusAborted {
		t.Fatalf("stored status %s", st.Status)
	}
}

func TestStartWhileActiveConflicts(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	d := newDriver(kv, up, healthy(up), "node-a")
	if _, err := d.State(ctxT(t)); pathstats.ErrorCode(err) != pathstats.ENotFound {
		t.Fatalf("state before any rollout: %v, want NOT_FOUND", err)
	}
	if _, err := d.Abort(ctxT(t), ""); pathstats.ErrorCode(err) != pathstats.ENotFound {
		t.Fatalf("abort before any rollout: %v, want NOT_FOUND", err)
	}
	first := start(t, d, plan(time.Hour, 1, 100))
	if _, err := d.Start(ctxT(t), plan(time.Hour, 5)); pathstats.ErrorCode(err) != pathstats.EConflict {
		t.Fatalf("second start: %v, want CONFLICT", err)
	}
	if _, err := d.Abort(ctxT(t), ""); err != nil {
		t.Fatal(err)
	}
	second := start(t, d, plan(time.Hour, 5))
	if second.ID == first.ID || second.Status != StatusRunning {
		t.Fatalf("restart after abort = %+v", second)
	}
	if _, err := d.Start(ctxT(t), Plan{Steps: []float64{5}}); pathstats.ErrorCode(err) != pathstats.EInvalidBody {
		t.Fatalf("invalid plan: %v, want INVALID_BODY", err)
	}
}

func TestRolloutSurvivesRestart(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	h := healthy(up)
	const dwell = 300 * time.Millisecond
	a := newDriver(kv, up, h, "node-a")
	stopA := run(t, a)
	start(t, a, plan(dwell, 1, 10, 50))
	mid := waitFor(t, a, "step 2 applied", func(st State) bool { return st.StepIndex == 1 && !st.StepStartedAt.IsZero() })
	stopA()

	// A new process on the same KV continues from the stored step.
	b := newDriver(kv, up, h, "node-b")
	if st, err := b.State(ctxT(t)); err != nil || st.ID != mid.ID || st.StepIndex != 1 || !st.StepStartedAt.Equal(mid.StepStartedAt) {
		t.Fatalf("state seen by the new driver = %+v, %v", st, err)
	}
	run(t, b)
	waitFor(t, b, "completed", statusIs(StatusCompleted))
	if want := []float64{1, 10, 50}; !slices.Equal(up.percentages(), want) {
		t.Fatalf("percentages = %v, want %v (no step applied twice)", up.percentages(), want)
	}
	h3 := up.history()[2]
	if h3.Actor != "node-b" {
		t.Fatalf("step 3 applied by %s, want node-b", h3.Actor)
	}
	if h3.At.Before(mid.StepStartedAt.Add(dwell)) {
		t.Fatalf("step 3 at %v, before step 2's dwell ended at %v", h3.At, mid.StepStartedAt.Add(dwell))
	}
}

func TestTwoDriversApplyEachStepOnce(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	h := healthy(up)
	a, b := newDriver(kv, up, h, "node-a"), newDriver(kv, up, h, "node-b")
	a.opts.LeaseTTL, b.opts.LeaseTTL = 5*time.Second, 5*time.Second // no handover mid-test
	run(t, a)
	run(t, b)
	start(t, b, plan(40*time.Millisecond, 1, 2.5, 10, 25, 50, 100))
	waitFor(t, a, "completed", statusIs(StatusCompleted))
	time.Sleep(50 * time.Millisecond)
	if want := []float64{1, 2.5, 10, 25, 50, 100}; !slices.Equal(up.percentages(), want) {
		t.Fatalf("percentages = %v, want %v", up.percentages(), want)
	}
	actors := map[string]bool{}
	for _, c := range up.history() {
		actors[c.Actor] = true
	}
	if len(actors) != 1 {
		t.Fatalf("steps applied by %v, want a single leader", actors)
	}
}
