package natscluster

import (
	"context"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestKillRestart starts three nodes, places an R3 stream, kills its
// leader, checks a new leader serves the stored messages, restarts the
// node and checks it is a current replica again.
func TestKillRestart(t *testing.T) {
	c := Start(t, 3)
	if got := len(c.URLs()); got != 3 {
		t.Fatalf("%d urls, want 3", got)
	}
	nc, err := natsgo.Connect(c.URL(), natsgo.MaxReconnects(-1), natsgo.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect %s: %v", c.URL(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}, Replicas: 3, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	waitStreamLeader(ctx, t, js)
	for i := range 10 {
		if _, err := js.Publish(ctx, "t", []byte{byte(i)}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream not R3: replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
	}
	leader := c.Index(info.Cluster.Leader)
	if leader < 0 {
		t.Fatalf("leader %q is no node of the cluster", info.Cluster.Leader)
	}
	c.Kill(leader)
	newLeader := waitLeader(ctx, t, js, info.Cluster.Leader)
	t.Logf("leader %s killed, new leader %s", info.Cluster.Leader, newLeader)
	c.Restart(leader)
	c.WaitHealthy()
	info = waitCurrent(ctx, t, js)
	if info.State.Msgs != 10 {
		t.Fatalf("%d messages after failover, want 10", info.State.Msgs)
	}
}

// waitStreamLeader waits until the new stream T elected a leader (before
// that, publishes get "no response from stream").
func waitStreamLeader(ctx context.Context, t *testing.T, js jetstream.JetStream) {
	t.Helper()
	for ctx.Err() == nil {
		if info, err := streamInfo(ctx, js); err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("stream T elected no leader")
}

// waitLeader waits until stream T has a leader other than old.
func waitLeader(ctx context.Context, t *testing.T, js jetstream.JetStream, old string) string {
	t.Helper()
	var last any
	for ctx.Err() == nil {
		info, err := streamInfo(ctx, js)
		if err == nil {
			if err == nil && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != old {
				return info.Cluster.Leader
			}
			if err == nil {
				last = info.Cluster
			}
		}
		if err != nil {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no new leader after %s was killed; last: %v", old, last)
	return ""
}

// waitCurrent waits until stream T has a leader and two current replicas.
func waitCurrent(ctx context.Context, t *testing.T, js jetstream.JetStream) *jetstream.StreamInfo {
	t.Helper()
	var last *jetstream.StreamInfo
	for ctx.Err() == nil {
		if info, err := streamInfo(ctx, js); err == nil {
			last = info
			if info.Cluster != nil && info.Cluster.Leader != "" && allCurrent(info.Cluster.Replicas, 2) {
				return info
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("stream never fully current again: %+v", last)
	return nil
}

// streamInfo asks for stream T's info, giving up after 5 s: a request in
// flight when its server dies is never answered.
func streamInfo(ctx context.Context, js jetstream.JetStream) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "T")
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

func allCurrent(peers []*jetstream.PeerInfo, n int) bool {
	if len(peers) != n {
		return false
	}
	for _, p := range peers {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}

func TestStartSkipsWithoutBinary(t *testing.T) {
	t.Setenv(EnvServer, "")
	var inner *testing.T
	t.Run("inner", func(t *testing.T) {
		inner = t
		Start(t, 1)
		t.Error("Start returned without the binary")
	})
	if !inner.Skipped() {
		t.Fatal("Start did not skip the test")
	}
}
