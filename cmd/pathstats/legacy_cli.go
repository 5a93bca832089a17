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
	"os"
	"strings"
	"time"
)

// runLegacy is `pathstats legacy stats|export|cleanup|decommission`: the
// retirement tools of the legacy system, talking to a running server.
func runLegacy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: pathstats legacy stats|export -o FILE|cleanup|decommission [flags]")
	}
	cmd := args[0]
	fs := flag.NewFlagSet("legacy "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "admin base URL (default: from <data-dir>/serve.json)")
	dataDir := fs.String("data-dir", "./pathstats-data", "data dir of the server (for its address and token)")
	out := fs.String("o", "", "export: output file")
	format := fs.String("format", "ndjson", "export: json or ndjson")
	force := fs.Bool("force", false, "cleanup: even though the migration config still routes clients to legacy; decommission: that too, and keep the stored data")
	batch := fs.Int("batch-size", 1000, "cleanup: instances per batch")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	base, token, err := serverAndToken(*server, *dataDir)
	if err != nil {
		return err
	}
	c := &adminClient{base: base, token: token, http: &http.Client{Timeout: 10 * time.Minute}}
	p := newProgress(stdout)
	switch cmd {
	case "stats":
		var st legacyStats
		if err := c.call(ctx, "GET", "/api/admin/paths/do/stats", &st); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "instances=%d storedBytes=%d state=%s\n", st.Instances, st.StoredBytes, st.State)
		return nil
	case "export":
		return c.export(ctx, *out, *format, p)
	case "cleanup":
		return c.cleanup(ctx, *force, *batch, p)
	case "decommission":
		q := "/api/admin/paths/do/decommission"
		if *force {
			q += "?force=true"
		}
		var res struct {
			Deleted   int `json:"deleted"`
			Instances int `json:"instances"`
		}
		if err := c.call(ctx, "POST", q, &res); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "legacy system decommissioned: dual write stopped, %d instances deleted, %d kept in storage; /paths/do/* answer 410\n",
			res.Deleted, res.Instances)
		return nil
	}
	return fmt.Errorf("unknown legacy command %q", cmd)
}

type legacyStats struct {
	Instances   int    `json:"instances"`
	StoredBytes int64  `json:"storedBytes"`
	State       string `json:"state"`
}

// adminClient calls the admin API with the bearer token.
type adminClient struct {
	base, token string
	http        *http.Client
}

// call sends a request and decodes the envelope's data into out.
func (c *adminClient) call(ctx context.Context, method, path string, out any) error {
	resp, err := c.do(ctx, method, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
		Error   string          `json:"error"`
		Message string          `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s %s: %s: bad answer: %w", method, path, resp.Status, err)
	}
	if !env.Success {
		return fmt.Errorf("%s %s: %s %s: %s", method, path, resp.Status, env.Error, env.Message)
	}
	if out != nil {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

func (c *adminClient) do(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	return c.http.Do(req)
}

// export streams the legacy export to a file, counting instances.
func (c *adminClient) export(ctx context.Context, out, format string, p *progress) error {
	if out == "" {
		return errors.New("legacy export: -o FILE is required")
	}
	var st legacyStats
	if err := c.call(ctx, "GET", "/api/admin/paths/do/stats", &st); err != nil {
		return err
	}
	resp, err := c.do(ctx, "GET", "/api/admin/paths/do/export?format="+url.QueryEscape(format))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("export: %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	cw := &countingWriter{w: f, p: p, total: st.Instances}
	if _, err := io.Copy(cw, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("export: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	p.done(fmt.Sprintf("exported %d instances (%d bytes) to %s", cw.objects, cw.bytes, out))
	return nil
}

// cleanup repeats batch-cleanup until nothing remains.
func (c *adminClient) cleanup(ctx context.Context, force bool, batch int, p *progress) error {
	total := -1
	deleted := 0
	for {
		q := fmt.Sprintf("/api/admin/paths/do/batch-cleanup?batchSize=%d", batch)
		if force {
			q += "&force=true"
		}
		var res struct{ Deleted, Remaining int }
		if err := c.call(ctx, "POST", q, &res); err != nil {
			return err
		}
		deleted += res.Deleted
		if total < 0 {
			total = res.Deleted + res.Remaining
		}
		p.update(deleted, total, "deleted")
		if res.Remaining == 0 {
			p.done(fmt.Sprintf("cleanup finished: %d instances deleted, 0 remaining", deleted))
			return nil
		}
		if res.Deleted == 0 {
			return fmt.Errorf("cleanup made no progress; %d remaining", res.Remaining)
		}
	}
}

// countingWriter counts bytes and exported objects (one "name" key each).
type countingWriter struct {
	w              io.Writer
	p              *progress
	total          int
	bytes, objects int
}

func (cw *countingWriter) Write(b []byte) (int, error) {
	n, err := cw.w.Write(b)
	cw.bytes += n
	cw.objects += strings.Count(string(b[:n]), `"name":`)
	cw.p.update(cw.objects, cw.total, "exported")
	return n, err
}

// progress draws a bar on a terminal and plain lines (at most one per
// second) otherwise.
type progress struct {
	w    io.Writer
	tty  bool
	last time.Time
}

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, tty: tty}
}

func (p *progress) update(done, total int, verb string) {
	if time.Since(p.last) < 200*time.Millisecond && done != total {
		return
	}
	if !p.tty && time.Since(p.last) < time.Second && done != total {
		return
	}
	p.last = time.Now()
	if total <= 0 {
		total = max(done, 1)
	}
	pct := min(100, done*100/total)
	if p.tty {
		const width = 30
		bar := strings.Repeat("█", pct*width/100) + strings.Repeat("░", width-pct*width/100)
		fmt.Fprintf(p.w, "\r%s %3d%% %d/%d %s", bar, pct, done, total, verb)
		return
	}
	fmt.Fprintf(p.w, "%s %d/%d (%d%%)\n", verb, done, total, pct)
}

func (p *progress) done(msg string) {
	if p.tty {
		fmt.Fprintln(p.w)
	}
	fmt.Fprintln(p.w, msg)
}
