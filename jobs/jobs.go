// Package jobs runs long admin operations (an archive run, a restore) in
// the background of a server and keeps their records in the shared KV, so
// that any node answers for any job.
//
// A job is the key "job:<id>" holding a Job. The node running it writes
// the record when it starts, its progress at most once per Every (and a
// heartbeat every Heartbeat while nothing changes), and its outcome when it
// ends. A job runs on the Manager's context (the server's lifetime), never
// on the context of the request that started it: it is cut off only when
// the server shuts down, and is then recorded as failed (interrupted). A
// running job whose record has not been written for StaleAfter (its node
// died) is reported as failed. Finished jobs older than Retain are pruned.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/pathstats/pathstats"
)

// States of a job.
const (
	Running   = "running"
	Succeeded = "succeeded"
	Failed    = "failed"
)

// keyPrefix is the KV key prefix of job records.
const keyPrefix = "job:"

// Job is the record of one job.
type Job struct {
	ID         string          `json:"id"`
	Op         string          `json:"op"`
	State      string          `json:"state"`
	Progress   json.RawMessage `json:"progress"`
	Result     json.RawMessage `json:"result"`
	Error      *Error          `json:"error"`
	StartedAt  time.Time       `json:"startedAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
	FinishedAt *time.Time      `json:"finishedAt"`
	Node       string          `json:"node"`
}

// Error is why a job failed: a contract error code and a message.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Func is the work of a job. It reports progress (any JSON value) as it
// goes and returns its result; on failure the result, when not nil, says
// what was done before the error. Errors should be *pathstats.Error; others
// are recorded as INTERNAL.
type Func func(ctx context.Context, report func(progress any)) (result any, err error)

// Config configures a Manager. Zero durations take the defaults.
type Config struct {
	KV   pathstats.KV
	Node string // names this node in job records
	// Timeout bounds each KV call (default 3 s).
	Timeout time.Duration
	// Every is the shortest interval between two progress writes (1 s).
	Every time.Duration
	// Heartbeat rewrites an unchanged running record this often (5 s).
	Heartbeat time.Duration
	// StaleAfter: a running record not written for this long belongs to a
	// node that stopped; it is reported as failed (60 s).
	StaleAfter time.Duration
	// Retain: finished jobs older than this are deleted (24 h).
	Retain time.Duration
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Timeout, 3*time.Second)
	def(&c.Every, time.Second)
	def(&c.Heartbeat, 5*time.Second)
	def(&c.StaleAfter, time.Minute)
	def(&c.Retain, 24*time.Hour)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Manager starts jobs on this node and answers for the jobs of all nodes.
type Manager struct {
	cfg Config
	ctx context.Context
	log *slog.Logger
	wg  sync.WaitGroup

	mu    sync.Mutex
	local map[string]*tracked // jobs this node ran, for fresh answers and followers
}

// New returns a Manager whose jobs run on ctx: cancelling it interrupts
// them; Wait waits until their outcome is recorded.
func New(ctx context.Context, cfg Config) *Manager {
	cfg = cfg.withDefaults()
	return &Manager{cfg: cfg, ctx: ctx, log: cfg.Logger.With("component", "jobs"), local: map[string]*tracked{}}
}

// ErrNotFound reports an unknown job id.
var ErrNotFound = errors.New("job not found")

// Start records a new running job and runs fn in the background. An error
// (the KV store did not answer within the timeout) means the job was not
// started.
func (m *Manager) Start(ctx context.Context, op string, fn Func) (Job, error) {
	id, err := newID()
	if err != nil {
		return Job{}, err
	}
	now := time.Now().UTC()
	t := newTracked(Job{ID: id, Op: op, State: Running, StartedAt: now, UpdatedAt: now, Node: m.cfg.Node})
	if err := m.put(ctx, t.snapshot()); err != nil {
		return Job{}, fmt.Errorf("record job: %w", err)
	}
	m.mu.Lock()
	m.local[id] = t
	m.mu.Unlock()
	m.wg.Add(2)
	go func() { defer m.wg.Done(); m.run(t, fn) }()
	go func() { defer m.wg.Done(); m.prune() }()
	m.log.Info("job started", "job", id, "op", op)
	return t.snapshot(), nil
}

// Wait waits until every job started here has ended and its outcome was
// written (or the write gave up).
func (m *Manager) Wait() { m.wg.Wait() }

// run executes fn, publishing progress while it runs, then records the
// outcome.
func (m *Manager) run(t *tracked, fn Func) {
	stop := make(chan struct{})
	published := make(chan struct{})
	go func() { defer close(published); m.publish(t, stop) }()
	res, err := m.call(fn, t)
	close(stop)
	<-published
	final := t.finish(res, m.jobError(t.id, err))
	m.putFinal(final)
	m.log.Info("job finished", "job", final.ID, "op", final.Op, "state", final.State, "took", final.FinishedAt.Sub(final.StartedAt))
}

// call runs fn, turning a panic into an error.
func (m *Manager) call(fn Func, t *tracked) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			m.log.Error("job panicked", "job", t.id, "panic", p)
			err = fmt.Errorf("job panicked: %v", p)
		}
	}()
	return fn(m.ctx, t.setProgress)
}

// jobError is the recorded form of fn's error.
func (m *Manager) jobError(id string, err error) *Error {
	if err == nil {
		return nil
	}
	if m.ctx.Err() != nil {
		return &Error{Code: pathstats.EUnavailable, Message: "interrupted: the server shut down while the job ran; start it again"}
	}
	var perr *pathstats.Error
	if errors.As(err, &perr) {
		return &Error{Code: perr.Code, Message: perr.Message}
	}
	m.log.Error("job failed", "job", id, "err", err)
	return &Error{Code: pathstats.EInternal, Message: "internal error (see the server log)"}
}

// publish writes the record when progress changed (at most once per
// Every) or a heartbeat is due, until stop is closed.
func (m *Manager) publish(t *tracked, stop <-chan struct{}) {
	tick := time.NewTicker(m.cfg.Every)
	defer tick.Stop()
	written, last := t.version(), time.Now()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		v := t.version()
		if v == written && time.Since(last) < m.cfg.Heartbeat {
			continue
		}
		j := t.touch()
		if err := m.put(context.Background(), j); err != nil {
			m.log.Warn("job progress not recorded", "job", j.ID, "err", err)
			continue
		}
		written, last = v, time.Now()
	}
}

// putFinal writes the outcome, retrying for a while: it is what every
// other node will see.
func (m *Manager) putFinal(j Job) {
	for attempt := 0; ; attempt++ {
		err := m.put(context.Background(), j)
		if err == nil {
			return
		}
		if attempt == 4 {
			m.log.Error("job outcome not recorded", "job", j.ID, "state", j.State, "err", err)
			return
		}
		time.Sleep(time.Second)
	}
}

// put writes a record, bounded by the timeout.
func (m *Manager) put(ctx context.Context, j Job) error {
	data, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.Timeout)
	defer cancel()
	if _, err := m.cfg.KV.Put(ctx, keyPrefix+j.ID, data); err != nil {
		return fmt.Errorf("write job %s: %w", j.ID, err)
	}
	return nil
}

// Get returns a job: this node's own from memory, any other from the KV.
func (m *Manager) Get(ctx context.Context, id string) (Job, error) {
	if t := m.tracked(id); t != nil {
		return t.snapshot(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	e, err := m.cfg.KV.Get(ctx, keyPrefix+id)
	if errors.Is(err, pathstats.ErrNotFound) {
		return Job{}, ErrNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("read job %s: %w", id, err)
	}
	var j Job
	if err := json.Unmarshal(e.Value, &j); err != nil {
		return Job{}, fmt.Errorf("decode job %s: %w", id, err)
	}
	return m.presumed(j, time.Now()), nil
}

// presumed reports a running job whose node stopped writing as failed.
func (m *Manager) presumed(j Job, now time.Time) Job {
	if j.State != Running || now.Sub(j.UpdatedAt) < m.cfg.StaleAfter {
		return j
	}
	at := j.UpdatedAt
	j.State, j.FinishedAt = Failed, &at
	j.Error = &Error{Code: pathstats.EUnavailable, Message: fmt.Sprintf("interrupted: node %s stopped reporting at %s; start the job again", j.Node, at.Format(time.RFC3339))}
	return j
}

// List returns the recorded jobs, newest first, at most limit.
func (m *Manager) List(ctx context.Context, limit int) ([]Job, error) {
	all, err := m.all(ctx)
	if err != nil {
		return nil, err
	}
	sort.Slice(all, func(i, k int) bool { return all[i].StartedAt.After(all[k].StartedAt) })
	if len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// all reads every job record (this node's own from memory).
func (m *Manager) all(ctx context.Context) ([]Job, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	keys, err := m.cfg.KV.Keys(ctx, keyPrefix)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	now := time.Now()
	out := make([]Job, 0, len(keys))
	for _, k := range keys {
		id := k[len(keyPrefix):]
		if t := m.tracked(id); t != nil {
			out = append(out, t.snapshot())
			continue
		}
		e, err := m.cfg.KV.Get(ctx, k)
		if errors.Is(err, pathstats.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read job %s: %w", id, err)
		}
		var j Job
		if json.Unmarshal(e.Value, &j) != nil {
			m.log.Warn("job record unreadable", "key", k)
			continue
		}
		out = append(out, m.presumed(j, now))
	}
	return out, nil
}

// prune deletes finished (or presumed failed) jobs older than Retain, and
// forgets this node's own finished jobs after the same time.
func (m *Manager) prune() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*m.cfg.Timeout)
	defer cancel()
	all, err := m.all(ctx)
	if err != nil {
		m.log.Warn("prune jobs", "err", err)
		return
	}
	cutoff := time.Now().Add(-m.cfg.Retain)
	for _, j := range all {
		if j.FinishedAt == nil || !j.FinishedAt.Before(cutoff) {
			continue
		}
		if err := m.cfg.KV.Delete(ctx, keyPrefix+j.ID); err != nil {
			m.log.Warn("prune job", "job", j.ID, "err", err)
			return
		}
		m.mu.Lock()
		delete(m.local, j.ID)
		m.mu.Unlock()
	}
}

// Follow returns, for a job started on this node, a function that waits
// until the job's record is no longer at version v (or ctx ends) and
// returns it with its current version (start with v = 0); ok is false for
// a job of another node.
func (m *Manager) Follow(id string) (next func(ctx context.Context, v uint64) (Job, uint64), ok bool) {
	t := m.tracked(id)
	if t == nil {
		return nil, false
	}
	return t.next, true
}

func (m *Manager) tracked(id string) *tracked {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.local[id]
}

// newID returns a random job id: 16 lowercase hex digits.
func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("job id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ValidID reports whether id has the form of a job id (16 lowercase hex
// digits).
func ValidID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
