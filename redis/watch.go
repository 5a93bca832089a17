package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pathstats/pathstats"
)

// Watch sends key's current entry (if any) and then its changes, polling
// every PollInterval: a new revision sends the value, a deletion sends a
// Deleted entry with the deletion's revision. Changes between two polls
// collapse into the last one. The channel closes when ctx ends or the KV
// closes; read errors are logged and polling goes on.
func (k *KV) Watch(ctx context.Context, key string) (<-chan pathstats.KVEntry, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed.Err() != nil {
		return nil, fmt.Errorf("kv watch %q: kv closed", key)
	}
	ch := make(chan pathstats.KVEntry)
	k.wg.Add(1)
	go k.watchLoop(ctx, key, ch)
	return ch, nil
}

// watcher is the state of one watch: the last revision sent, 0 when the
// key is absent.
type watcher struct {
	k       *KV
	key     string
	out     chan<- pathstats.KVEntry
	rev     uint64
	failing bool
}

func (k *KV) watchLoop(ctx context.Context, key string, ch chan pathstats.KVEntry) {
	defer k.wg.Done()
	defer close(ch)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(k.closed, cancel)
	defer stop()

	w := &watcher{k: k, key: key, out: ch}
	t := time.NewTicker(k.opts.PollInterval)
	defer t.Stop()
	for {
		if !w.poll(ctx) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// poll reads the key once and sends what changed; false when ctx ended.
func (w *watcher) poll(ctx context.Context) bool {
	e, err := w.read(ctx)
	if w.noteErr(ctx, err) {
		return ctx.Err() == nil
	}
	if e.Revision == w.rev || (e.Deleted && w.rev == 0) {
		return true
	}
	select {
	case w.out <- e:
		w.rev = e.Revision
		if e.Deleted {
			w.rev = 0
		}
		return true
	case <-ctx.Done():
		return false
	}
}

// read returns the key's entry, or a Deleted entry when it is absent (with
// the deletion revision when this watcher saw it present).
func (w *watcher) read(ctx context.Context) (pathstats.KVEntry, error) {
	revStr, err := w.k.client.HGet(ctx, w.k.dataKey(w.key), "rev").Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return w.deleted(ctx)
	case err != nil:
		return pathstats.KVEntry{}, classify(err)
	}
	if rev, perr := strconv.ParseUint(revStr, 10, 64); perr == nil && rev == w.rev {
		return pathstats.KVEntry{Key: w.key, Revision: rev}, nil
	}
	e, err := w.k.Get(ctx, w.key)
	if errors.Is(err, pathstats.ErrNotFound) {
		return w.deleted(ctx)
	}
	return e, err
}

// deleted returns a Deleted entry; its revision is the tombstone's, or the
// store counter's (at or after the deletion) once the tombstone expired.
func (w *watcher) deleted(ctx context.Context) (pathstats.KVEntry, error) {
	e := pathstats.KVEntry{Key: w.key, Deleted: true}
	if w.rev == 0 {
		return e, nil
	}
	rev, err := w.k.client.Get(ctx, w.k.tombKey(w.key)).Uint64()
	if errors.Is(err, goredis.Nil) || (err == nil && rev <= w.rev) {
		rev, err = w.k.client.Get(ctx, w.k.counter).Uint64()
	}
	if err != nil {
		return pathstats.KVEntry{}, classify(err)
	}
	e.Revision = rev
	return e, nil
}

// noteErr logs the start and end of a run of read errors and reports
// whether err is set.
func (w *watcher) noteErr(ctx context.Context, err error) bool {
	switch {
	case err != nil && ctx.Err() == nil && !w.failing:
		w.failing = true
		w.k.log.Warn("kv watch: read failed, retrying", "key", w.key, "err", err)
	case err == nil && w.failing:
		w.failing = false
		w.k.log.Info("kv watch: reads work again", "key", w.key)
	}
	return err != nil
}
