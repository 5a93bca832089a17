package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/archive"
	"github.com/pathstats/pathstats/jobs"
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
	kv     pathstats.KV
	node   string
	ttl    time.Duration // of the leases
	leader *lease.Lease
	jobs   *jobs.Manager // admin runs and restores
	log    *slog.Logger
	wait   time.Duration // how long the elected archiver's run waits for the writer lease
	seq    atomic.Int64  // makes each operation's writer-lease holder unique

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
		kv: s.kv, node: s.node(), ttl: s.cfg.LeaseTTL,
		leader: lease.New(s.kv, archiverLease, s.node(), s.cfg.LeaseTTL),
		jobs:   jobs.New(s.workers, jobs.Config{KV: s.kv, Node: s.node(), Timeout: kvTimeout, Logger: s.log}),
	}
	arc.a, err = archive.New(archive.Config{
		Store: store, Bucket: bucket, Retention: s.cfg.Retention, Logger: s.log, Registerer: s.reg, Progress: arc.report,
	})
	if err != nil {
		bucket.Close()
		return err
	}
	s.archive = arc
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		arc.campaign(s.workers, s.cfg.ArchiveEvery)
	}()
	go func() {
		defer s.wg.Done()
		<-s.workers.Done() // shutdown interrupts the jobs; wait until their outcome is recorded
		arc.jobs.Wait()
	}()
	return nil
}

// campaign runs the archiver every interval while this node holds the
// archiver lease, and releases it at shutdown.
func (a *archiving) campaign(ctx context.Context, every time.Duration) {
	a.leader.Run(ctx, func(ctx context.Context) {
		a.log.Info("archiver elected", "every", every, "archive", a.url)
		for {
			if _, err := a.run(ctx); err != nil && ctx.Err() == nil {
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

// run archives what is due (the elected archiver's periodic run), waiting
// for the writer lease up to a.wait.
func (a *archiving) run(ctx context.Context) (archive.Result, error) {
	var res archive.Result
	err := a.writerLease("archiver").Do(ctx, a.wait, func(ctx context.Context) error {
		var err error
		res, err = a.runOnce(ctx, nil)
		return err
	})
	if errors.Is(err, lease.ErrBusy) {
		return res, fmt.Errorf("another archive run or restore held the writer lease for %s: %w", a.wait, err)
	}
	return res, err
}

// runOnce archives what is due with progress as the listener; the caller
// holds the writer lease.
func (a *archiving) runOnce(ctx context.Context, progress func(archive.Progress)) (archive.Result, error) {
	defer a.listen(progress)()
	res, err := a.a.RunOnce(ctx)
	if res.Parts > 0 || res.Recovered > 0 {
		a.log.Info("archived", "hours", res.Hours, "parts", res.Parts, "rows", res.Rows, "bytes", res.Bytes, "recovered", res.Recovered)
	}
	return res, err
}

// restore brings hours back into SQL with progress as the listener; the
// caller holds the writer lease.
func (a *archiving) restore(ctx context.Context, from, to int64, hold time.Duration, progress func(archive.Progress)) (archive.RestoreResult, error) {
	defer a.listen(progress)()
	res, err := a.a.Restore(ctx, from, to, hold)
	a.log.Info("restored", "hours", res.Hours, "parts", res.Parts, "rows", res.Rows, "err", err)
	return res, err
}

// listen makes progress the listener of the archiver until the returned
// function is called.
func (a *archiving) listen(progress func(archive.Progress)) func() {
	a.mu.Lock()
	a.progress = progress
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		a.progress = nil
		a.mu.Unlock()
	}
}

// writerLease returns a new contender for the archive-writer lease whose
// holder names this operation alone, so that two operations of one node
// exclude each other as two nodes do.
func (a *archiving) writerLease(op string) *lease.Lease {
	return lease.New(a.kv, archiveWriteLease, fmt.Sprintf("%s/%s-%d", a.node, op, a.seq.Add(1)), a.ttl)
}

func errArchiveBusy() error {
	return pathstats.Errorf(pathstats.EConflict, "another archive run or restore is in progress; try again later")
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
// POST …/archive/restore (start a job: 202, or NDJSON progress when asked
// for), GET /api/admin/jobs and GET /api/admin/jobs/{id}.
func (s *server) archiveRoutes() map[string]http.Handler {
	if s.archive == nil {
		off := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			api.WriteError(w, pathstats.Errorf(pathstats.ENotFound, "the archive is off (--archive off)"))
		})
		return map[string]http.Handler{"GET /api/admin/archive": off, "POST /api/admin/archive/run": off, "POST /api/admin/archive/restore": off,
			"GET /api/admin/jobs": off, "GET /api/admin/jobs/{id}": off}
	}
	a := s.archive
	return map[string]http.Handler{
		"GET /api/admin/archive":          http.HandlerFunc(a.serveList),
		"POST /api/admin/archive/run":     http.HandlerFunc(a.serveRun),
		"POST /api/admin/archive/restore": http.HandlerFunc(a.serveRestore),
		"GET /api/admin/jobs":             http.HandlerFunc(a.serveJobs),
		"GET /api/admin/jobs/{id}":        http.HandlerFunc(a.serveJob),
	}
}

// serveList answers the archived hours; an archive that cannot be read
// (bucket gone, manifest unreadable, part missing) is 503, never an empty
// list.
func (a *archiving) serveList(w http.ResponseWriter, r *http.Request) {
	from, to, err := hourRange(r, false)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	hours, err := a.a.List(r.Context(), from, to)
	if err != nil {
		a.log.Warn("archive list", "err", err)
		api.WriteError(w, pathstats.Errorf(pathstats.EUnavailable, "the archive cannot be read: %v", err))
		return
	}
	if hours == nil {
		hours = []archive.HourInfo{}
	}
	api.WriteData(w, http.StatusOK, map[string]any{"archive": a.url, "hours": hours})
}

// serveRun starts an archive run as a job.
func (a *archiving) serveRun(w http.ResponseWriter, r *http.Request) {
	a.startJob(w, r, "archive", func(ctx context.Context, p func(archive.Progress)) (any, error) {
		return a.runOnce(ctx, p)
	})
}

// serveRestore validates the range and hold and starts a restore as a job.
func (a *archiving) serveRestore(w http.ResponseWriter, r *http.Request) {
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
	a.startJob(w, r, "restore", func(ctx context.Context, p func(archive.Progress)) (any, error) {
		return a.restore(ctx, from, to, hold, p)
	})
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

// Bounds of the restore hold.
const (
	minHold = time.Second
	maxHold = 90 * 24 * time.Hour
)

// holdParam reads hold (a duration, default 24h, from 1s to 90 days): how
// long restored hours stay in SQL before the archiver takes them again.
func holdParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("hold")
	if v == "" {
		return 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < minHold || d > maxHold {
		return 0, pathstats.Errorf(pathstats.EInvalidParameter, "hold must be a duration between 1s and 2160h, not %q", v)
	}
	return d, nil
}
