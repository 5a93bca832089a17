package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/pathstats/pathstats/archive"
	"github.com/pathstats/pathstats/jobs"
)

const archiveUsage = `usage: pathstats archive list [--from T] [--to T]
       pathstats archive run
       pathstats archive restore --from T --to T [--hold 24h]
       pathstats archive jobs              (recent runs and restores)
       pathstats archive job ID            (follow a job until it ends)
T is 2026-11-01, 2026-11-01T13 (an hour, UTC) or RFC 3339; ranges are [from, to).
run and restore start a job on the server and follow it; stopping the command
does not stop the job (follow it again with "archive job ID").`

// runArchive is `pathstats archive list|run|restore|jobs|job`, talking to
// a running server (which holds the archive lease while it works).
func runArchive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(archiveUsage)
	}
	cmd := args[0]
	fs := flag.NewFlagSet("archive "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, archiveUsage); fs.PrintDefaults() }
	server := fs.String("server", "", "admin base URL (default: from <data-dir>/serve.json)")
	dataDir := fs.String("data-dir", "./pathstats-data", "data dir of the server (for its address and token)")
	from := fs.String("from", "", "first hour (inclusive)")
	to := fs.String("to", "", "end hour (exclusive)")
	hold := fs.Duration("hold", 24*time.Hour, "restore: how long restored hours stay in SQL before they are archived again")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	base, token, err := serverAndToken(*server, *dataDir)
	if err != nil {
		return err
	}
	c := &adminClient{base: base, token: token, http: &http.Client{Timeout: time.Minute}}
	q := url.Values{}
	if *from != "" {
		q.Set("from", *from)
	}
	if *to != "" {
		q.Set("to", *to)
	}
	switch cmd {
	case "list":
		return listArchive(ctx, c, q, stdout)
	case "run":
		return c.startAndFollow(ctx, "/api/admin/archive/run", newProgress(stderr), stdout)
	case "restore":
		if *from == "" || *to == "" {
			return errors.New("archive restore needs --from and --to")
		}
		q.Set("hold", hold.String())
		return c.startAndFollow(ctx, "/api/admin/archive/restore?"+q.Encode(), newProgress(stderr), stdout)
	case "jobs":
		return listJobs(ctx, c, stdout)
	case "job":
		if fs.NArg() != 1 {
			return errors.New("archive job needs the job id")
		}
		return c.followJob(ctx, fs.Arg(0), newProgress(stderr), stdout)
	}
	return fmt.Errorf("unknown archive command %q\n%s", cmd, archiveUsage)
}

// listArchive prints the archived hours as a table.
func listArchive(ctx context.Context, c *adminClient, q url.Values, stdout io.Writer) error {
	var out struct {
		Archive string             `json:"archive"`
		Hours   []archive.HourInfo `json:"hours"`
	}
	if err := c.call(ctx, "GET", "/api/admin/archive?"+q.Encode(), &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "archive %s: %d hours\n", out.Archive, len(out.Hours))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "hour (UTC)\tparts\trows\trequests\terrors\tbytes\theld until\t")
	var rows, reqs int64
	for _, h := range out.Hours {
		held := "-"
		if !h.HeldUntil.IsZero() {
			held = h.HeldUntil.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", time.Unix(h.Hour, 0).UTC().Format("2006-01-02T15"), h.Parts, h.Rows, h.Requests, h.Errors, h.Bytes, held)
		rows += h.Rows
		reqs += h.Requests
	}
	fmt.Fprintf(tw, "total\t\t%d\t%d\t\t\t\t\n", rows, reqs)
	return tw.Flush()
}

// startAndFollow starts a job (POST path) and follows it to its end.
func (c *adminClient) startAndFollow(ctx context.Context, path string, p *progress, stdout io.Writer) error {
	var started struct {
		Job jobView `json:"job"`
	}
	if err := c.call(ctx, "POST", path, &started); err != nil {
		return err
	}
	return c.followJob(ctx, started.Job.ID, p, stdout)
}

