package main

import (
	"bufio"
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
)

const archiveUsage = `usage: pathstats archive list [--from T] [--to T]
       pathstats archive run
       pathstats archive restore --from T --to T [--hold 24h]
T is 2026-11-01, 2026-11-01T13 (an hour, UTC) or RFC 3339; ranges are [from, to).`

// runArchive is `pathstats archive list|run|restore`, talking to a running
// server (which holds the archive lease while it works).
func runArchive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(archiveUsage)
	}
	cmd := args[0]
	fs := flag.NewFlagSet("archive "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	c := &adminClient{base: base, token: token, http: &http.Client{Timeout: 6 * time.Hour}}
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
		return c.stream(ctx, "/api/admin/archive/run", newProgress(stderr), stdout)
	case "restore":
		if *from == "" || *to == "" {
			return errors.New("archive restore needs --from and --to")
		}
		q.Set("hold", hold.String())
		return c.stream(ctx, "/api/admin/archive/restore?"+q.Encode(), newProgress(stderr), stdout)
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

// stream POSTs to an NDJSON progress endpoint, showing progress and
// printing the final result.
func (c *adminClient) stream(ctx context.Context, path string, p *progress, stdout io.Writer) error {
	resp, err := c.do(ctx, "POST", path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/x-ndjson" {
		var env struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&env)
		return fmt.Errorf("POST %s: %s %s: %s", path, resp.Status, env.Error, env.Message)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var line struct {
			Progress *archive.Progress `json:"progress"`
			Result   json.RawMessage   `json:"result"`
			Error    string            `json:"error"`
			Message  string            `json:"message"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("POST %s: bad line: %w", path, err)
		}
		switch {
		case line.Progress != nil:
			p.update(line.Progress.Done, line.Progress.Total, line.Progress.Op+" hours")
		case line.Error != "":
			return fmt.Errorf("%s: %s (done so far: %s)", line.Error, line.Message, line.Result)
		case line.Result != nil:
			p.done("done")
			fmt.Fprintln(stdout, string(line.Result))
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	return fmt.Errorf("POST %s: the server closed the stream without a result", path)
}
