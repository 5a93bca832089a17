package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/archive"
	"github.com/pathstats/pathstats/lease"
)

// Lease names of the archive: "archiver" elects the node that archives
// periodically; "archive-writer" is held around every run and restore, on
// whichever node, so that one process at a time writes the manifests.
const (
	archiverLease     = "archiver"
	archiveWriteLease = "archive-writer"
)

// minRetention is the shortest --retention: the rolling window (24 h) plus
// the open hour stay in SQL.
const minRetention = 25 * time.Hour

// archiving is the archive of one node: the periodic archiver (while this
// node holds the archiver lease) and the admin endpoints.
type archiving struct {
	a      *archive.Archiver
	bucket pathstats.ObjectStore
	url    string
	writer *lease.Lease
	leader *lease.Lease
	log    *slog.Logger
	wait   time.Duration // how long a restore or run waits for the writer lease

	mu       sync.Mutex
	progress func(archive.Progress) // the listener of the operation running
}

// startArchive opens the archive bucket and starts the elected archiver;
// --archive off disables both.
func (s *server) startArchive(ctx context.Context) error {
	if s.cfg.Archive == "off" {
		return nil
	}
	store, ok := s.store.(pathstats.ArchiveStore)
	if !ok {
		return errors.New("--archive: this SQL backend cannot archive (use --archive off)")
	}
	url := s.cfg.Archive
	if url == "" {
		dir, err := filepath.Abs(filepath.Join(s.cfg.DataDir, "archive"))
		if err != nil {
			return fmt.Errorf("--archive: %w", err)
		}
		url = "file://" + dir
	}
	bucket, err := archive.OpenBucket(ctx, url)
	if err != nil {
		return fmt.Errorf("--archive: %w", err)
	}
	arc := &archiving{
		bucket: bucket, url: url, log: s.log.With("component", "archive"), wait: 2 * s.cfg.LeaseTTL,
		writer: lease.New(s.kv, archiveWriteLease, s.node(), s.cfg.LeaseTTL),
		leader: lease.New(s.kv, archiverLease, s.node(), s.cfg.LeaseTTL),
	}
	arc.a, err = archive.New(archive.Config{
		Store: store, Bucket: bucket, Retention: s.cfg.Retention, Logger: s.log, Registerer: s.reg, Progress: arc.report,
	})
	if err != nil {
		bucket.Close()
		return err
	}
	s.archive = arc
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		arc.campaign(s.workers, s.cfg.ArchiveEvery)
	}()
	return nil
}

// campaign runs the archiver every interval while this node holds the
// archiver lease, and releases it at shutdown.
func (a *archiving) campaign(ctx context.Context, every time.Duration) {
	a.leader.Run(ctx, func(ctx context.Context) {
		a.log.Info("archiver elected", "every", every, "archive", a.url)
		for {
			if _, err := a.run(ctx, nil); err != nil && ctx.Err() == nil {
				a.log.Warn("archive run", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	})
	rctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = a.leader.Release(rctx)
}

// run archives what is due, holding the writer lease.
func (a *archiving) run(ctx context.Context, progress func(archive.Progress)) (archive.Result, error) {
	var res archive.Result
	err := a.exclusive(ctx, progress, func(ctx context.Context) error {
		var err error
		res, err = a.a.RunOnce(ctx)
		if res.Parts > 0 || res.Recovered > 0 {
			a.log.Info("archived", "hours", res.Hours, "parts", res.Parts, "rows", res.Rows, "bytes", res.Bytes, "recovered", res.Recovered)
		}
		return err
	})
	return res, err
}

// restore brings hours back into SQL, holding the writer lease.
func (a *archiving) restore(ctx context.Context, from, to int64, hold time.Duration, progress func(archive.Progress)) (archive.RestoreResult, error) {
	var res archive.RestoreResult
	err := a.exclusive(ctx, progress, func(ctx context.Context) error {
		var err error
		res, err = a.a.Restore(ctx, from, to, hold)
		a.log.Info("restored", "hours", res.Hours, "parts", res.Parts, "rows", res.Rows, "err", err)
		return err
	})
	return res, err
}

// exclusive runs fn under the writer lease with progress as the listener.
func (a *archiving) exclusive(ctx context.Context, progress func(archive.Progress), fn func(ctx context.Context) error) error {
	err := a.writer.Do(ctx, a.wait, func(ctx context.Context) error {
		a.mu.Lock()
		a.progress = progress
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			a.progress = nil
			a.mu.Unlock()
		}()
		return fn(ctx)
	})
	if errors.Is(err, lease.ErrBusy) {
		return pathstats.Errorf(pathstats.EConflict, "another archive run or restore is in progress; try again later")
	}
	return err
}

// report forwards the archiver's progress to the current listener.
func (a *archiving) report(p archive.Progress) {
	a.mu.Lock()
	fn := a.progress
	a.mu.Unlock()
	if fn != nil {
		fn(p)
	}
}

func (a *archiving) close() {
	if a != nil {
		_ = a.bucket.Close()
	}
}

// archiveRoutes: GET /api/admin/archive (list), POST …/archive/run and
// POST …/archive/restore (NDJSON progress lines, then the result).
func (s *server) archiveRoutes() map[string]http.Handler {
	if s.archive == nil {
		off := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			api.WriteError(w, pathstats.Errorf(pathstats.ENotFound, "the archive is off (--archive off)"))
		})
		return map[string]http.Handler{"GET /api/admin/archive": off, "POST /api/admin/archive/run": off, "POST /api/admin/archive/restore": off}
	}
	a := s.archive
	return map[string]http.Handler{
		"GET /api/admin/archive": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			from, to, err := hourRange(r, false)
			if err != nil {
				api.WriteError(w, err)
				return
			}
			hours, err := a.a.List(r.Context(), from, to)
			if err != nil {
				api.WriteError(w, pathstats.Errorf(pathstats.EUnavailable, "list the archive: %v", err))
				return
			}
			if hours == nil {
				hours = []archive.HourInfo{}
			}
			api.WriteData(w, http.StatusOK, map[string]any{"archive": a.url, "hours": hours})
		}),
		"POST /api/admin/archive/run": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			streamOp(w, r, func(ctx context.Context, p func(archive.Progress)) (any, error) { return a.run(ctx, p) })
		}),
		"POST /api/admin/archive/restore": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			from, to, err := hourRange(r, true)
			if err != nil {
				api.WriteError(w, err)
				return
			}
			hold, err := holdParam(r)
			if err != nil {
				api.WriteError(w, err)
				return
			}
			streamOp(w, r, func(ctx context.Context, p func(archive.Progress)) (any, error) {
				return a.restore(ctx, from, to, hold, p)
			})
		}),
	}
}

