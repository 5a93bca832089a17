package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pathstats/pathstats/compare"
)

const migrateUsage = `usage: pathstats migrate status
       pathstats migrate set --percent N
       pathstats migrate force-new add|remove IP|CIDR
       pathstats migrate force-old add|remove IP|CIDR
       pathstats migrate comparison on|off
       pathstats migrate rollout [--steps 1,10,50,100] [--dwell 10m] [--min-accuracy 99] [--max-error-rate 1] [--max-p99-ms 200]
       pathstats migrate rollout-status | abort
       pathstats migrate compare [--window 24h] [--tolerance 0.01] [--min-accuracy 99]   (exit 1 below --min-accuracy)`

// runMigrate drives the canary config and the staged rollout of a running
// server.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(migrateUsage)
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("migrate "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "admin base URL (default: from <data-dir>/serve.json)")
	dataDir := fs.String("data-dir", "./pathstats-data", "data dir of the server (for its address and token)")
	percent := fs.Float64("percent", -1, "set: share of clients on the new read path, 0–100")
	steps := fs.String("steps", "1,10,50,100", "rollout: percentages")
	dwell := fs.Duration("dwell", 10*time.Minute, "rollout: time at each step before its gates are checked")
	minAcc := fs.Float64("min-accuracy", 99, "rollout gate: comparison accuracy, percent")
	maxErr := fs.Float64("max-error-rate", 1, "rollout gate: new-path error rate, percent")
	maxP99 := fs.Float64("max-p99-ms", 200, "rollout gate: new-path p99 latency, ms")
	window := fs.Duration("window", 24*time.Hour, "compare: window")
	tolerance := fs.Float64("tolerance", 0.01, "compare: relative difference allowed in the open hour")
	// Positional words (add/remove IP, on/off) may come before the flags.
	var words []string
	for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		words, rest = append(words, rest[0]), rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	words = append(words, fs.Args()...)
	base, token, err := serverAndToken(*server, *dataDir)
	if err != nil {
		return err
	}
	c := &adminClient{base: base, token: token, http: &http.Client{Timeout: 30 * time.Second}}
	const cfgPath = "/api/admin/paths/migration-config"
	switch cmd {
	case "status":
		return c.printJSON(ctx, "GET", cfgPath, nil, stdout)
	case "set":
		if *percent < 0 {
			return errors.New("migrate set: --percent N is required")
		}
		return c.printJSON(ctx, "PUT", cfgPath, map[string]any{"newAPIPercentage": *percent}, stdout)
	case "force-new", "force-old":
		return c.editList(ctx, cmd, words, stdout)
	case "comparison":
		if len(words) != 1 || (words[0] != "on" && words[0] != "off") {
			return errors.New("migrate comparison on|off")
		}
		return c.printJSON(ctx, "PUT", cfgPath, map[string]any{"enableComparison": words[0] == "on"}, stdout)
	case "rollout":
		var list []float64
		for _, s := range strings.Split(*steps, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return fmt.Errorf("--steps: %q is not a number", s)
			}
			list = append(list, v)
		}
		plan := map[string]any{"steps": list, "dwell": dwell.String(),
			"gates": map[string]any{"minAccuracy": *minAcc, "maxErrorRate": *maxErr, "maxP99Ms": *maxP99}}
		return c.printJSON(ctx, "POST", cfgPath+"/rollout", plan, stdout)
	case "compare":
		return c.compareTable(ctx, *window, *tolerance, *minAcc, stdout)
	case "rollout-status":
		return c.printJSON(ctx, "GET", cfgPath+"/rollout", nil, stdout)
	case "abort":
		return c.printJSON(ctx, "POST", cfgPath+"/rollout/abort", map[string]any{}, stdout)
	}
	return errors.New(migrateUsage)
}

