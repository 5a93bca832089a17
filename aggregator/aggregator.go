// Package aggregator applies queued batches to the SQL store exactly once:
// many messages per transaction, batch ids in a ledger within the same
// transaction, acknowledgement only after commit, undecodable messages kept
// aside as dead letters.
package aggregator

import (
	"context"
	"log/slog"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/lograte"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures an Aggregator. Zero values take the defaults.
type Config struct {
	// MaxMessages per transaction (default 1024).
	MaxMessages int
	// FetchWait bounds how long a fetch waits for messages (default 200ms).
	FetchWait time.Duration
	// LedgerTTL is how long batch ids are kept (default 48h; must outlive
	// any retry horizon).
	LedgerTTL time.Duration
	// LagInterval is how often the consumer lag is read (default 2s).
	LagInterval time.Duration
	Logger      *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxMessages <= 0 {
		c.MaxMessages = 1024
	}
	if c.FetchWait <= 0 {
		c.FetchWait = 200 * time.Millisecond
	}
	if c.LedgerTTL <= 0 {
		c.LedgerTTL = 48 * time.Hour
	}
	if c.LagInterval <= 0 {
		c.LagInterval = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Aggregator consumes batches from a queue into a store.
type Aggregator struct {
	cfg   Config
	queue pathstats.Queue
	store pathstats.StatsStore
	m     *metrics
	lim   lograte.Limiter // one line per operation's failures, dead letters
}

// New returns an aggregator; reg may be nil.
func New(cfg Config, q pathstats.Queue, s pathstats.StatsStore, reg prometheus.Registerer) *Aggregator {
	cfg.setDefaults()
	return &Aggregator{cfg: cfg, queue: q, store: s, m: newMetrics(reg)}
}

// Run consumes until ctx ends.
func (a *Aggregator) Run(ctx context.Context) {
	go a.watchLag(ctx)
	go a.pruneLedger(ctx)
	backoff := 100 * time.Millisecond
	// A step is never cut short by ctx: messages fetched and then
	// abandoned would only come back after the ack wait. A step ends within
	// FetchWait plus one transaction, so stopping stays prompt.
	stepCtx := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		if err := a.Step(stepCtx); err != nil {
			if ctx.Err() != nil {
				return
			}
			// Counted and logged where it failed; retried after backoff.
			a.cfg.Logger.Debug("aggregator step failed; retrying", "err", err, "backoff", backoff)
			sleep(ctx, backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// Step fetches one round of messages and applies them in one transaction.
func (a *Aggregator) Step(ctx context.Context) error {
	_, err := a.step(ctx, a.cfg.FetchWait)
	return err
}

func (a *Aggregator) step(ctx context.Context, wait time.Duration) (int, error) {
	msgs, err := a.queue.Fetch(ctx, a.cfg.MaxMessages, wait)
	if err != nil {
		a.fail("fetch", err)
		return 0, err
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	return len(msgs), a.apply(ctx, msgs)
}

// Drain applies messages until a fetch waiting quiet finds none: after the
// producers stopped, the queue is then empty (used at graceful shutdown).
func (a *Aggregator) Drain(ctx context.Context, quiet time.Duration) error {
	total := 0
	for {
		n, err := a.step(ctx, quiet)
		if err != nil {
			return err
		}
		total += n
		if n == 0 {
			a.cfg.Logger.Debug("drained queue", "messages", total)
			return nil
		}
	}
}

func (a *Aggregator) apply(ctx context.Context, msgs []pathstats.Message) error {
	a.m.consumed.Add(float64(len(msgs)))
	batches := make([]*pathstats.Batch, 0, len(msgs))
	var good, bad []pathstats.Message
	var dead []pathstats.DeadLetter
	for _, m := range msgs {
		b, err := pathstats.DecodeBatch(m.Data())
		if err != nil {
			bad = append(bad, m)
			dead = append(dead, pathstats.DeadLetter{MsgID: m.ID(), Reason: err.Error(), Payload: m.Data(), ReceivedAt: time.Now()})
			continue
		}
		good = append(good, m)
		batches = append(batches, b)
	}
	start := time.Now()
	res, err := a.store.Apply(ctx, batches, dead)
	a.m.applySeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		a.fail("apply", err, "messages", len(msgs))
		for _, m := range msgs {
			_ = m.Nak()
		}
		return err
	}
	a.m.applied.Add(float64(res.Applied))
	a.m.duplicates.Add(float64(res.Duplicates))
	a.m.rows.Add(float64(res.Rows))
	a.m.events.Add(float64(res.Events))
	a.m.dead.Add(float64(len(dead)))
	committed := time.Now().UnixMilli()
	for _, b := range batches {
		if b.CreatedMs > 0 {
			a.m.delay.Observe(float64(committed-b.CreatedMs) / 1000)
		}
	}
	for _, m := range good {
		if err := m.Ack(); err != nil {
			// Committed already: a redelivery is skipped by the ledger.
			a.fail("ack", err, "msgId", m.ID())
		}
	}
	for i, m := range bad {
		a.lim.Error(a.cfg.Logger, "dead-lettered undecodable message", "msgId", m.ID(), "reason", dead[i].Reason)
		if err := m.Term(); err != nil {
			a.fail("term", err, "msgId", m.ID())
		}
	}
	return nil
}

// fail counts a failed operation (errors_total{op}) and logs it,
// rate-limited per operation.
func (a *Aggregator) fail(op string, err error, args ...any) {
	a.m.errors.WithLabelValues(op).Inc()
	a.lim.Log(a.cfg.Logger, slog.LevelWarn, op, "aggregator operation failed", append([]any{"op", op, "err", err}, args...)...)
}

func (a *Aggregator) watchLag(ctx context.Context) {
	t := time.NewTicker(a.cfg.LagInterval)
	defer t.Stop()
	for {
		if n, err := a.queue.Pending(ctx); err == nil {
			a.m.lag.Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Aggregator) pruneLedger(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := a.store.PruneLedger(ctx, time.Now().Add(-a.cfg.LedgerTTL))
		if err != nil {
			a.cfg.Logger.Warn("prune ledger failed", "err", err)
			continue
		}
		a.cfg.Logger.Debug("pruned ledger", "rows", n)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
