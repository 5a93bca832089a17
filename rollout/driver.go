// Package rollout drives a staged canary rollout of the new paths API (the
// plan's Task 6 as a feature): newAPIPercentage goes through the plan's
// steps; after each step's dwell the gates (comparison accuracy, the canary
// router's error rate and p99) decide to advance, hold or roll back to 0%.
//
// The rollout state lives in KV under StateKey and is written with
// compare-and-set, so it survives restarts and any node can start, read or
// abort it. Only the holder of the lease "rollout" drives it (Run); a node
// taking over continues from the stored state, and stepStartedAt keeps the
// dwell honest across the handover.
package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/lease"
)

// StateKey is the KV key of the rollout state.
const StateKey = "migration:rollout"

// LeaseName is the lease whose holder drives the rollout.
const LeaseName = "rollout"

// Source is the config history source of rollout changes.
const Source = "rollout"

// Defaults of Options.
const (
	DefaultLeaseTTL = 15 * time.Second
	DefaultTick     = time.Second
	// opTimeout bounds one tick's KV and config work.
	opTimeout = 10 * time.Second
	// holdRefresh is how many ticks a holding check is kept before it is
	// rewritten with fresh numbers.
	holdRefresh = 10
)

// Status of a rollout.
type Status string

// Rollout statuses. Running and holding are active; the others are final.
const (
	StatusRunning    Status = "running"
	StatusHolding    Status = "holding" // dwell passed with too few samples; gates re-checked every tick
	StatusCompleted  Status = "completed"
	StatusRolledBack Status = "rolled-back"
	StatusAborted    Status = "aborted"
)

// Active reports whether the rollout is still in progress.
func (s Status) Active() bool { return s == StatusRunning || s == StatusHolding }

// Verdicts of a gate check.
const (
	VerdictAdvance  = "advance"
	VerdictHold     = "hold"
	VerdictRollback = "rollback"
)

// Check is one evaluation of the gates.
type Check struct {
	At time.Time `json:"at"`
	// Accuracy is the comparison accuracy in percent; nil when no
	// comparison existed (the accuracy gate was skipped, see Skipped).
	Accuracy  *float64 `json:"accuracy"`
	ErrorRate float64  `json:"errorRate"`
	P99Ms     float64  `json:"p99Ms"`
	Samples   int64    `json:"samples"`
	Verdict   string   `json:"verdict"`
	// Skipped lists gates that were not evaluated, and why.
	Skipped []string `json:"skipped,omitempty"`
}

