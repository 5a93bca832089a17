package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
)

func openKV(t *testing.T) pathstats.KV {
	t.Helper()
	return testutil.MustOpenKV(t, testutil.MustStartNATS(t, 0), "jobs_test")
}

// waitState polls m until job id is in state, failing after a minute.
func waitState(t *testing.T, m *Manager, id, state string) Job {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		j, err := m.Get(context.Background(), id)
		if err == nil && j.State == state {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %+v %v, want state %s", id, j, err, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestJobSeenFromAnotherNode: a job's progress and outcome reach the KV,
// so another node's Manager answers for it; errors keep their code.
func TestJobSeenFromAnotherNode(t *testing.T) {
	kv := openKV(t)
	ctx := context.Background()
	a := New(ctx, Config{KV: kv, Node: "a", Every: 10 * time.Millisecond})
	b := New(ctx, Config{KV: kv, Node: "b"})
	release := make(chan struct{})
	job, err := a.Start(ctx, "restore", func(ctx context.Context, report func(any)) (any, error) {
		report(map[string]int{"done": 1, "total": 2})
		<-release
		return map[string]int{"rows": 7}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ValidID(job.ID) || job.State != Running || job.Node != "a" || job.Op != "restore" {
		t.Fatalf("started %+v", job)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		j, err := b.Get(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(j.Progress) == `{"done":1,"total":2}` && j.State == Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress never reached the other node: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	j := waitState(t, b, job.ID, Succeeded)
	if string(j.Result) != `{"rows":7}` || j.Error != nil || j.FinishedAt == nil {
		t.Fatalf("outcome seen by b: %+v", j)
	}

	for _, c := range []struct {
		err       error
		code, msg string
	}{
		{pathstats.Errorf(pathstats.EConflict, "busy"), pathstats.EConflict, "busy"},
		{errors.New("disk on fire at /secret/path"), pathstats.EInternal, "internal error (see the server log)"},
	} {
		job, err := a.Start(ctx, "archive", func(context.Context, func(any)) (any, error) { return map[string]int{"hours": 1}, c.err })
		if err != nil {
			t.Fatal(err)
		}
		j := waitState(t, b, job.ID, Failed)
		if j.Error == nil || j.Error.Code != c.code || j.Error.Message != c.msg || string(j.Result) != `{"hours":1}` {
			t.Fatalf("failed job %+v (error %+v), want %s %q", j, j.Error, c.code, c.msg)
		}
	}
	list, err := b.List(ctx, 10)
	if err != nil || len(list) != 3 || list[0].StartedAt.Before(list[1].StartedAt) || list[2].ID != job.ID {
		t.Fatalf("list: %v %+v", err, list)
	}
	if _, err := b.Get(ctx, "0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
}

// TestShutdownInterruptsJobs: cancelling the Manager's context ends a
// running job as failed (interrupted), recorded before Wait returns.
func TestShutdownInterruptsJobs(t *testing.T) {
	kv := openKV(t)
	ctx, cancel := context.WithCancel(context.Background())
	m := New(ctx, Config{KV: kv, Node: "a"})
	reqCtx, reqCancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	job, err := m.Start(reqCtx, "archive", func(ctx context.Context, _ func(any)) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	reqCancel() // the request that started it ends: the job goes on
	time.Sleep(50 * time.Millisecond)
	if j, _ := m.Get(context.Background(), job.ID); j.State != Running {
		t.Fatalf("job ended with its request: %+v", j)
	}
	cancel()
	m.Wait()
	other := New(context.Background(), Config{KV: kv, Node: "b"})
	j, err := other.Get(context.Background(), job.ID)
	if err != nil || j.State != Failed || j.Error == nil || j.Error.Code != pathstats.EUnavailable || !strings.HasPrefix(j.Error.Message, "interrupted") {
		t.Fatalf("after shutdown: %+v %v", j, err)
	}
}

// TestStaleAndPrune: a running record nobody writes any more is reported
// failed; finished jobs older than Retain are deleted when a job starts.
func TestStaleAndPrune(t *testing.T) {
	kv := openKV(t)
	ctx := context.Background()
	put := func(j Job) {
		data, _ := json.Marshal(j)
		if _, err := kv.Put(ctx, keyPrefix+j.ID, data); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-25 * time.Hour)
	recent := time.Now().Add(-time.Hour)
	put(Job{ID: "00000000000000aa", Op: "archive", State: Running, StartedAt: old, UpdatedAt: old, Node: "gone"})
	put(Job{ID: "00000000000000bb", Op: "archive", State: Succeeded, StartedAt: old, UpdatedAt: old, FinishedAt: &old, Node: "x"})
	put(Job{ID: "00000000000000cc", Op: "archive", State: Succeeded, StartedAt: recent, UpdatedAt: recent, FinishedAt: &recent, Node: "x"})
	m := New(ctx, Config{KV: kv, Node: "a"})
	j, err := m.Get(ctx, "00000000000000aa")
	if err != nil || j.State != Failed || j.Error == nil || !strings.Contains(j.Error.Message, "node gone stopped reporting") {
		t.Fatalf("stale job: %+v %v", j, err)
	}
	job, err := m.Start(ctx, "archive", func(context.Context, func(any)) (any, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	m.Wait()
	keys, err := kv.Keys(ctx, keyPrefix)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{keyPrefix + "00000000000000cc": true, keyPrefix + job.ID: true}
	if len(keys) != 2 || !want[keys[0]] || !want[keys[1]] {
		t.Fatalf("after pruning: %v, want the recent job and the new one", keys)
	}
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{"0123456789abcdef", "0123456789ABCDEF", "", "nope", "0123456789abcdeg", "0123456789abcdef0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := ValidID(s)
		if ok != (len(s) == 16 && strings.Trim(s, "0123456789abcdef") == "") {
			t.Fatalf("ValidID(%q) = %v", s, ok)
		}
		if id, err := newID(); err != nil || !ValidID(id) {
			t.Fatalf("newID %q %v", id, err)
		}
	})
}
