package nats

import (
	"context"
	"fmt"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/kvtest"
	"github.com/pathstats/pathstats/internal/natscluster"
	"github.com/pathstats/pathstats/internal/queuetest"
)

// clusterReplicas is the replica count of every stream and bucket the
// cluster tests create: one per node.
const clusterReplicas = 3

// clusterWait bounds each wait for the cluster to settle (leaders elected,
// replicas current): generous, as a busy machine slows Raft down.
const clusterWait = 90 * time.Second

// TestClusterSuites runs the queue and KV suites on a 3-node cluster of
// real nats-server processes (PATHSTATS_TEST_NATS_SERVER), every stream and
// bucket with three replicas, through a connection to all three URLs.
func TestClusterSuites(t *testing.T) {
	t.Parallel()
	c := natscluster.Start(t, 3)
	url := c.URL()
	t.Run("Queue", func(t *testing.T) {
		queuetest.Run(t, "nats cluster "+url+" R3", func(t *testing.T) pathstats.Queue {
			cfg := testConfig(t)
			cfg.Replicas = clusterReplicas
			q, err := OpenURL(testCtx(t), url, cfg)
			if err != nil {
				t.Fatalf("open %s: %v", url, err)
			}
			cleanupQueue(t, q)
			expectReplicas(t, q.js, cfg.Stream, clusterReplicas)
			settleQueue(t, q)
			return q
		})
	})
	t.Run("FollowerConsumer", func(t *testing.T) { testFollowerConsumer(t, url) })
	t.Run("KV", func(t *testing.T) {
		nc, err := connectURL(testCtx(t), url)
		if err != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		kvtest.Run(t, "nats kv cluster "+url+" R3", func(t *testing.T) pathstats.KV {
			cfg := testKVConfig()
			cfg.Replicas = clusterReplicas
			k := openKV(t, nc, cfg)
			expectReplicas(t, js, "KV_"+cfg.Bucket, clusterReplicas)
			waitCurrent(t, js, "KV_"+cfg.Bucket)
			return k
		})
	})
}

