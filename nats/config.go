package nats

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of QueueConfig.
const (
	DefaultStream          = "PATHSTATS_BATCHES"
	DefaultSubject         = "pathstats.batches"
	DefaultDurable         = "pathstats-aggregator"
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultAckWait         = 30 * time.Second
)

// QueueConfig names the stream and consumer and sets their limits. Zero
// values take the defaults.
type QueueConfig struct {
	Stream          string        // default "PATHSTATS_BATCHES"
	Subject         string        // default "pathstats.batches"
	Durable         string        // durable pull consumer, default "pathstats-aggregator"
	Replicas        int           // default 1 (3 on a cluster)
	DuplicateWindow time.Duration // Nats-Msg-Id dedup window, default 2m
	AckWait         time.Duration // redelivery after an unacknowledged fetch, default 30s
	MaxDeliver      int           // 0 or -1: unlimited (past it a message stays stored, undelivered)
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
