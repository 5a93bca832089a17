package migration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
)

var _ pathstats.ConfigUpdater = (*Store)(nil)

const (
	// defaultPollInterval is StoreOptions.PollInterval's default.
	defaultPollInterval = time.Second
	// maxUpdateTries bounds compare-and-set retries of one Update.
	maxUpdateTries = 20
	// safetyPollEvery: while the watch is up, the key is still read every
	// this many poll intervals, in case the watch stalls silently.
	safetyPollEvery = 10
	// kvReadTimeout bounds one read of the key by Run or a GET.
	kvReadTimeout = 2 * time.Second
)

// StoreOptions tune a Store. Zero values take the defaults.
type StoreOptions struct {
	Now          func() time.Time // clock (default time.Now)
	Logger       *slog.Logger     // default slog.Default()
	PollInterval time.Duration    // read interval while the watch is down (default 1s)
}

// Store keeps the migration config in KV under pathstats.MigrationConfigKey
// (JSON) and records every change in a pathstats.ConfigHistory. Update is a
// compare-and-set on the key's revision, retried on conflicts, so concurrent
// updates of different fields all survive. Run follows the key; Current is
// the last good config this node holds.
type Store struct {
	kv   pathstats.KV
	hist pathstats.ConfigHistory
	now  func() time.Time
	log  *slog.Logger
	poll time.Duration

	cur      atomic.Pointer[pathstats.MigrationConfig]
	mu       sync.Mutex // guards rev, loaded, subs and the swap of cur
	rev      uint64     // KV revision of cur (0: never loaded)
	loaded   bool
	subs     []chan struct{}
	watching atomic.Bool
}

// NewStore returns a Store on kv; hist may be nil (no history is kept).
// Current serves pathstats.DefaultMigrationConfig until a config is loaded
// (by Run, Update or a GET through the handlers).
func NewStore(kv pathstats.KV, hist pathstats.ConfigHistory, opts StoreOptions) *Store {
	s := &Store{kv: kv, hist: hist, now: opts.Now, log: opts.Logger, poll: opts.PollInterval}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "migration-config")
	if s.poll <= 0 {
		s.poll = defaultPollInterval
	}
	def := pathstats.DefaultMigrationConfig()
	s.cur.Store(&def)
	return s
}

// Current returns the last good config this node holds, or the default (0%)
// when none was ever loaded. Its slices are shared: treat them as read-only.
func (s *Store) Current() pathstats.MigrationConfig {
	return *s.cur.Load()
}

// Subscribe returns a channel that receives a value (coalesced, never
// blocking the Store) whenever the held config changes.
func (s *Store) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs = append(s.subs, ch)
	s.mu.Unlock()
	return ch
}

// Update implements pathstats.ConfigUpdater. It reads the config (the
// default, version 0, when absent), checks ifMatch (> 0: the version must
// equal it, else EPreconditionFailed), applies mutate to a copy, validates
// and normalises the result, sets Version to the old one plus one and
// UpdatedAt to now, and stores it with compare-and-set, re-reading and
// retrying on conflicts (EConflict after 20 tries). A change that leaves
// every setting as it was stores nothing and returns the current config.
// The change is then recorded in the history with before and after.
func (s *Store) Update(ctx context.Context, ifMatch uint64, actor, source, reason string,
	mutate func(*pathstats.MigrationConfig) error) (pathstats.MigrationConfig, error) {
	for range maxUpdateTries {
		old, rev, err := s.read(ctx)
		if err != nil {
			return pathstats.MigrationConfig{}, fmt.Errorf("update migration config: %w", err)
		}
		if ifMatch > 0 && old.Version != ifMatch {
			return pathstats.MigrationConfig{}, pathstats.Errorf(pathstats.EPreconditionFailed,
				"migration config is at version %d, not %d", old.Version, ifMatch)
		}
		next := cloneConfig(old)
		if err := mutate(&next); err != nil {
			return pathstats.MigrationConfig{}, err
		}
		if next, err = normalizeConfig(next); err != nil {
			return pathstats.MigrationConfig{}, err
		}
		if sameSettings(old, next) {
			s.apply(old, rev)
			return old, nil
		}
		at := s.now().UTC()
		next.Version = old.Version + 1
		next.UpdatedAt = at.Format(time.RFC3339)
		nrev, err := s.write(ctx, next, rev)
		if errors.Is(err, pathstats.ErrConflict) {
			continue
		}
		if err != nil {
			return pathstats.MigrationConfig{}, fmt.Errorf("update migration config: %w", err)
		}
		s.apply(next, nrev)
		s.record(ctx, pathstats.ConfigChange{At: at, Actor: actor, Source: source, Reason: reason, Before: old, After: next})
		s.log.Info("migration config changed", "version", next.Version, "percentage", next.NewAPIPercentage,
			"actor", actor, "source", source, "reason", reason)
		return next, nil
	}
	return pathstats.MigrationConfig{}, pathstats.Errorf(pathstats.EConflict,
		"migration config changed concurrently %d times; try again", maxUpdateTries)
}