// testFollowerConsumer leads the consumer from a follower of the stream
// and checks, round after round, that Pending never under-counts right
// after Publish returned and that every published message is delivered.
// It logs how often one Fetch returned fewer messages than were published:
// the follower applies a message a moment after the leader acknowledged it.
func testFollowerConsumer(t *testing.T, url string) {
	cfg := testConfig(t)
	cfg.Replicas = clusterReplicas
	q, err := OpenURL(testCtx(t), url, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	cleanupQueue(t, q)
	leader := waitCurrent(t, q.js, cfg.Stream)
	follower := ""
	for _, p := range mustStreamInfo(t, q.js, cfg.Stream).Cluster.Replicas {
		follower = p.Name
	}
	moveConsumerLeader(t, q, follower)
	waitPullable(t, q)
	const rounds, perRound = 20, 3
	short := 0
	for r := range rounds {
		for i := range perRound {
			publishT(t, q, fmt.Sprintf("r%d-%d", r, i), "x")
		}
		if n, err := q.Pending(testCtx(t)); err != nil || n < perRound {
			t.Fatalf("round %d: pending %d, %v right after %d publishes", r, n, err, perRound)
		}
		msgs, err := q.Fetch(testCtx(t), 100, 2*time.Second)
		if err != nil {
			t.Fatalf("round %d: fetch: %v", r, err)
		}
		if len(msgs) < perRound {
			short++
			msgs = append(msgs, fetchAll(t, q, perRound-len(msgs))...)
		}
		for i, m := range msgs {
			if want := fmt.Sprintf("r%d-%d", r, i); m.ID() != want {
				t.Fatalf("round %d: message %d is %s, want %s", r, i, m.ID(), want)
			}
			if err := m.Ack(); err != nil {
				t.Fatalf("ack %s: %v", m.ID(), err)
			}
		}
	}
	t.Logf("stream leader %s, consumer leader %s: %d of %d first fetches returned fewer than the %d messages published",
		leader, consumerLeader(q), short, rounds, perRound)
}

func mustStreamInfo(t testing.TB, js jetstream.JetStream, stream string) *jetstream.StreamInfo {
	t.Helper()
	info, err := streamInfo(testCtx(t), js, stream)
	if err != nil {
		t.Fatalf("stream info %s: %v", stream, err)
	}
	return info
}

// settleQueue prepares a fresh cluster queue for the suite, which checks
// the Queue contract rather than replication lag:
//   - it waits until every replica of the stream is current;
//   - it moves the consumer's leader to the stream leader: a consumer led
//     from a follower counts and delivers from that follower's replica,
//     which applies a message a moment after the leader acknowledged it,
//     so one Fetch right after three Publishes may return two
//     (TestClusterFollowerConsumer covers that case);
//   - it waits until a pull reaches the consumer: its leader's interest
//     needs a moment to propagate to the other servers, and a pull before
//     that fails with "no responders".
func settleQueue(t *testing.T, q *Queue) {
	t.Helper()
	leader := waitCurrent(t, q.js, q.cfg.Stream)
	moveConsumerLeader(t, q, leader)
	waitPullable(t, q)
}

// waitCurrent waits until stream has a leader and every other replica is
// current, and returns the leader.
func waitCurrent(t testing.TB, js jetstream.JetStream, stream string) string {
	t.Helper()
	var last any
	for deadline := time.Now().Add(clusterWait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		info, err := streamInfo(context.Background(), js, stream)
		if err != nil {
			last = err
			continue
		}
		last = info.Cluster
		if info.Cluster != nil && info.Cluster.Leader != "" && peersCurrent(info.Cluster.Replicas) {
			return info.Cluster.Leader
		}
	}
	t.Fatalf("stream %s never had every replica current: %+v", stream, last)
	return ""
}

func peersCurrent(peers []*jetstream.PeerInfo) bool {
	for _, p := range peers {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}

// moveConsumerLeader asks the consumer's leader to step down in favour of
// server and waits until it has.
func moveConsumerLeader(t testing.TB, q *Queue, server string) {
	t.Helper()
	if consumerLeader(q) == server {
		return
	}
	subject := "$JS.API.CONSUMER.LEADER.STEPDOWN." + q.cfg.Stream + "." + q.cfg.Durable
	body := `{"placement":{"preferred":"` + server + `"}}`
	for deadline := time.Now().Add(clusterWait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if consumerLeader(q) == server {
			return
		}
		if _, err := q.nc.Request(subject, []byte(body), time.Second); err != nil {
			t.Logf("consumer stepdown: %v", err)
		}
	}
	t.Fatalf("consumer %s leader is %s, could not move it to %s", q.cfg.Durable, consumerLeader(q), server)
}

// waitPullable waits until a pull on the (empty) queue is answered.
func waitPullable(t testing.TB, q *Queue) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(clusterWait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var msgs []pathstats.Message
		if msgs, err = q.fetchNoWait(testCtx(t), 1); err == nil {
			if len(msgs) > 0 {
				t.Fatalf("fresh queue delivered %s", msgs[0].ID())
			}
			return
		}
	}
	t.Fatalf("consumer %s never answered a pull: %v", q.cfg.Durable, err)
}

// expectReplicas checks the stream is configured with n replicas and that
// the cluster placed them: a leader and n-1 other peers.
func expectReplicas(t testing.TB, js jetstream.JetStream, stream string, n int) {
	t.Helper()
	info, err := streamInfo(testCtx(t), js, stream)
	if err != nil {
		t.Fatalf("stream info %s: %v", stream, err)
	}
	if info.Config.Replicas != n {
		t.Fatalf("stream %s configured with %d replicas, want %d", stream, info.Config.Replicas, n)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != n-1 {
		t.Fatalf("stream %s placement %+v, want a leader and %d peers", stream, info.Cluster, n-1)
	}
}

// streamInfo asks for a stream's info, waiting at most 5 s: a request in
// flight when its server dies is never answered.
func streamInfo(ctx context.Context, js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// streamLeader waits until stream has a leader and returns its server name.
func streamLeader(t testing.TB, js jetstream.JetStream, stream string) string {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	var last error
	for time.Now().Before(deadline) {
		info, err := streamInfo(context.Background(), js, stream)
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			return info.Cluster.Leader
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("stream %s has no leader: %v", stream, last)
	return ""
}

// consumerLeader returns the consumer's leader, or a description of why it
// is unknown (for the test log only).
func consumerLeader(q *Queue) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	cons, err := q.js.Consumer(ctx, q.cfg.Stream, q.cfg.Durable)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "none"
	}
	return info.Cluster.Leader
}

// connectedTo is the server name nc is connected to, or its status.
func connectedTo(nc *natsgo.Conn) string {
	if name := nc.ConnectedServerName(); name != "" {
		return name
	}
	return nc.Status().String()
}
