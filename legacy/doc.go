// Package legacy is the legacy live-counter system: the migration plan's
// "PathCollector Durable Object" and its PathAggregator, built on purpose as
// the actor-per-path design the migration retires (DESIGN §2), plus the tools
// that retire it (export, batch cleanup, decommission).
//
// Only cmd/pathstats imports this package, so deleting it and its wiring
// lines (the plan's Task 7) leaves a building project.
//
// # Actors
//
// Every normalised path has one actor, addressed by name the way a Durable
// Object is addressed by idFromName: Name(path) is the lowercase hex of the
// first 16 bytes of sha256("PathCollector:" + path). An actor owns its state
// (path, last proxyId, requests, errors = 5xx, clientErrors = 4xx,
// lastAccessed in unix ms, and hourly counters {hourBucket, requests, errors,
// clientErrors} for every hour bucket >= HourBucket(now-48h); older hours are
// dropped) and applies messages one at a time, in order, from a bounded
// mailbox read by its own goroutine. Reads (the fan-out) and state snapshots
// (the write-behind flush) are requests through the same mailbox (a marker
// message naming the request), so they see every increment sent before them.
//
// An awake actor with an empty mailbox parks on a bell instead of the
// mailbox, so Observe's send never wakes a goroutine on the request path:
// Observe queues the parked actor on a lock-free list and one ringer
// goroutine rings the queued actors every 250µs; each wake-up then handles
// every increment that arrived meanwhile. Requests ring at once.
//
// An actor hibernates after IdleTimeout (real time) without messages: its
// goroutine exits and its mailbox is released; the state stays in memory. The
// next increment wakes it (new mailbox, new goroutine); a read of a
// hibernated actor is answered from its state under the actor's lock,
// loading the state from storage first when it was never loaded.
//
// # Storage
//
// The system keeps its own SQLite database, <Dir>/legacy.db (WAL): one row
// per instance (the instance index, keyed by name, with the state and the
// hourly counters as a compact blob) and a meta table holding the
// decommissioned flag. On Open only the index (name, path) is read; each
// actor's state is loaded lazily, the first time the actor is woken or read.
//
// Persistence is write-behind: every FlushInterval the states of the actors
// that received increments since the last flush are snapshotted through
// their mailboxes and written in one transaction. An increment accepted by
// Observe before a flush starts is in that flush, so a kill -9 loses at most
// the increments of the last FlushInterval (plus the flush in progress);
// Close flushes everything.
//
// # Observe
//
// Observe is the recorder's dual-write tee. It never blocks on an actor or
// on storage: it finds the actor with a lock-free read of an open-addressing
// index and does a non-blocking send of a 16-byte message (pointer-free, so a
// mailbox is one allocation the GC does not scan); a full mailbox drops the
// increment and counts it (pathstats_legacy_dropped_total). It does not
// allocate for an existing awake actor. A new path or a sleeping actor takes
// a short lock to create or wake it. After Close or Decommission it does
// nothing.
//
// # Reads and retirement
//
// Paths is the plan's PathAggregator.getAllPathsDetails: it asks every actor
// for its totals over the same 24-hour window as the new pipeline (hour
// buckets >= HourBucket(now-24h)), 64 requests in flight, then filters, sorts
// and pages. It is slow by design and is not cached. Handlers serves the
// /api/admin/paths/do/* endpoints; Decommission persists a flag, after which
// the system stays off across restarts and every handler answers 410 GONE.
package legacy
