package nats

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const envKillChild = "PATHSTATS_NATS_KILL_CHILD"

// killConfig is fixed so the parent reopens what the child wrote.
var killConfig = QueueConfig{Stream: "KILLTEST", Subject: "killtest.batches", Durable: "killtest"}

// TestKillNineKeepsAckedMessages runs a child process that publishes to an
// embedded server in default durability mode and reports every
// acknowledged id, kills it with SIGKILL mid-stream, restarts a server on
// the same store and checks every acknowledged message is there.
func TestKillNineKeepsAckedMessages(t *testing.T) {
	if dir := os.Getenv(envKillChild); dir != "" {
		runKillChild(t, dir)
		return
	}
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillNineKeepsAckedMessages$")
	cmd.Env = append(os.Environ(), envKillChild+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	acked := readAcked(t, out, 300)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatalf("kill child: %v", err)
	}
	_ = cmd.Wait()

	s := startServer(t, EmbeddedOptions{StoreDir: dir})
	q := openQueue(t, connect(t, s), killConfig)
	n, err := q.Pending(testCtx(t))
	if err != nil {
		t.Fatalf("pending: %v", err)
	}
	if n < int64(len(acked)) {
		t.Fatalf("%d messages after kill -9, %d were acknowledged", n, len(acked))
	}
	seen := map[string]bool{}
	for _, m := range fetchAll(t, q, int(n)) {
		seen[m.ID()] = true
	}
	for _, id := range acked {
		if !seen[id] {
			t.Fatalf("acknowledged message %s lost by kill -9", id)
		}
	}
	t.Logf("%d acknowledged before kill -9, %d stored after restart", len(acked), n)
}

// readAcked reads "acked ID" lines until want ids were seen.
func readAcked(t *testing.T, out interface{ Read([]byte) (int, error) }, want int) []string {
	t.Helper()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var acked []string
	timeout := time.After(2 * time.Minute)
	for len(acked) < want {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("child exited after %d acks", len(acked))
			}
			if id, found := strings.CutPrefix(line, "acked "); found {
				acked = append(acked, id)
			}
		case <-timeout:
			t.Fatalf("child acknowledged only %d messages in 2m", len(acked))
		}
	}
	go func() {
		for range lines { // keep the pipe drained until the kill
		}
	}()
	return acked
}

// runKillChild publishes until killed, printing each acknowledged id.
func runKillChild(t *testing.T, dir string) {
	ctx := context.Background()
	s, err := StartEmbedded(ctx, EmbeddedOptions{StoreDir: dir})
	if err != nil {
		t.Fatalf("child start: %v", err)
	}
	nc, err := s.Connect()
	if err != nil {
		t.Fatalf("child connect: %v", err)
	}
	q, err := Open(ctx, nc, killConfig)
	if err != nil {
		t.Fatalf("child open: %v", err)
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("k%06d", i)
		if err := q.Publish(ctx, id, []byte(strings.Repeat("x", 200))); err != nil {
			t.Fatalf("child publish: %v", err)
		}
		fmt.Fprintln(os.Stdout, "acked "+id)
	}
}
