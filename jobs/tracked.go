package jobs

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// tracked is a job running (or run) on this node: its current record, a
// version that grows with each change and a channel closed on each change.
type tracked struct {
	id      string
	mu      sync.Mutex
	job     Job
	ver     uint64
	changed chan struct{}
}

func newTracked(j Job) *tracked {
	return &tracked{id: j.ID, job: j, changed: make(chan struct{})}
}

// bump records a change; the caller holds mu.
func (t *tracked) bump() {
	t.ver++
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *tracked) snapshot() Job {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.job
}

func (t *tracked) version() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ver
}

// setProgress is the report function handed to the job.
func (t *tracked) setProgress(p any) {
	data, err := json.Marshal(p)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.job.Progress = data
	t.bump()
}

// touch stamps the record as written now and returns it.
func (t *tracked) touch() Job {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.job.UpdatedAt = time.Now().UTC()
	return t.job
}

// finish records the outcome and returns the final record.
func (t *tracked) finish(res any, jerr *Error) Job {
	var result json.RawMessage
	if res != nil {
		if data, err := json.Marshal(res); err == nil {
			result = data
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now().UTC()
	t.job.Result, t.job.Error, t.job.UpdatedAt, t.job.FinishedAt = result, jerr, now, &now
	t.job.State = Succeeded
	if jerr != nil {
		t.job.State = Failed
	}
	t.bump()
	return t.job
}

// next waits until the version is not v (or ctx ends) and returns the
// record and its version.
func (t *tracked) next(ctx context.Context, v uint64) (Job, uint64) {
	t.mu.Lock()
	ch, cur := t.changed, t.ver
	j := t.job
	t.mu.Unlock()
	if cur != v {
		return j, cur
	}
	select {
	case <-ctx.Done():
	case <-ch:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.job, t.ver
}
