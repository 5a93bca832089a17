// Package natscluster starts a real multi-node NATS JetStream cluster on
// loopback for tests: n nats-server processes (the binary named by
// PATHSTATS_TEST_NATS_SERVER) routed to each other, which the tests can
// kill with SIGKILL and restart on the same ports and store.
package natscluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EnvServer names the environment variable holding the path of the
// nats-server binary. Start skips the test when it is unset.
const EnvServer = "PATHSTATS_TEST_NATS_SERVER"

const (
	// startAttempts bounds how often Start picks new ports after another
	// process took one of them between the pick and the bind.
	startAttempts = 3
	// readyTimeout bounds the wait for a node (or the whole cluster) to
	// report JetStream healthy.
	readyTimeout = 2 * time.Minute
	// pollInterval is how often readiness is polled.
	pollInterval = 100 * time.Millisecond
)

// Cluster is a running set of nats-server processes forming one JetStream
// cluster. Its methods fail the test (t.Fatal) on error; call them from the
// test goroutine.
type Cluster struct {
	t     testing.TB
	bin   string
	dir   string
	name  string
	mu    sync.Mutex
	nodes []*node
}

// Start starts an n-node cluster and waits until JetStream is ready on
// every node (meta leader elected, every node current). It skips the test
// when PATHSTATS_TEST_NATS_SERVER is unset and fails it when the cluster
// cannot start. Everything is stopped at the test's cleanup.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := os.Getenv(EnvServer)
	if bin == "" {
		t.Skip(EnvServer + " not set")
	}
	if n < 1 {
		t.Fatalf("natscluster: %d nodes", n)
	}
	c := &Cluster{t: t, bin: bin, dir: t.TempDir(), name: "pstest"}
	t.Cleanup(c.stopAll)
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err = c.tryStart(n); err == nil {
			return c
		}
		c.stopAll()
		if !errors.Is(err, errPortInUse) {
			break
		}
		t.Logf("natscluster: attempt %d: %v; retrying on new ports", attempt, err)
	}
	t.Fatalf("natscluster: start %d nodes: %v", n, err)
	return nil
}

// tryStart picks ports, starts every node and waits for readiness.
func (c *Cluster) tryStart(n int) error {
	ports, err := freePorts(3 * n)
	if err != nil {
		return err
	}
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = &node{
			name:        "n" + strconv.Itoa(i),
			clientPort:  ports[3*i],
			clusterPort: ports[3*i+1],
			httpPort:    ports[3*i+2],
			storeDir:    fmt.Sprintf("%s/n%d/js", c.dir, i),
			logPath:     fmt.Sprintf("%s/n%d.log", c.dir, i),
		}
	}
	c.mu.Lock()
	c.nodes = nodes
	c.mu.Unlock()
	for _, nd := range nodes {
		if err := nd.writeConfig(c.name, nodes); err != nil {
			return err
		}
		if err := nd.start(c.bin); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for _, nd := range nodes {
		if err := nd.waitHealthy(ctx); err != nil {
			return err
		}
	}
	return c.waitJetStream(ctx)
}

// waitJetStream polls the account info through the cluster URL until the
// JetStream API answers.
func (c *Cluster) waitJetStream(ctx context.Context) error {
	nc, err := natsgo.Connect(c.URL(), natsgo.Timeout(2*time.Second))
	if err != nil {
		return fmt.Errorf("connect %s: %w", c.URL(), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jetstream account info: %w", err)
		case <-time.After(pollInterval):
		}
	}
}

// URL is the comma-separated client URLs of every node, as nats.go's
// Connect takes them.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// URLs are the client URLs of the nodes, in node order.
func (c *Cluster) URLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	urls := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		urls[i] = nd.url()
	}
	return urls
}

// Len is the number of nodes.
func (c *Cluster) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

// ServerName is node i's server name, as JetStream reports it in
// ClusterInfo.Leader and PeerInfo.Name.
func (c *Cluster) ServerName(i int) string { return c.node(i).name }

// Index returns the index of the node called name, or -1.
func (c *Cluster) Index(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, nd := range c.nodes {
		if nd.name == name {
			return i
		}
	}
	return -1
}

// Kill kills node i with SIGKILL and waits for the process to exit. Its
// store stays for Restart.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	if err := c.node(i).kill(); err != nil {
		c.t.Fatalf("natscluster: kill %s: %v", c.node(i).name, err)
	}
}

// Restart starts node i again on the same ports and store and waits until
// it reports JetStream healthy (caught up with the cluster).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	nd := c.node(i)
	if nd.running() {
		c.t.Fatalf("natscluster: restart %s: still running", nd.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		if err = nd.start(c.bin); err != nil {
			break
		}
		if err = nd.waitHealthy(ctx); !errors.Is(err, errPortInUse) {
			break
		}
		// The old sockets may linger for a moment; the ports are fixed.
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("natscluster: restart %s: %v", nd.name, err)
	}
}

// WaitHealthy waits until every running node reports JetStream healthy.
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	c.mu.Lock()
	nodes := append([]*node(nil), c.nodes...)
	c.mu.Unlock()
	for _, nd := range nodes {
		if !nd.running() {
			continue
		}
		if err := nd.waitHealthy(ctx); err != nil {
			c.t.Fatalf("natscluster: %v", err)
		}
	}
}

func (c *Cluster) node(i int) *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.nodes) {
		c.t.Fatalf("natscluster: no node %d of %d", i, len(c.nodes))
	}
	return c.nodes[i]
}

// stopAll kills every node still running.
func (c *Cluster) stopAll() {
	c.mu.Lock()
	nodes := c.nodes
	c.mu.Unlock()
	for _, nd := range nodes {
		if err := nd.kill(); err != nil {
			c.t.Logf("natscluster: stop %s: %v", nd.name, err)
		}
	}
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago: all listeners are held open until every port is picked.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
