package pathstats

import (
	"context"
	"time"
)

// Message is one queued batch as delivered by a Queue.
type Message interface {
	// ID is the message id the publisher set (the batch id).
	ID() string
	Data() []byte
	// Ack confirms the message was applied. It may not wait for the
	// queue: a lost ack means one redelivery, which the ledger skips.
	Ack() error
	// Nak asks for redelivery later (a transient failure).
	Nak() error
	// Term drops the message for good (it can never be applied).
	Term() error
}

// Queue is the durable queue between recorders and the aggregator
// (JetStream, embedded or external).
type Queue interface {
	// Publish stores data durably under msgID (duplicates within the
	// server's window are dropped) and returns once the queue acknowledged.
	Publish(ctx context.Context, msgID string, data []byte) error
	// Fetch returns up to max messages, waiting at most wait for the first.
	Fetch(ctx context.Context, max int, wait time.Duration) ([]Message, error)
	// Pending is the number of messages not yet acknowledged by the consumer.
	Pending(ctx context.Context) (int64, error)
	// Ping checks the queue is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// DeadLetter is a message that could not be applied, kept aside.
type DeadLetter struct {
	MsgID      string
	Reason     string
	Payload    []byte
	ReceivedAt time.Time
}

// ApplyResult tells what a transaction did.
type ApplyResult struct {
	Applied    int   // batches applied
	Duplicates int   // batches skipped because their id was in the ledger
	Rows       int   // hourly rows upserted
	Events     int64 // events in the applied batches
}

// PathTotal is the sum of a path's hourly rows over a window.
type PathTotal struct {
	Path         string
	ProxyID      string
	Requests     int64
	Errors       int64
	ClientErrors int64
	Counts       Counts
	UpdatedAt    time.Time
}

// HourlyRow is one row of the hourly table.
type HourlyRow struct {
	Key
	Counts    Counts
	UpdatedAt time.Time
}

// StatsStore keeps the hourly aggregates (SQLite, PostgreSQL).
type StatsStore interface {
	// Apply applies batches in one transaction: each batch id goes into
	// the ledger, batches whose id is already there are skipped, the rest
	// are upserted into the hourly rows; dead letters are stored too.
	Apply(ctx context.Context, batches []*Batch, dead []DeadLetter) (ApplyResult, error)
	// PathTotals sums rows with fromHour <= hour < toHour per (path, proxyId).
	PathTotals(ctx context.Context, fromHour, toHour int64) ([]PathTotal, error)
	// HourlySeries returns a path's rows (all proxies) in hour order.
	HourlySeries(ctx context.Context, path string, fromHour, toHour int64) ([]HourlyRow, error)
	// DistinctPaths lists distinct (proxyId, path) seen since fromHour.
	DistinctPaths(ctx context.Context, fromHour int64) ([]Key, error)
	// DeadLetters counts the stored dead letters.
	DeadLetters(ctx context.Context) (int64, error)
	// PruneLedger deletes ledger ids applied before t.
	PruneLedger(ctx context.Context, before time.Time) (int64, error)
	Ping(ctx context.Context) error
	Close() error
}

// Recorder records one observed response without blocking the caller.
// proxyID selects the route's counters; path is the raw request path.
type Recorder interface {
	Record(proxyID, path string, status int, latency time.Duration, at time.Time)
}
