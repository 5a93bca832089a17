package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/archive"
	"github.com/pathstats/pathstats/jobs"
	"github.com/pathstats/pathstats/lease"
)

// kvTimeout bounds each KV call an admin request waits for, so that a KV
// store that does not answer gives 503 within seconds.
const kvTimeout = 3 * time.Second

// listedJobs is how many jobs GET /api/admin/jobs lists, newest first.
const listedJobs = 100

// archiveWork is an archive run or restore, reporting progress.
type archiveWork func(ctx context.Context, progress func(archive.Progress)) (any, error)

// startJob takes the writer lease at once (409 when another run or restore
// holds it, 503 when the KV store does not answer), records a job and runs
// work under the lease in the background, on the server's lifetime. It
// answers 202 with the job and its Location, or follows it as NDJSON when
// the client accepts application/x-ndjson.
func (a *archiving) startJob(w http.ResponseWriter, r *http.Request, op string, work archiveWork) {
	l, err := a.begin(r.Context(), op)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	job, err := a.jobs.Start(r.Context(), op, func(ctx context.Context, report func(any)) (any, error) {
		var res any
		err := l.Hold(ctx, func(ctx context.Context) error {
			var err error
			res, err = work(ctx, func(p archive.Progress) { report(p) })
			return err
		})
		return res, archiveError(err)
	})
	if err != nil {
		a.log.Warn("archive job not started", "op", op, "err", err)
		a.release(l)
		api.WriteError(w, pathstats.Errorf(pathstats.EUnavailable, "the KV store did not answer within %s; the %s was not started", kvTimeout, op))
		return
	}
	if wantsNDJSON(r) {
		a.follow(w, r, job)
		return
	}
	w.Header().Set("Location", "/api/admin/jobs/"+job.ID)
	api.WriteData(w, http.StatusAccepted, map[string]any{"job": job})
}

// begin takes the writer lease for an admin operation without waiting.
func (a *archiving) begin(ctx context.Context, op string) (*lease.Lease, error) {
	l := a.writerLease(op)
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	ok, err := l.TryAcquire(ctx)
	switch {
	case err != nil:
		a.log.Warn("archive lease", "op", op, "err", err)
		return nil, pathstats.Errorf(pathstats.EUnavailable, "the KV store did not answer within %s, so the archive lease cannot be taken; try again when it is back", kvTimeout)
	case !ok:
		return nil, errArchiveBusy()
	}
	return l, nil
}

// release gives a lease back, bounded by kvTimeout.
func (a *archiving) release(l *lease.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	if err := l.Release(ctx); err != nil {
		a.log.Warn("archive lease release", "err", err)
	}
}

// archiveError gives the error of an archive job its contract code: a lost
// lease or a backend failure is UNAVAILABLE.
func archiveError(err error) error {
	var perr *pathstats.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &perr):
		return perr
	case errors.Is(err, lease.ErrLost):
		return pathstats.Errorf(pathstats.EUnavailable, "the archive lease was lost (KV store unreachable?); the work done so far is kept, run it again")
	}
	return pathstats.Errorf(pathstats.EUnavailable, "archive: %v", err)
}

// wantsNDJSON reports whether the client asked for the progress stream.
func wantsNDJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/x-ndjson")
}

// follow streams a job of this node as NDJSON: {"job":…}, then one
// {"progress":…} line per change, then {"result":…} or {"error", "message",
// "result"}. The client going away ends the stream, not the job.
func (a *archiving) follow(w http.ResponseWriter, r *http.Request, job jobs.Job) {
	next, ok := a.jobs.Follow(job.ID)
	if !ok {
		api.WriteError(w, pathstats.Errorf(pathstats.ENotFound, "job %s not found", job.ID))
		return
	}
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Location", "/api/admin/jobs/"+job.ID)
	w.WriteHeader(http.StatusOK)
	line := func(v any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(time.Minute)) // a job may outlast the server's write timeout
		if err := enc.Encode(v); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !line(map[string]any{"job": job}) {
		return
	}
	var v uint64
	var last json.RawMessage
	for r.Context().Err() == nil {
		job, v = next(r.Context(), v)
		if job.Progress != nil && string(job.Progress) != string(last) {
			last = job.Progress
			if !line(map[string]any{"progress": job.Progress}) {
				return
			}
		}
		switch {
		case job.State == jobs.Succeeded:
			line(map[string]any{"result": job.Result})
			return
		case job.State == jobs.Failed:
			line(map[string]any{"error": job.Error.Code, "message": job.Error.Message, "result": job.Result})
			return
		}
	}
}

// serveJobs lists the recent jobs of all nodes.
func (a *archiving) serveJobs(w http.ResponseWriter, r *http.Request) {
	list, err := a.jobs.List(r.Context(), listedJobs)
	if err != nil {
		a.log.Warn("list jobs", "err", err)
		api.WriteError(w, pathstats.Errorf(pathstats.EUnavailable, "the KV store did not answer; the jobs cannot be listed"))
		return
	}
	api.WriteData(w, http.StatusOK, map[string]any{"jobs": list})
}

// serveJob answers one job, from any node.
func (a *archiving) serveJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !jobs.ValidID(id) {
		api.WriteError(w, pathstats.Errorf(pathstats.EInvalidParameter, "id: a job id is 16 lowercase hex digits, not %q", truncate(id, 40)))
		return
	}
	job, err := a.jobs.Get(r.Context(), id)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		api.WriteError(w, pathstats.Errorf(pathstats.ENotFound, "job %s not found (finished jobs are kept 24 h)", id))
	case err != nil:
		a.log.Warn("read job", "job", id, "err", err)
		api.WriteError(w, pathstats.Errorf(pathstats.EUnavailable, "the KV store did not answer; job %s cannot be read", id))
	default:
		api.WriteData(w, http.StatusOK, map[string]any{"job": job})
	}
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