// editList adds or removes one entry of forceNewAPIIPs/forceOldAPIIPs with
// If-Match, retrying when another change came in between.
func (c *adminClient) editList(ctx context.Context, cmd string, words []string, stdout io.Writer) error {
	if len(words) != 2 || (words[0] != "add" && words[0] != "remove") {
		return fmt.Errorf("migrate %s add|remove IP|CIDR", cmd)
	}
	field := map[string]string{"force-new": "forceNewAPIIPs", "force-old": "forceOldAPIIPs"}[cmd]
	for attempt := 0; attempt < 5; attempt++ {
		var cur map[string]any
		if err := c.call(ctx, "GET", "/api/admin/paths/migration-config", &cur); err != nil {
			return err
		}
		var list []string
		for _, v := range asSlice(cur[field]) {
			if s, ok := v.(string); ok && s != words[1] {
				list = append(list, s)
			}
		}
		if words[0] == "add" {
			list = append(list, words[1])
		}
		if list == nil {
			list = []string{}
		}
		version := fmt.Sprint(cur["version"])
		status, body, err := c.send(ctx, "PUT", "/api/admin/paths/migration-config", map[string]any{field: list}, map[string]string{"If-Match": version})
		if err != nil {
			return err
		}
		if status == http.StatusPreconditionFailed {
			continue
		}
		if status != http.StatusOK {
			return fmt.Errorf("PUT migration-config: %d %s", status, strings.TrimSpace(string(body)))
		}
		_, err = stdout.Write(body)
		return err
	}
	return errors.New("the config kept changing; try again")
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// send sends a JSON body and returns the raw answer.
func (c *adminClient) send(ctx context.Context, method, path string, body any, hdr map[string]string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// printJSON sends a request and prints the answer's data indented; a
// non-2xx answer is an error.
func (c *adminClient) printJSON(ctx context.Context, method, path string, body any, stdout io.Writer) error {
	status, data, err := c.send(ctx, method, path, body, nil)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, status, strings.TrimSpace(string(data)))
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(data, &env) != nil || env.Data == nil {
		_, err := stdout.Write(data)
		return err
	}
	var out bytes.Buffer
	if json.Indent(&out, env.Data, "", "  ") != nil {
		out.Write(env.Data)
	}
	out.WriteByte('\n')
	_, err = stdout.Write(out.Bytes())
	return err
}

// compareTable runs a comparison and prints it as a table; below minAcc it
// returns an error, so scripts can gate on the exit status.
func (c *adminClient) compareTable(ctx context.Context, window time.Duration, tol, minAcc float64, stdout io.Writer) error {
	var rep compare.Report
	q := fmt.Sprintf("/api/admin/paths/compare?window=%s&tolerance=%g", window, tol)
	if err := c.call(ctx, "GET", q, &rep); err != nil {
		return err
	}
	printCompare(stdout, window, &rep)
	if rep.Accuracy < minAcc {
		return fmt.Errorf("accuracy %.2f%% is below %.2f%%", rep.Accuracy, minAcc)
	}
	return nil
}

// printCompare prints the summary lines and the table of differences.
func printCompare(w io.Writer, window time.Duration, rep *compare.Report) {
	fmt.Fprintf(w, "window %s: %d paths (pipeline %d, legacy %d), %d matched, accuracy %.2f%%\n",
		window, rep.TotalPaths, rep.D1Paths, rep.DOPaths, rep.MatchedPaths, rep.Accuracy)
	fmt.Fprintf(w, "requests: pipeline %d, legacy %d; errors: pipeline %d, legacy %d; in flight: %d events, %d messages\n",
		rep.Totals.D1Requests, rep.Totals.DORequests, rep.Totals.D1Errors, rep.Totals.DOErrors, rep.Pending.Events, rep.Pending.Messages)
	lastTol := "not compared"
	if rep.LastAccessedToleranceSeconds >= 0 {
		lastTol = "within ±" + (time.Duration(rep.LastAccessedToleranceSeconds) * time.Second).String()
	}
	is := rep.Issues
	fmt.Fprintf(w, "differences: missing_in_do %d, missing_in_d1 %d, count_mismatch %d, timestamp_mismatch %d (lastAccessed %s)\n",
		is.MissingInDO, is.MissingInD1, is.CountMismatch, is.TimestampMismatch, lastTol)
	if len(rep.Diffs) == 0 {
		return
	}
	fmt.Fprintf(w, "%-18s %10s %10s %8s %8s %10s  %s\n", "ISSUE", "PIPELINE", "LEGACY", "P-ERR", "L-ERR", "SKEW", "PATH")
	for _, d := range rep.Diffs {
		skew := "-"
		if d.LastAccessedSkewMs != 0 {
			skew = fmt.Sprintf("%+.0fs", (time.Duration(d.LastAccessedSkewMs) * time.Millisecond).Seconds())
		}
		fmt.Fprintf(w, "%-18s %10d %10d %8d %8d %10s  %s\n", d.Issue, d.D1Requests, d.DORequests, d.D1Errors, d.DOErrors, skew, d.Path)
	}
	if rep.DiffsOmitted > 0 {
		fmt.Fprintf(w, "(%d more differences not shown)\n", rep.DiffsOmitted)
	}
}