// State is the stored rollout.
type State struct {
	ID     string `json:"id"`
	Plan   Plan   `json:"plan"`
	Status Status `json:"status"`
	// StepIndex is the current step (0-based) into Plan.Steps.
	StepIndex int `json:"stepIndex"`
	// StepStartedAt is when the current step's percentage was applied;
	// zero while it is still to be applied.
	StepStartedAt time.Time `json:"stepStartedAt,omitzero"`
	LastCheck     *Check    `json:"lastCheck,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	StartedAt     time.Time `json:"startedAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// Options configure a Driver.
type Options struct {
	KV      pathstats.KV
	Updater pathstats.ConfigUpdater
	// Stats returns the canary router's window of new-path outcomes.
	Stats func() pathstats.RouteStats
	// Accuracy returns the latest comparison accuracy in percent; ok is
	// false when no comparison exists yet (the accuracy gate is skipped).
	Accuracy func() (percent float64, ok bool)
	// Holder names this node in the lease and in config history (actor).
	Holder   string
	LeaseTTL time.Duration // default 15s
	Tick     time.Duration // default 1s
	Now      func() time.Time
	Logger   *slog.Logger
}

// Driver starts, reads, aborts and (in Run) drives rollouts.
type Driver struct {
	opts Options
	log  *slog.Logger
}

// New returns a Driver; zero options take their defaults.
func New(opts Options) *Driver {
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Stats == nil {
		opts.Stats = func() pathstats.RouteStats { return pathstats.RouteStats{} }
	}
	if opts.Accuracy == nil {
		opts.Accuracy = func() (float64, bool) { return 0, false }
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Driver{opts: opts, log: opts.Logger.With("component", "rollout", "holder", opts.Holder)}
}

// Start stores a new running rollout of plan; the lease holder applies its
// first step on its next tick. It fails with CONFLICT while another
// rollout is running or holding, and INVALID_BODY for an invalid plan.
func (d *Driver) Start(ctx context.Context, plan Plan) (State, error) {
	if err := plan.Validate(); err != nil {
		return State{}, err
	}
	plan.MinSamples = plan.minSamples()
	now := d.opts.Now().UTC()
	st := State{ID: newID(), Plan: plan, Status: StatusRunning, StartedAt: now, UpdatedAt: now}
	cur, rev, err := d.load(ctx)
	switch {
	case errors.Is(err, pathstats.ErrNotFound):
		err = d.create(ctx, st)
	case err != nil:
		return State{}, err
	case cur.Status.Active():
		return State{}, pathstats.Errorf(pathstats.EConflict, "rollout %s is %s", cur.ID, cur.Status)
	default:
		err = d.save(ctx, st, rev)
	}
	if errors.Is(err, pathstats.ErrConflict) {
		return State{}, pathstats.Errorf(pathstats.EConflict, "another rollout was started concurrently")
	}
	if err != nil {
		return State{}, err
	}
	d.log.Info("rollout started", "id", st.ID, "steps", plan.Steps, "dwell", time.Duration(plan.Dwell))
	return st, nil
}

// State returns the stored rollout (the latest one, also when finished);
// NOT_FOUND when none was ever started.
func (d *Driver) State(ctx context.Context) (State, error) {
	st, _, err := d.load(ctx)
	if errors.Is(err, pathstats.ErrNotFound) {
		return State{}, pathstats.Errorf(pathstats.ENotFound, "no rollout")
	}
	return st, err
}

// Abort stops an active rollout. It leaves newAPIPercentage as it is: the
// operator decides what comes next. A step being applied at the same
// moment by the driver may still land. NOT_FOUND when there is no rollout,
// CONFLICT when it is already finished.
func (d *Driver) Abort(ctx context.Context, reason string) (State, error) {
	if reason == "" {
		reason = "aborted by operator"
	}
	for {
		st, rev, err := d.load(ctx)
		if errors.Is(err, pathstats.ErrNotFound) {
			return State{}, pathstats.Errorf(pathstats.ENotFound, "no rollout")
		}
		if err != nil {
			return State{}, err
		}
		if !st.Status.Active() {
			return State{}, pathstats.Errorf(pathstats.EConflict, "rollout %s is already %s", st.ID, st.Status)
		}
		st.Status, st.Reason, st.UpdatedAt = StatusAborted, reason, d.opts.Now().UTC()
		err = d.save(ctx, st, rev)
		if errors.Is(err, pathstats.ErrConflict) {
			continue
		}
		if err != nil {
			return State{}, err
		}
		d.log.Info("rollout aborted", "id", st.ID, "step", st.StepIndex+1, "reason", reason)
		return st, nil
	}
}

// Run campaigns for the lease "rollout" until ctx ends and, while elected,
// advances the stored rollout every Tick. It releases the lease on return.
func (d *Driver) Run(ctx context.Context) {
	l := lease.New(d.opts.KV, LeaseName, d.opts.Holder, d.opts.LeaseTTL)
	l.Run(ctx, d.lead)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.LeaseTTL)
	defer cancel()
	if err := l.Release(rctx); err != nil {
		d.log.Warn("rollout lease release failed", "err", err)
	}
}

// lead ticks while this node holds the lease.
func (d *Driver) lead(ctx context.Context) {
	d.log.Info("driving rollouts")
	t := time.NewTicker(d.opts.Tick)
	defer t.Stop()
	for {
		if err := d.tick(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("rollout tick failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick moves the stored rollout on by at most one transition (two when a
// step passes and the next one is applied).
func (d *Driver) tick(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	for range 2 {
		again, err := d.advance(ctx)
		if err != nil || !again {
			return err
		}
	}
	return nil
}

// advance performs one transition of an active rollout and reports whether
// another one may follow at once.
func (d *Driver) advance(ctx context.Context) (bool, error) {
	st, rev, err := d.load(ctx)
	if errors.Is(err, pathstats.ErrNotFound) {
		return false, nil
	}
	if err != nil || !st.Status.Active() || ctx.Err() != nil {
		return false, err
	}
	now := d.opts.Now().UTC()
	if st.StepStartedAt.IsZero() {
		return false, d.applyStep(ctx, st, rev, now)
	}
	if now.Before(st.StepStartedAt.Add(time.Duration(st.Plan.Dwell))) {
		return false, nil
	}
	c, why := d.check(st, now)
	switch c.Verdict {
	case VerdictRollback:
		return false, d.rollBack(ctx, st, rev, c, why)
	case VerdictHold:
		return false, d.hold(ctx, st, rev, c)
	}
	st.LastCheck, st.UpdatedAt, st.Reason = &c, now, ""
	if st.StepIndex == len(st.Plan.Steps)-1 {
		st.Status = StatusCompleted
		d.log.Info("rollout completed", "id", st.ID)
		return false, d.saveTick(ctx, st, rev)
	}
	st.StepIndex++
	st.Status, st.StepStartedAt = StatusRunning, time.Time{}
	return true, d.saveTick(ctx, st, rev)
}

// applyStep sets the current step's percentage and records its start.
func (d *Driver) applyStep(ctx context.Context, st State, rev uint64, now time.Time) error {
	i, n := st.StepIndex, len(st.Plan.Steps)
	p := st.Plan.Steps[i]
	reason := fmt.Sprintf("rollout %s step %d/%d: %s%%", st.ID, i+1, n, fmtNum(p))
	if err := d.setPercentage(ctx, p, reason); err != nil {
		return fmt.Errorf("apply step %d: %w", i+1, err)
	}
	d.log.Info("rollout step applied", "id", st.ID, "step", i+1, "of", n, "percentage", p)
	st.StepStartedAt, st.UpdatedAt = now, now
	return d.saveTick(ctx, st, rev)
}

// check evaluates the gates of the current step; why lists the failing
// gates with their numbers.
func (d *Driver) check(st State, now time.Time) (c Check, why string) {
	stats := d.opts.Stats()
	g, minSamples := st.Plan.Gates, st.Plan.minSamples()
	c = Check{At: now, ErrorRate: stats.ErrorRate, P99Ms: stats.P99Ms, Samples: stats.Samples}
	var fails []string
	if acc, ok := d.opts.Accuracy(); ok {
		c.Accuracy = &acc
		if acc < g.MinAccuracy {
			fails = append(fails, fmt.Sprintf("accuracy %.2f%% < %s%%", acc, fmtNum(g.MinAccuracy)))
		}
	} else {
		c.Skipped = append(c.Skipped, "accuracy: no comparison yet")
	}
	if stats.Samples >= minSamples {
		if stats.ErrorRate > g.MaxErrorRate {
			fails = append(fails, fmt.Sprintf("error rate %.2f%% > %s%%", stats.ErrorRate, fmtNum(g.MaxErrorRate)))
		}
		if stats.P99Ms > g.MaxP99Ms {
			fails = append(fails, fmt.Sprintf("p99 %.1fms > %sms", stats.P99Ms, fmtNum(g.MaxP99Ms)))
		}
	} else {
		c.Skipped = append(c.Skipped, fmt.Sprintf("error rate and p99: %d samples < %d", stats.Samples, minSamples))
	}
	switch {
	case len(fails) > 0:
		c.Verdict = VerdictRollback
	case stats.Samples < minSamples:
		c.Verdict = VerdictHold
	default:
		c.Verdict = VerdictAdvance
	}
	return c, strings.Join(fails, "; ")
}

// rollBack sets the percentage to 0 and records why.
func (d *Driver) rollBack(ctx context.Context, st State, rev uint64, c Check, why string) error {
	i, n := st.StepIndex, len(st.Plan.Steps)
	reason := fmt.Sprintf("rollout %s rolled back at step %d/%d (%s%%): %s (samples %d)",
		st.ID, i+1, n, fmtNum(st.Plan.Steps[i]), why, c.Samples)
	if err := d.setPercentage(ctx, 0, reason); err != nil {
		return fmt.Errorf("roll back: %w", err)
	}
	d.log.Warn("rollout rolled back", "id", st.ID, "step", i+1, "reason", reason)
	st.Status, st.Reason, st.LastCheck, st.UpdatedAt = StatusRolledBack, reason, &c, c.At
	return d.saveTick(ctx, st, rev)
}

// hold marks the step as holding for lack of samples; the stored check is
// refreshed every few ticks, not on every one.
func (d *Driver) hold(ctx context.Context, st State, rev uint64, c Check) error {
	fresh := st.LastCheck != nil && c.At.Sub(st.LastCheck.At) < holdRefresh*d.opts.Tick
	if st.Status == StatusHolding && fresh {
		return nil
	}
	if st.Status != StatusHolding {
		d.log.Info("rollout holding", "id", st.ID, "step", st.StepIndex+1, "samples", c.Samples)
	}
	st.Status, st.LastCheck, st.UpdatedAt = StatusHolding, &c, c.At
	st.Reason = fmt.Sprintf("too few samples: %d < %d; dwell extended until enough arrive", c.Samples, st.Plan.minSamples())
	return d.saveTick(ctx, st, rev)
}

// errUnchanged makes the config mutation a no-op when the percentage is
// already set, so a step re-applied after a handover records no change.
var errUnchanged = errors.New("percentage unchanged")

// setPercentage sets newAPIPercentage through the Updater (history source
// "rollout").
func (d *Driver) setPercentage(ctx context.Context, p float64, reason string) error {
	_, err := d.opts.Updater.Update(ctx, 0, d.opts.Holder, Source, reason, func(c *pathstats.MigrationConfig) error {
		if c.NewAPIPercentage == p {
			return errUnchanged
		}
		c.NewAPIPercentage = p
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return fmt.Errorf("set percentage %s: %w", fmtNum(p), err)
	}
	return nil
}

// saveTick stores a transition; a conflict (an abort or another node got
// there first) is not an error: the next tick reloads.
func (d *Driver) saveTick(ctx context.Context, st State, rev uint64) error {
	err := d.save(ctx, st, rev)
	if errors.Is(err, pathstats.ErrConflict) {
		d.log.Debug("rollout state changed meanwhile", "id", st.ID)
		return nil
	}
	return err
}

func (d *Driver) load(ctx context.Context) (State, uint64, error) {
	e, err := d.opts.KV.Get(ctx, StateKey)
	if err != nil {
		return State{}, 0, fmt.Errorf("load rollout: %w", err)
	}
	var st State
	if err := json.Unmarshal(e.Value, &st); err != nil {
		return State{}, 0, fmt.Errorf("decode rollout: %w", err)
	}
	return st, e.Revision, nil
}

func (d *Driver) save(ctx context.Context, st State, rev uint64) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode rollout: %w", err)
	}
	if _, err := d.opts.KV.Update(ctx, StateKey, b, rev); err != nil {
		return fmt.Errorf("save rollout: %w", err)
	}
	return nil
}

func (d *Driver) create(ctx context.Context, st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode rollout: %w", err)
	}
	if _, err := d.opts.KV.Create(ctx, StateKey, b); err != nil {
		return fmt.Errorf("create rollout: %w", err)
	}
	return nil
}

func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "ro-" + hex.EncodeToString(b)
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