// jobView is what the CLI reads of a job.
type jobView struct {
	ID         string            `json:"id"`
	Op         string            `json:"op"`
	State      string            `json:"state"`
	Progress   *archive.Progress `json:"progress"`
	Result     json.RawMessage   `json:"result"`
	Error      *jobs.Error       `json:"error"`
	StartedAt  time.Time         `json:"startedAt"`
	FinishedAt *time.Time        `json:"finishedAt"`
	Node       string            `json:"node"`
}

// followPoll is how often the CLI reads a job it follows; followRetries is
// how many failed reads in a row it accepts (a node restarting, a load
// balancer hiccup) before giving up.
const (
	followPoll    = 500 * time.Millisecond
	followRetries = 20
)

// followJob polls a job until it ends, showing its progress; it prints the
// result and fails when the job failed.
func (c *adminClient) followJob(ctx context.Context, id string, p *progress, stdout io.Writer) error {
	failures := 0
	for {
		job, err := c.getJob(ctx, id)
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("stopped following job %s (it goes on; follow it with: pathstats archive job %s)", id, id)
		case err != nil:
			failures++
			if failures > followRetries || !retryable(err) {
				return fmt.Errorf("follow job %s: %w (follow it again with: pathstats archive job %s)", id, err, id)
			}
		default:
			failures = 0
			if done, err := showJob(job, p, stdout); done {
				return err
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(followPoll):
		}
	}
}

// showJob shows one reading of a job; done is true once it ended, with
// its error when it failed.
func showJob(j jobView, p *progress, stdout io.Writer) (done bool, err error) {
	if j.Progress != nil {
		p.update(j.Progress.Done, j.Progress.Total, j.Progress.Op+" hours")
	}
	switch j.State {
	case jobs.Succeeded:
		p.done(fmt.Sprintf("job %s %s", j.ID, j.State))
		fmt.Fprintln(stdout, string(j.Result))
		return true, nil
	case jobs.Failed:
		code, msg := "FAILED", ""
		if j.Error != nil {
			code, msg = j.Error.Code, j.Error.Message
		}
		p.done(fmt.Sprintf("job %s %s", j.ID, j.State))
		return true, fmt.Errorf("job %s failed: %s: %s (done before the failure: %s)", j.ID, code, msg, orNone(j.Result))
	}
	return false, nil
}

// statusError is an error answer of the server.
type statusError struct {
	status        int
	code, message string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message)
}

// getJob reads a job; an error answer is a *statusError.
func (c *adminClient) getJob(ctx context.Context, id string) (jobView, error) {
	resp, err := c.do(ctx, "GET", "/api/admin/jobs/"+url.PathEscape(id))
	if err != nil {
		return jobView{}, err
	}
	defer resp.Body.Close()
	var env struct {
		Data struct {
			Job jobView `json:"job"`
		} `json:"data"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return jobView{}, fmt.Errorf("GET job %s: %s: bad answer: %w", id, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return jobView{}, &statusError{status: resp.StatusCode, code: env.Error, message: env.Message}
	}
	return env.Data.Job, nil
}

// retryable reports whether a failed job read may succeed later (not a
// 4xx answer).
func retryable(err error) bool {
	var se *statusError
	return !errors.As(err, &se) || se.status >= 500
}

func orNone(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "nothing"
	}
	return string(raw)
}

// listJobs prints the recent jobs as a table.
func listJobs(ctx context.Context, c *adminClient, stdout io.Writer) error {
	var out struct {
		Jobs []jobView `json:"jobs"`
	}
	if err := c.call(ctx, "GET", "/api/admin/jobs", &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "id	op	state	started (UTC)	node	progress")
	for _, j := range out.Jobs {
		prog := "-"
		if j.Progress != nil {
			prog = fmt.Sprintf("%d/%d hours", j.Progress.Done, j.Progress.Total)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Op, j.State, j.StartedAt.UTC().Format(time.DateTime), j.Node, prog)
	}
	return tw.Flush()
}