// streamOp runs a long archive operation and answers NDJSON: one
// {"progress":…} line per hour, then {"result":…} or {"error","message"}.
// An error before the first line (the archive busy, a backend down) is an
// ordinary error answer with its status.
func streamOp(w http.ResponseWriter, r *http.Request, op func(context.Context, func(archive.Progress)) (any, error)) {
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	var mu sync.Mutex
	started := false
	line := func(v any) {
		mu.Lock()
		defer mu.Unlock()
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		_ = enc.Encode(v)
		if flusher != nil {
			flusher.Flush()
		}
	}
	res, err := op(r.Context(), func(p archive.Progress) { line(map[string]any{"progress": p}) })
	if err != nil {
		var perr *pathstats.Error
		if !errors.As(err, &perr) {
			perr = pathstats.Errorf(pathstats.EUnavailable, "archive: %v", err)
		}
		mu.Lock()
		inStream := started
		mu.Unlock()
		if !inStream {
			api.WriteError(w, perr)
			return
		}
		line(map[string]any{"error": perr.Code, "message": perr.Message, "result": res})
		return
	}
	line(map[string]any{"result": res})
}

// hourRange reads from/to (RFC 3339, "2006-01-02T15" or "2006-01-02") as
// hour buckets [from, to); required says both must be given, else they
// default to everything.
func hourRange(r *http.Request, required bool) (int64, int64, error) {
	q := r.URL.Query()
	from, to := int64(0), int64(1)<<62
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"from", &from}, {"to", &to}} {
		v := q.Get(p.name)
		if v == "" {
			if required {
				return 0, 0, pathstats.Errorf(pathstats.EInvalidParameter, "%s is required", p.name)
			}
			continue
		}
		t, err := parseHour(v)
		if err != nil {
			return 0, 0, pathstats.Errorf(pathstats.EInvalidParameter, "%s: %v", p.name, err)
		}
		*p.dst = pathstats.HourBucket(t)
	}
	if from >= to {
		return 0, 0, pathstats.Errorf(pathstats.EInvalidParameter, "from must be before to")
	}
	return from, to, nil
}

// parseHour reads a time as RFC 3339, "2006-01-02T15" (an hour, UTC) or
// "2006-01-02" (a day, UTC).
func parseHour(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (2026-11-01, 2026-11-01T13 or RFC 3339)", strings.TrimSpace(v))
}

// holdParam reads hold (a duration, default 24h, at most 90 days): how long
// restored hours stay in SQL before the archiver takes them again.
func holdParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("hold")
	if v == "" {
		return 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 90*24*time.Hour {
		return 0, pathstats.Errorf(pathstats.EInvalidParameter, "hold must be a duration between 1s and 2160h, not %q", v)
	}
	return d, nil
}
