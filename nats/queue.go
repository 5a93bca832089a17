package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pathstats/pathstats"
)

var _ pathstats.Queue = (*Queue)(nil)

// Queue is a pathstats.Queue on a JetStream WorkQueue stream.
type Queue struct {
	cfg     QueueConfig
	nc      *natsgo.Conn
	js      jetstream.JetStream
	cons    jetstream.Consumer
	ownConn bool
	once    sync.Once
}

// Open creates (or updates) the stream and the durable consumer on nc and
// returns a Queue using them. Several Open calls on the same names are fine.
// The Queue does not close nc.
func Open(ctx context.Context, nc *natsgo.Conn, cfg QueueConfig) (*Queue, error) {
	cfg = cfg.withDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	if err := ensureStream(ctx, js, cfg.streamConfig()); err != nil {
		return nil, fmt.Errorf("open queue: create stream %s: %w", cfg.Stream, classify(err))
	}
	if err := waitStreamLeader(ctx, js, cfg.Stream); err != nil {
		return nil, fmt.Errorf("open queue: stream %s: %w", cfg.Stream, classify(err))
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, cfg.consumerConfig())
	if err != nil {
		return nil, fmt.Errorf("open queue: create consumer %s: %w", cfg.Durable, classify(err))
	}
	return &Queue{cfg: cfg, nc: nc, js: js, cons: cons}, nil
}

// errCodeStreamCreate is JetStream's "error creating store for stream".
const errCodeStreamCreate jetstream.ErrorCode = 10049

// ensureStream creates the stream, or updates it when it exists with
// another configuration (an unchanged stream is left alone: updating it
// while another node adds a consumer races inside nats-server 2.15). A
// concurrent creation by another node ("name already in use") is retried
// the same way. So is a store creation error: after the last stream of an
// account is deleted the server removes the account's empty directories in
// the background, and a stream created at that moment fails (nats-server
// 2.15).
func ensureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		_, err = js.CreateStream(ctx, sc)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = updateIfChanged(ctx, js, sc)
		}
		if !retryStream(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
	return err
}

// updateIfChanged updates an existing stream whose settings differ from sc.
func updateIfChanged(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, sc.Name)
	if err != nil {
		return err
	}
	if sameStream(s.CachedInfo().Config, sc) {
		return nil
	}
	_, err = js.UpdateStream(ctx, sc)
	return err
}

// sameStream compares the settings pathstats chooses.
func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Retention == want.Retention &&
		have.Storage == want.Storage && have.Replicas == want.Replicas && have.Duplicates == want.Duplicates &&
		have.MaxBytes == want.MaxBytes && have.MaxMsgs == want.MaxMsgs && have.Discard == want.Discard &&
		have.PersistMode == want.PersistMode
}

func retryStream(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStreamCreate
}

// leaderWait bounds how long Open waits for a new replicated stream to
// elect its leader.
const leaderWait = 15 * time.Second

// waitStreamLeader waits until the stream has a leader: on a cluster a new
// replicated stream answers "no response from stream" until its replicas
// elected one, so the first publishes would fail. A single server's stream
// has no cluster info and returns at once.
func waitStreamLeader(ctx context.Context, js jetstream.JetStream, name string) error {
	ctx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	for {
		s, err := js.Stream(ctx, name)
		if err == nil {
			info := s.CachedInfo()
			if info.Cluster == nil || info.Cluster.Leader != "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("no leader elected")
			}
			return fmt.Errorf("wait for the stream leader: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// OpenURL connects to an external NATS server or cluster (comma-separated
// nats:// URLs) and opens the queue on it. The connection reconnects for
// ever and is closed by Close.
func OpenURL(ctx context.Context, url string, cfg QueueConfig) (*Queue, error) {
	nc, err := connectURL(ctx, url)
	if err != nil {
		return nil, err
	}
	q, err := Open(ctx, nc, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	q.ownConn = true
	return q, nil
}

// Publish stores data under msgID and returns after the stream's
// acknowledgement. A duplicate of a stored id is acknowledged too. Errors
// meaning the server cannot be reached wrap pathstats.ErrUnavailable; if
// the connection drops while the request is in flight Publish waits for
// ctx's deadline (5s without one), and the message may or may not be
// stored: retry with the same id.
func (q *Queue) Publish(ctx context.Context, msgID string, data []byte) error {
	if msgID == "" {
		return errors.New("publish: empty message id")
	}
	if _, err := q.js.Publish(ctx, q.cfg.Subject, data, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish %s: %w", msgID, classify(err))
	}
	return nil
}

// Pending is the number of messages not yet acknowledged: waiting for
// delivery plus delivered and unacknowledged. It never under-counts a
// message whose Publish returned: on a replicated stream the consumer's
// leader counts from its own replica, which may not have applied the
// newest messages yet, so the count is at least the stream leader's count
// of stored messages (a work queue stores exactly the unacknowledged ones;
// an acknowledgement may take a moment to reach it).
func (q *Queue) Pending(ctx context.Context) (int64, error) {
	info, err := q.cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("queue pending: %w", classify(err))
	}
	n := int64(info.NumPending) + int64(info.NumAckPending)
	stream, err := q.js.Stream(ctx, q.cfg.Stream)
	if err != nil {
		return 0, fmt.Errorf("queue pending: stream info: %w", classify(err))
	}
	return max(n, int64(stream.CachedInfo().State.Msgs)), nil
}

// Ping checks the connection and that JetStream answers.
func (q *Queue) Ping(ctx context.Context) error {
	if !q.nc.IsConnected() {
		return fmt.Errorf("ping nats: %w (%s)", pathstats.ErrUnavailable, q.nc.Status())
	}
	if _, err := q.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("ping nats: %w", classify(err))
	}
	return nil
}

// Close releases the queue and closes the connection if OpenURL made it.
func (q *Queue) Close() error {
	q.once.Do(func() {
		if q.ownConn {
			q.nc.Close()
		}
	})
	return nil
}
