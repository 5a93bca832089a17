package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDecommissionWithTrafficFlowing: at 100 % new with gateway traffic on,
// `pathstats legacy decommission` (no --force) completes: it stops the dual
// write, deletes what is left and turns the legacy system off, while the
// dual write keeps recreating instances up to that moment.
func TestDecommissionWithTrafficFlowing(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	dir := t.TempDir()
	c := startServe(t, dir, "--upstream", upstream.URL)
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		all := append([]string{"legacy", args[0], "--server", c.admin, "--data-dir", dir}, args[1:]...)
		err := run(context.Background(), all, &out, &out)
		return out.String(), err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(c.gateway + "/traffic/" + string(rune('a'+g)) + "/" + string(rune('a'+i%26)))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	waitFor(t, time.Minute, func() bool {
		out, err := cli("stats")
		return err == nil && !strings.Contains(out, "instances=0 ")
	}, "dual write stored instances")

	// Still routed to legacy: refused, and the message names the CLI.
	_, err := cli("decommission")
	if err == nil || !strings.Contains(err.Error(), "CONFLICT") || !strings.Contains(err.Error(), "pathstats migrate set --percent 100") {
		t.Fatalf("decommission while routed to legacy: %v", err)
	}
	if code, out := c.do("PUT", "/api/admin/paths/migration-config", "application/json", []byte(`{"newAPIPercentage":100}`), nil); code != http.StatusOK {
		t.Fatalf("set 100 %%: %d %v", code, out)
	}
	out, err := cli("decommission")
	if err != nil || !strings.Contains(out, "legacy system decommissioned") || strings.Contains(out, " 0 instances deleted") ||
		!strings.Contains(out, ", 0 kept in storage") {
		t.Fatalf("decommission with traffic flowing: %q %v", out, err)
	}
	if code, body := c.do("GET", "/api/admin/paths/do/stats", "", nil, nil); code != http.StatusGone {
		t.Fatalf("stats after decommission: %d %v", code, body)
	}
}
