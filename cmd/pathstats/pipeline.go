package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/aggregator"
	"github.com/pathstats/pathstats/nats"
	"github.com/pathstats/pathstats/recorder"
	"github.com/pathstats/pathstats/sqlite"
)

// runPipelineLoad measures in-process recording → JetStream → aggregator →
// committed SQLite rows, on embedded backends in a temporary directory:
// sustained events/s, and the delay from recording an event to its row
// being committed (probe events, polled in SQL).
func runPipelineLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen pipeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("duration", 60*time.Second, "how long to record")
	paths := fs.Int("paths", 10_000, "distinct paths")
	workers := fs.Int("workers", 2, "recording goroutines")
	rate := fs.Float64("rate", 0, "events/s in total (0 = as fast as possible)")
	flush := fs.Duration("flush-interval", time.Second, "recorder flush interval")
	dir := fs.String("dir", "", "data directory (default: a new temp dir, removed after)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "pathstats-pipeline-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	p, err := openPipeline(ctx, *dir, recorder.Config{FlushInterval: *flush})
	if err != nil {
		return err
	}
	defer p.close()
	names := make([]string, *paths)
	for i := range names {
		names[i] = fmt.Sprintf("/api/v1/res%d/items/%d", i, 1000+i)
	}
	fmt.Fprintf(stdout, "pipeline: %d paths, %d workers, %s, flush %s, data in %s\n", *paths, *workers, *dur, *flush, *dir)
	probes := newProber(p)
	go probes.run(ctx)
	recorded, elapsed := p.record(ctx, names, *workers, *dur, *rate)
	probes.stop()
	applyStart := time.Now()
	if err := p.finish(ctx); err != nil {
		return err
	}
	drainTime := time.Since(applyStart)
	stored, err := p.storedEvents(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recorded=%d in %s: %.0f events/s\n", recorded, elapsed.Round(time.Millisecond), float64(recorded)/elapsed.Seconds())
	fmt.Fprintf(stdout, "committed=%d (drain after recording stopped: %s) → %.0f events/s end to end\n",
		stored-probes.sent.Load(), drainTime.Round(time.Millisecond), float64(stored-probes.sent.Load())/(elapsed+drainTime).Seconds())
	fmt.Fprintf(stdout, "event→committed row delay over %d probes: p50=%s p99=%s max=%s\n",
		len(probes.delays), probes.pct(0.5), probes.pct(0.99), probes.pct(1))
	if stored-probes.sent.Load() != recorded {
		return fmt.Errorf("SQL holds %d events, recorded %d", stored-probes.sent.Load(), recorded)
	}
	return nil
}

// pipeline is recorder → embedded JetStream → aggregator → SQLite.
type pipeline struct {
	srv    *nats.Server
	queue  *nats.Queue
	store  *sqlite.StatsStore
	rec    *recorder.Recorder
	agg    *aggregator.Aggregator
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func openPipeline(ctx context.Context, dir string, rc recorder.Config) (*pipeline, error) {
	quiet := slog.New(slog.DiscardHandler)
	p := &pipeline{}
	var err error
	if p.srv, err = nats.StartEmbedded(ctx, nats.EmbeddedOptions{StoreDir: filepath.Join(dir, "nats")}); err != nil {
		return nil, err
	}
	nc, err := p.srv.Connect()
	if err != nil {
		p.close()
		return nil, err
	}
	if p.queue, err = nats.Open(ctx, nc, nats.QueueConfig{}); err != nil {
		p.close()
		return nil, err
	}
	if p.store, err = sqlite.Open(ctx, filepath.Join(dir, "pathstats.db"), sqlite.Options{}); err != nil {
		p.close()
		return nil, err
	}
	rc.Logger = quiet
	p.rec = recorder.New(rc, p.queue)
	p.agg = aggregator.New(aggregator.Config{Logger: quiet}, p.queue, p.store, nil)
	wctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.rec.Run(wctx) }()
	go func() { defer p.wg.Done(); p.agg.Run(wctx) }()
	return p, nil
}

// record calls Record from workers for dur, paced to rate when rate > 0.
func (p *pipeline) record(ctx context.Context, names []string, workers int, dur time.Duration, rate float64) (int64, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var total atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var n int64
			i := w * 7919
			for ctx.Err() == nil {
				now := time.Now()
				for k := 0; k < 1000; k++ { // one clock read per 1,000 events
					p.rec.Record("load", names[i%len(names)], 200+(i&3)*100, time.Duration(i&255)*time.Millisecond, now)
					i++
				}
				n += 1000
				if rate > 0 {
					ahead := time.Duration(float64(n)*float64(workers)/rate*float64(time.Second)) - time.Since(start)
					if ahead > 0 {
						time.Sleep(ahead)
					}
				}
			}
			total.Add(n)
		}(w)
	}
	wg.Wait()
	return total.Load(), time.Since(start)
}

// finish stops recording, publishes what is buffered and drains the queue.
func (p *pipeline) finish(ctx context.Context) error {
	p.cancel()
	p.wg.Wait()
	if err := p.rec.Close(ctx); err != nil {
		return err
	}
	return p.agg.Drain(ctx, 250*time.Millisecond)
}

func (p *pipeline) storedEvents(ctx context.Context) (int64, error) {
	rows, err := p.store.PathTotals(ctx, 0, 1<<62)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range rows {
		n += r.Requests
	}
	return n, nil
}

func (p *pipeline) close() {
	if p.cancel != nil {
		p.cancel()
		p.wg.Wait()
	}
	if p.store != nil {
		_ = p.store.Close()
	}
	if p.queue != nil {
		_ = p.queue.Close()
	}
	if p.srv != nil {
		p.srv.Shutdown()
	}
}

// prober records one event on a probe path every 100 ms and polls SQL for
// it, measuring event → committed row delay.
type prober struct {
	p      *pipeline
	sent   atomic.Int64
	done   chan struct{}
	ended  chan struct{}
	delays []time.Duration
}

func newProber(p *pipeline) *prober {
	return &prober{p: p, done: make(chan struct{}), ended: make(chan struct{})}
}

func (pr *prober) run(ctx context.Context) {
	defer close(pr.ended)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var sentAt []time.Time
	seen := int64(0)
	for {
		select {
		case <-pr.done:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		pr.p.rec.Record("probe", "/probe", 200, time.Millisecond, now)
		pr.sent.Add(1)
		sentAt = append(sentAt, now)
		n := pr.count(ctx)
		for ; seen < n && int(seen) < len(sentAt); seen++ {
			pr.delays = append(pr.delays, time.Since(sentAt[seen]))
		}
	}
}

func (pr *prober) count(ctx context.Context) int64 {
	h := pathstats.HourBucket(time.Now())
	rows, err := pr.p.store.HourlySeries(ctx, "/probe", h-3600, h+3600)
	if err != nil {
		return 0
	}
	var n int64
	for _, r := range rows {
		n += r.Counts.Requests()
	}
	return n
}

func (pr *prober) stop() {
	close(pr.done)
	<-pr.ended
	slices.Sort(pr.delays)
}

func (pr *prober) pct(q float64) time.Duration {
	if len(pr.delays) == 0 {
		return 0
	}
	return pr.delays[min(int(q*float64(len(pr.delays))), len(pr.delays)-1)].Round(time.Millisecond)
}