// read returns the stored config and its revision; the default and
// revision 0 when the key is absent.
func (s *Store) read(ctx context.Context) (pathstats.MigrationConfig, uint64, error) {
	e, err := s.kv.Get(ctx, pathstats.MigrationConfigKey)
	if errors.Is(err, pathstats.ErrNotFound) {
		return pathstats.DefaultMigrationConfig(), 0, nil
	}
	if err != nil {
		return pathstats.MigrationConfig{}, 0, err
	}
	c, err := decodeConfig(e.Value)
	if err != nil {
		return pathstats.MigrationConfig{}, 0, fmt.Errorf("revision %d: %w", e.Revision, err)
	}
	return c, e.Revision, nil
}

// write stores c with compare-and-set against rev (0: the key must be
// absent) and returns the new revision.
func (s *Store) write(ctx context.Context, c pathstats.MigrationConfig, rev uint64) (uint64, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("encode: %w", err)
	}
	if rev == 0 {
		return s.kv.Create(ctx, pathstats.MigrationConfigKey, data)
	}
	return s.kv.Update(ctx, pathstats.MigrationConfigKey, data, rev)
}

// record appends a change to the history; a failure is logged, since the
// config itself is already stored.
func (s *Store) record(ctx context.Context, c pathstats.ConfigChange) {
	if s.hist == nil {
		return
	}
	if _, err := s.hist.AppendConfigChange(context.WithoutCancel(ctx), c); err != nil {
		s.log.Error("record migration config change", "version", c.After.Version, "err", err)
	}
}

// decodeConfig parses a stored config; lists are never nil.
func decodeConfig(data []byte) (pathstats.MigrationConfig, error) {
	var c pathstats.MigrationConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("decode migration config: %w", err)
	}
	return cloneConfig(c), nil
}

// apply makes c (stored at KV revision rev) the held config unless the held
// one is newer. rev 0 (key absent) only counts when nothing was loaded yet.
func (s *Store) apply(c pathstats.MigrationConfig, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded && rev <= s.rev {
		return
	}
	s.loaded = true
	s.rev = rev
	old := s.cur.Load()
	s.cur.Store(&c)
	if sameSettings(*old, c) && old.Version == c.Version {
		return
	}
	for _, ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// refresh reads the key and applies what it finds; on failure the held
// config stays.
func (s *Store) refresh(ctx context.Context) (pathstats.MigrationConfig, error) {
	ctx, cancel := context.WithTimeout(ctx, kvReadTimeout)
	defer cancel()
	c, rev, err := s.read(ctx)
	if err != nil {
		return s.Current(), err
	}
	s.apply(c, rev)
	return s.Current(), nil
}

// Run follows the key until ctx ends: a KV watch applies changes as they
// happen; while the watch is down the key is read every PollInterval (and
// every ten intervals while it is up, in case it stalls). When KV is
// unreachable the held config stays. It returns nil when ctx ends.
func (s *Store) Run(ctx context.Context) error {
	if _, err := s.refresh(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("load migration config", "err", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.watchLoop(ctx)
	}()
	defer func() { <-done }()
	t := time.NewTicker(s.poll)
	defer t.Stop()
	failing := false
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if s.watching.Load() && n%safetyPollEvery != 0 {
			continue
		}
		_, err := s.refresh(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			s.log.Warn("read migration config; keeping the last good one", "err", err)
			failing = true
		case err == nil && failing:
			s.log.Info("migration config readable again")
			failing = false
		}
	}
}

// watchLoop keeps a watch on the key open, re-opening it after a poll
// interval when it fails or ends.
func (s *Store) watchLoop(ctx context.Context) {
	for ctx.Err() == nil {
		s.watch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.poll):
		}
	}
}

// watch applies the entries of one watch until its channel closes.
func (s *Store) watch(ctx context.Context) {
	ch, err := s.kv.Watch(ctx, pathstats.MigrationConfigKey)
	if err != nil {
		s.log.Debug("watch migration config", "err", err)
		return
	}
	s.watching.Store(true)
	defer s.watching.Store(false)
	for e := range ch {
		if e.Deleted {
			s.apply(pathstats.DefaultMigrationConfig(), e.Revision)
			continue
		}
		c, err := decodeConfig(e.Value)
		if err != nil {
			s.log.Error("ignore undecodable migration config", "revision", e.Revision, "err", err)
			continue
		}
		s.apply(c, e.Revision)
	}
}
