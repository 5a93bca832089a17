package legacy

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

const (
	killChildEnv   = "PATHSTATS_LEGACY_KILL_CHILD"
	killFlushed    = "LEGACY-FLUSHED"
	killPaths      = 200
	killPerPath    = 7
	killFlushEvery = 50 * time.Millisecond
)

// TestKillRestores runs a child process (this test binary) that observes
// known traffic, waits until a write-behind flush that started after the
// traffic has committed, reports it, then keeps observing other paths until
// it is SIGKILLed. Reopening must restore every increment observed before
// that flush; increments after it (at most one FlushInterval) may be lost.
func TestKillRestores(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillRestores$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	found := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), killFlushed) {
			found = true
			break
		}
	}
	time.Sleep(3 * killFlushEvery) // let the child flush some of the later paths too
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if !found {
		t.Fatal("child never reported its flush")
	}

	s := openSys(t, dir, func() time.Time { return t0 }, nil)
	page, err := s.Paths(testCtx(t), pathstats.PathQuery{Q: "/before/", Page: 1, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != killPaths {
		t.Fatalf("restored %d paths observed before the flush, want %d", page.Total, killPaths)
	}
	for _, it := range page.Items {
		if it.Requests != killPerPath || it.Errors != 2 || it.ClientErrors != 1 {
			t.Fatalf("restored %+v, want %d requests, 2 errors, 1 client error", it, killPerPath)
		}
	}
	after, err := s.Paths(testCtx(t), pathstats.PathQuery{Q: "/after/", Page: 1, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("paths observed after the reported flush that survived the kill: %d", after.Total)
}

// killChild is the child process's side of TestKillRestores.
func killChild(dir string) {
	s, err := Open(context.Background(), Config{Dir: dir, FlushInterval: killFlushEvery, Now: func() time.Time { return t0 }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	statuses := []int{200, 500, 404, 503, 200, 201, 302}
	for j := range killPerPath {
		for i := range killPaths {
			s.Observe("p", fmt.Sprintf("/before/%d", i), statuses[j], 0, t0)
		}
	}
	// Every increment above was sent before the dirty list was taken by a
	// flush; holding the flush lock with nothing dirty means those flushes
	// committed.
	for {
		time.Sleep(killFlushEvery)
		s.flushMu.Lock()
		s.dirtyMu.Lock()
		clean := len(s.dirty) == 0
		s.dirtyMu.Unlock()
		s.flushMu.Unlock()
		if clean && s.flushes.Load() > 0 {
			break
		}
	}
	fmt.Println(killFlushed)
	for i := 0; ; i++ {
		s.Observe("p", fmt.Sprintf("/after/%d", i), 200, 0, t0)
		time.Sleep(time.Millisecond)
	}
}
