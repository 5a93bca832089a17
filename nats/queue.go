package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pathstats/pathstats"
)

var _ pathstats.Queue = (*Queue)(nil)

// Defaults of QueueConfig.
const (
	DefaultStream          = "PATHSTATS_BATCHES"
	DefaultSubject         = "pathstats.batches"
	DefaultDurable         = "pathstats-aggregator"
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultAckWait         = 30 * time.Second
)

// ackTimeout bounds the acknowledgement round trip of Message.Ack.
const ackTimeout = 5 * time.Second

// QueueConfig names the stream and consumer and sets their limits. Zero
// values take the defaults.
type QueueConfig struct {
	Stream          string        // default "PATHSTATS_BATCHES"
	Subject         string        // default "pathstats.batches"
	Durable         string        // durable pull consumer, default "pathstats-aggregator"
	Replicas        int           // default 1 (3 on a cluster)
	DuplicateWindow time.Duration // Nats-Msg-Id dedup window, default 2m
	AckWait         time.Duration // redelivery after an unacknowledged fetch, default 30s
	MaxDeliver      int           // 0 or -1: unlimited
	MaxBytes        int64         // 0 or -1: unlimited; when full, Publish fails (discard new)
	// NakDelay delays the redelivery of a Nak'd message (default 0: at once).
	NakDelay time.Duration
}

func (c QueueConfig) withDefaults() QueueConfig {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = -1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = -1
	}
	return c
}

func (c QueueConfig) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       c.Stream,
		Subjects:   []string{c.Subject},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   c.Replicas,
		Duplicates: c.DuplicateWindow,
		MaxBytes:   c.MaxBytes,
		MaxMsgs:    -1,
		MaxAge:     0,
		// Never drop stored batches to make room: refuse new ones instead.
		Discard: jetstream.DiscardNew,
		// The default persist mode writes before the PubAck; the async
		// mode would lose acknowledged batches on kill -9.
		PersistMode: jetstream.DefaultPersistMode,
	}
}

func (c QueueConfig) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       c.Durable,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxDeliver,
	}
}

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
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, cfg.consumerConfig())
	if err != nil {
		return nil, fmt.Errorf("open queue: create consumer %s: %w", cfg.Durable, classify(err))
	}
	return &Queue{cfg: cfg, nc: nc, js: js, cons: cons}, nil
}

// errCodeStreamCreate is JetStream's "error creating store for stream".
const errCodeStreamCreate jetstream.ErrorCode = 10049

// ensureStream creates or updates the stream. A concurrent creation by
// another node ("name already in use") is retried as an update. So is a
// store creation error: after the last stream of an account is deleted the
// server removes the account's empty directories in the background, and a
// stream created at that moment fails (nats-server 2.15).
func ensureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if _, err = js.CreateOrUpdateStream(ctx, sc); !retryStream(err) {
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

func retryStream(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStreamCreate
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

func connectURL(ctx context.Context, url string) (*natsgo.Conn, error) {
	log := slog.Default().With("component", "nats")
	opts := []natsgo.Option{
		natsgo.Name("pathstats"),
		natsgo.Timeout(5 * time.Second),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(time.Second),
		natsgo.PingInterval(10 * time.Second),
		natsgo.MaxPingsOutstanding(3),
		// Fail publishes at once while disconnected instead of buffering.
		natsgo.ReconnectBufSize(-1),
		natsgo.DisconnectErrHandler(func(nc *natsgo.Conn, err error) {
			if !nc.IsClosed() {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	}
	type result struct {
		nc  *natsgo.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := natsgo.Connect(url, opts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connect nats: %w", classify(r.err))
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect nats: %w", classify(ctx.Err()))
	}
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
// delivery plus delivered and unacknowledged.
func (q *Queue) Pending(ctx context.Context) (int64, error) {
	info, err := q.cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("queue pending: %w", classify(err))
	}
	return int64(info.NumPending) + int64(info.NumAckPending), nil
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
