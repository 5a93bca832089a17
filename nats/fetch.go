package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pathstats/pathstats"
)

// Fetch returns up to max messages, waiting at most wait for the first one.
// It returns as soon as some messages are available (it does not wait to
// fill max); no message within wait gives an empty slice and nil error.
func (q *Queue) Fetch(ctx context.Context, max int, wait time.Duration) ([]pathstats.Message, error) {
	if max <= 0 {
		return nil, fmt.Errorf("fetch: max must be positive, got %d", max)
	}
	msgs, err := q.fetchNoWait(ctx, max)
	if err != nil || len(msgs) > 0 || wait <= 0 {
		return msgs, err
	}
	first, err := q.fetchFirst(ctx, wait)
	if err != nil || len(first) == 0 {
		return first, err
	}
	if max == 1 {
		return first, nil
	}
	more, err := q.fetchNoWait(ctx, max-1)
	if err != nil {
		// The first message is delivered: hand it over rather than leave it
		// to the ack wait; the error will show again on the next call.
		return first, nil
	}
	return append(first, more...), nil
}

// fetchNoWait takes what is available now, up to max.
func (q *Queue) fetchNoWait(ctx context.Context, max int) ([]pathstats.Message, error) {
	batch, err := q.cons.FetchNoWait(max)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", classify(err))
	}
	return q.collect(ctx, batch)
}

// fetchFirst waits up to wait for one message.
func (q *Queue) fetchFirst(ctx context.Context, wait time.Duration) ([]pathstats.Message, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	batch, err := q.cons.Fetch(1, jetstream.FetchContext(wctx))
	if err != nil {
		if ctx.Err() == nil && wctx.Err() != nil {
			return nil, nil // wait too short to even ask
		}
		return nil, fmt.Errorf("fetch: %w", classify(err))
	}
	msgs, err := q.collect(ctx, batch)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		// Our own wait ran out just before the server's expiry answer.
		return msgs, nil
	}
	return msgs, err
}

// collect drains a fetch result, returning early when ctx is done.
func (q *Queue) collect(ctx context.Context, batch jetstream.MessageBatch) ([]pathstats.Message, error) {
	var out []pathstats.Message
	ch := batch.Messages()
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				if err := batch.Error(); err != nil {
					return out, fmt.Errorf("fetch: %w", classify(err))
				}
				return out, nil
			}
			out = append(out, q.wrap(m))
		case <-ctx.Done():
			return nil, fmt.Errorf("fetch: %w", ctx.Err())
		}
	}
}

func (q *Queue) wrap(m jetstream.Msg) *message {
	return &message{m: m, id: m.Headers().Get(jetstream.MsgIDHeader), nakDelay: q.cfg.NakDelay}
}

// message is a pathstats.Message backed by a JetStream message.
type message struct {
	m        jetstream.Msg
	id       string
	nakDelay time.Duration
}

func (m *message) ID() string   { return m.id }
func (m *message) Data() []byte { return m.m.Data() }

// Ack acknowledges the message without waiting for the server: acks of a
// transaction's messages go out back to back instead of one round trip
// each. An ack that is lost makes the message come back after the ack wait;
// the aggregator's ledger then skips it.
func (m *message) Ack() error {
	if err := m.m.Ack(); err != nil {
		return fmt.Errorf("ack %s: %w", m.id, classify(err))
	}
	return nil
}

// Nak asks for redelivery (after QueueConfig.NakDelay).
func (m *message) Nak() error {
	var err error
	if m.nakDelay > 0 {
		err = m.m.NakWithDelay(m.nakDelay)
	} else {
		err = m.m.Nak()
	}
	if err != nil {
		return fmt.Errorf("nak %s: %w", m.id, classify(err))
	}
	return nil
}

// Term drops the message for good.
func (m *message) Term() error {
	if err := m.m.Term(); err != nil {
		return fmt.Errorf("term %s: %w", m.id, classify(err))
	}
	return nil
}
