package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pathstats/pathstats/internal/natscluster"
	"github.com/pathstats/pathstats/internal/s3test"
)

// sharedBackends are the external engines several nodes share, isolated per
// test: a PostgreSQL schema, a Redis key prefix, a NATS stream and subject.
type sharedBackends struct {
	sql, kv, queue string
	pg             *pgx.Conn
	schema         string
}

// needShared returns isolated URLs on the machine's PostgreSQL and Redis
// and, for the queue, a 3-node NATS cluster with R3 streams (when
// PATHSTATS_TEST_NATS_SERVER names a nats-server binary) or the machine's
// NATS; it skips when PostgreSQL, Redis or any NATS is not configured.
func needShared(t *testing.T) *sharedBackends {
	t.Helper()
	pgBase, redisBase := os.Getenv("PATHSTATS_TEST_POSTGRES"), os.Getenv("PATHSTATS_TEST_REDIS")
	natsURL := os.Getenv("PATHSTATS_TEST_NATS")
	if pgBase == "" || redisBase == "" || (natsURL == "" && os.Getenv(natscluster.EnvServer) == "") {
		t.Skip("PATHSTATS_TEST_POSTGRES, PATHSTATS_TEST_REDIS and a NATS (PATHSTATS_TEST_NATS or " + natscluster.EnvServer + ") are needed")
	}
	id := fmt.Sprintf("t%d", time.Now().UnixNano())
	b := &sharedBackends{schema: "pstest_" + id}
	b.sql = pgSchema(t, pgBase, b.schema, &b.pg)
	b.kv = redisBase + "?prefix=" + id + ":"
	b.queue = natsURL + "?stream=PS_" + id
	if os.Getenv(natscluster.EnvServer) != "" {
		b.queue = natscluster.Start(t, 3).URL() + "?replicas=3"
	}
	return b
}

// pgSchema creates a fresh schema on base (dropped at cleanup) and returns a
// URL whose search_path is that schema; conn receives an open connection.
func pgSchema(t *testing.T, base, schema string, conn **pgx.Conn) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PATHSTATS_TEST_POSTGRES set but unreachable: %v", err)
	}
	t.Cleanup(func() {
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		c.Close(context.Background())
	})
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	*conn = c
	return u.String()
}

// ingestRequest is one NDJSON body sent with a fixed Idempotency-Key.
type ingestRequest struct {
	key  string
	body []byte
}

// send posts r to c and returns the status (0 when no answer came).
func (r ingestRequest) send(c *child) int {
	req, _ := http.NewRequest("POST", c.admin+"/api/v1/events", bytes.NewReader(r.body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Idempotency-Key", r.key)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// snapshotBuilds is a node's count of snapshot versions it published.
func snapshotBuilds(c *child) float64 {
	return c.metric(`pathstats_snapshot_builds_total{result="ok"}`)
}

// TestThreeNodes runs three `pathstats serve` processes on one NATS, one
// PostgreSQL and one Redis: ingest spread over the nodes, the snapshot
// leader killed with SIGKILL in the middle, requests without an answer
// retried on another node with their Idempotency-Key. Every event must be
// counted exactly once, leadership must move within the lease TTL and a
// config change on one node must be seen by the others.
func TestThreeNodes(t *testing.T) {
	b := needShared(t)
	args := []string{"--queue", b.queue, "--kv", b.kv, "--sql", b.sql, "--legacy", "off",
		"--snapshot-interval", "300ms", "--ack-wait", "2s", "--lease-ttl", "3s"}
	if os.Getenv(s3test.EnvBinary) != "" {
		args = append(args, "--archive", s3test.Start(t))
	}
	nodes := make([]*child, 3)
	for i := range nodes {
		nodes[i] = startServe(t, t.TempDir(), args...)
	}
	leader := waitLeader(t, nodes, 90*time.Second)
	time.Sleep(time.Second) // several snapshot intervals: only the leader builds
	for _, n := range nodes {
		if n != leader && snapshotBuilds(n) > 0 {
			t.Fatalf("two nodes publish snapshots: %v and %v", snapshotBuilds(leader), snapshotBuilds(n))
		}
	}

	const requests, perRequest = 90, 100
	now := time.Now().UnixMilli()
	reqs := make([]ingestRequest, requests)
	for i := range reqs {
		var evs []map[string]any
		for j := range perRequest {
			evs = append(evs, map[string]any{"timestamp": now - int64(j), "path": fmt.Sprintf("/n/p%d", (i*perRequest+j)%300), "status": 200 + (j%4)*100})
		}
		reqs[i] = ingestRequest{key: fmt.Sprintf("three-%d", i), body: ndjson(evs...)}
	}
	var mu sync.Mutex
	var retry []int
	var wg sync.WaitGroup
	var killOnce sync.Once
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < requests; i += 6 {
				if i == requests/2 {
					killOnce.Do(leader.kill9)
				}
				if reqs[i].send(nodes[i%3]) != http.StatusAccepted {
					mu.Lock()
					retry = append(retry, i)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	var alive []*child
	for _, n := range nodes {
		if n != leader {
			alive = append(alive, n)
		}
	}
	for k, i := range retry {
		if code := reqs[i].send(alive[k%2]); code != http.StatusAccepted {
			t.Fatalf("retry of request %d on a live node: %d", i, code)
		}
	}
	t.Logf("%d of %d requests retried on another node after the kill", len(retry), requests)

	// Leadership moved: a surviving node publishes snapshots.
	before := []float64{snapshotBuilds(alive[0]), snapshotBuilds(alive[1])}
	deadline := time.Now().Add(90 * time.Second) // the 3 s lease ttl, and a busy machine
	for snapshotBuilds(alive[0]) <= before[0] && snapshotBuilds(alive[1]) <= before[1] {
		if time.Now().After(deadline) {
			t.Fatal("no surviving node took the snapshotter lease")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every event exactly once, the killed node's fetched batches included
	// (redelivered after the ack wait).
	want := int64(requests * perRequest)
	var got int64
	deadline = time.Now().Add(2 * time.Minute)
	for {
		if err := b.pg.QueryRow(context.Background(), "SELECT COALESCE(SUM(requests), 0) FROM "+b.schema+".path_stats_hourly").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	alive[0].waitMetric("pathstats_aggregator_consumer_lag_messages", 0, 90*time.Second)
	time.Sleep(500 * time.Millisecond) // anything still being applied lands
	if err := b.pg.QueryRow(context.Background(), "SELECT SUM(requests) FROM "+b.schema+".path_stats_hourly").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("PostgreSQL holds %d events, %d were acknowledged", got, want)
	}

	// A config change on one node is what the others route with.
	putConfig(t, alive[0], `{"newAPIPercentage":37}`)
	start := time.Now()
	for alive[1].metric("pathstats_canary_new_api_percentage") != 37 {
		if time.Since(start) > time.Minute {
			t.Fatalf("config change on one node not seen by another in 1m (percentage %v)", alive[1].metric("pathstats_canary_new_api_percentage"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("config change seen by another node after %s", time.Since(start).Round(time.Millisecond))
	for _, n := range alive {
		n.stop()
	}
}

// waitLeader returns the node that publishes snapshots (the lease holder).
func waitLeader(t *testing.T, nodes []*child, d time.Duration) *child {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if snapshotBuilds(n) > 0 {
				return n
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no node became snapshot leader")
	return nil
}
