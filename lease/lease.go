// Package lease elects one leader for a singleton job (the snapshotter, …)
// among processes sharing a pathstats.KV.
//
// A lease is the key "lease:<name>" holding {holder, expiresAtMs}. Every
// write is a compare-and-set on the key's revision, so of two contenders at
// most one wins. A holder renews before expiry; once expired, anyone may take
// it over. Expiry is compared on wall clocks, so clocks must agree within a
// small part of the ttl. A holder considers its lease lost at 0.9 × ttl
// after the start of its last successful write (on its own monotonic
// clock), before others may take over.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/lograte"
)

// ErrLost reports that the lease is not (or no longer) held.
var ErrLost = errors.New("lease lost")

// safety: a holder considers its lease over ttl/safety before others may
// take it, leaving its job time to notice.
const safety = 10

// record is the stored value of a lease.
type record struct {
	Holder      string `json:"holder"`
	ExpiresAtMs int64  `json:"expiresAtMs"`
}

// Lease is one contender for a named lease. Its methods are safe for
// concurrent use.
type Lease struct {
	kv     pathstats.KV
	key    string
	holder string
	ttl    time.Duration
	log    *slog.Logger
	lim    lograte.Limiter // warnings repeated every ttl/3 while the KV is down

	mu       sync.Mutex
	held     bool
	rev      uint64    // revision of our record while held
	expires  time.Time // local expiry (monotonic) while held
	other    time.Time // expiry of another holder's record, last seen
	renewErr error     // the last failed renewal since the last successful write
}

// New returns a contender named holder for the lease name; holder must be
// unique among live contenders. A holder equal to the stored one re-takes
// the lease at once, expired or not: reuse a holder only for a process
// that replaces a dead one (serve uses its data dir's node id, guarded by
// the data dir lock).
func New(kv pathstats.KV, name, holder string, ttl time.Duration) *Lease {
	l := &Lease{kv: kv, key: "lease:" + name, holder: holder, ttl: ttl}
	l.SetLogger(slog.Default())
	return l
}

// SetLogger makes the lease log through log (slog.Default() until then).
// Call it before the lease is used.
func (l *Lease) SetLogger(log *slog.Logger) {
	l.log = log.With("component", "lease", "lease", strings.TrimPrefix(l.key, "lease:"), "holder", l.holder)
}

// Key is the KV key of the lease.
func (l *Lease) Key() string { return l.key }

// Held reports whether the lease is held and not past its local expiry.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldLocked(time.Now())
}

func (l *Lease) heldLocked(now time.Time) bool {
	return l.held && now.Before(l.expires)
}

// TryAcquire takes the lease if it is free, expired or already ours, and
// reports whether this contender holds it now. Losing a race is not an
// error.
func (l *Lease) TryAcquire(ctx context.Context) (bool, error) {
	e, err := l.kv.Get(ctx, l.key)
	if errors.Is(err, pathstats.ErrNotFound) {
		return l.write(ctx, 0, true)
	}
	if err != nil {
		return l.Held(), fmt.Errorf("acquire %s: %w", l.key, err)
	}
	var rec record
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		l.log.Warn("lease record unreadable, taking over", "err", err)
	} else if rec.Holder != l.holder && time.Now().UnixMilli() < rec.ExpiresAtMs {
		l.mu.Lock()
		l.held = false
		l.other = time.UnixMilli(rec.ExpiresAtMs)
		l.mu.Unlock()
		return false, nil
	}
	return l.write(ctx, e.Revision, false)
}

// write stores a fresh record of ours by Create (create) or by Update from
// rev, and records the outcome. A conflict means another contender won.
func (l *Lease) write(ctx context.Context, rev uint64, create bool) (bool, error) {
	l.mu.Lock()
	before := l.rev
	l.mu.Unlock()
	start := time.Now()
	value, err := json.Marshal(record{Holder: l.holder, ExpiresAtMs: start.Add(l.ttl).UnixMilli()})
	if err != nil {
		return false, err
	}
	var nrev uint64
	if create {
		nrev, err = l.kv.Create(ctx, l.key, value)
	} else {
		nrev, err = l.kv.Update(ctx, l.key, value, rev)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.held, l.rev, l.expires = true, nrev, start.Add(l.ttl-l.ttl/safety)
		l.renewErr = nil
		return true, nil
	case errors.Is(err, pathstats.ErrConflict):
		if l.rev == before { // not a concurrent write of ours that won
			l.held = false
		}
		return false, nil
	default:
		// The write may or may not have happened; keep what we had.
		return l.heldLocked(time.Now()), fmt.Errorf("write %s: %w", l.key, err)
	}
}

// Renew extends a held lease by ttl. It returns an error wrapping ErrLost
// when the lease is not ours any more (or its local expiry passed without
// a successful renewal), saying why, and other errors (KV unreachable)
// while it is still held.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	held, rev := l.heldLocked(time.Now()), l.rev
	l.mu.Unlock()
	if !held {
		return fmt.Errorf("renew %s: %w: %s", l.key, ErrLost, l.markLost())
	}
	ok, err := l.write(ctx, rev, false)
	why := ""
	if err == nil && !ok {
		// Conflict: an earlier write whose answer we missed may have
		// succeeded; the lease is still ours if the record names us.
		ok, why, err = l.reclaim(ctx)
	}
	switch {
	case err != nil && l.Held():
		l.noteRenewErr(err)
		return fmt.Errorf("renew %s: %w", l.key, err)
	case err != nil:
		return fmt.Errorf("renew %s: %w: renew failed: %w", l.key, ErrLost, err)
	case !ok:
		return fmt.Errorf("renew %s: %w: %s", l.key, ErrLost, why)
	}
	return nil
}

// reclaim takes the lease again only if the stored record is ours; when it
// is not, why says whose it is.
func (l *Lease) reclaim(ctx context.Context) (ok bool, why string, err error) {
	e, err := l.kv.Get(ctx, l.key)
	if errors.Is(err, pathstats.ErrNotFound) {
		return false, "lease record deleted", nil
	}
	if err != nil {
		return false, "", err
	}
	var rec record
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return false, fmt.Sprintf("lease record unreadable (%v)", err), nil
	}
	if rec.Holder != l.holder {
		return false, fmt.Sprintf("another holder took it (holder %q)", rec.Holder), nil
	}
	ok, err = l.write(ctx, e.Revision, false)
	if err == nil && !ok {
		why = "another holder took it (record changed while renewing)"
	}
	return ok, why, err
}

// noteRenewErr remembers a failed renewal of a lease still held, to say
// why if the lease then expires.
func (l *Lease) noteRenewErr(err error) {
	l.mu.Lock()
	l.renewErr = err
	l.mu.Unlock()
}

// markLost marks the lease not held and says why it is lost.
func (l *Lease) markLost() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	why := "not held (released, or lost before)"
	if l.held {
		why = "not renewed before its local expiry"
		if l.renewErr != nil {
			why += "; last renew error: " + l.renewErr.Error()
		}
	}
	l.held = false
	return why
}

// Release gives up a held lease at once so another contender can take it:
// the record is replaced by an expired one, only if it is still ours.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	held, rev := l.held, l.rev
	l.held = false
	l.mu.Unlock()
	if !held {
		return nil
	}
	value, err := json.Marshal(record{Holder: l.holder})
	if err != nil {
		return err
	}
	_, err = l.kv.Update(ctx, l.key, value, rev)
	if err != nil && !errors.Is(err, pathstats.ErrConflict) {
		return fmt.Errorf("release %s: %w", l.key, err)
	}
	return nil
}
