// Package archive moves hours older than the retention out of SQL into
// Parquet files in an object store (a directory or an S3-compatible bucket)
// and brings them back on demand.
//
// Archiving an hour: its rows are encoded as one zstd Parquet part, an
// intent is recorded under pending/, the part is uploaded and read back
// (checksum, decode, row count and totals), the rows are removed from SQL
// in one transaction that records the part id in the ledger, and the part
// is added to the hour's manifest. A crash at any point is settled by the
// next run's recovery: a pending part whose id is in the ledger is added to
// the manifest, any other is deleted. Nothing is counted twice or lost.
//
// Restoring an hour writes a hold (so the archiver leaves the restored rows
// in SQL until it expires), then per part: read and verify, add the rows to
// SQL in one transaction that records "restore:<id>" in the ledger, delete
// the object, and drop the part from the manifest.
//
// Recovery reads the ledger, so the store must keep part ids (like batch
// ids) for longer than a node may stay down between a crash and its next
// run (the ledger's retention, >= 24 h).
//
// One Archiver at a time may work on a bucket: run RunOnce and Restore on
// the node holding the archive lease. Within one process they are
// serialised.
package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/lograte"
)

// Config configures an Archiver.
type Config struct {
	// Store holds the hourly rows (sqlite or postgres StatsStore).
	Store pathstats.ArchiveStore
	// Bucket receives the parts, manifests and holds (see OpenBucket).
	Bucket pathstats.ObjectStore
	// Retention: hours starting before HourBucket(now - Retention) are
	// archived. It must be positive; hours inside the store's rolling
	// window are refused by the store.
	Retention time.Duration
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
	// Registerer receives the pathstats_archive_* metrics (nil: none).
	Registerer prometheus.Registerer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Progress, when set, is called after each hour archived or restored.
	Progress func(Progress)
}

// Progress reports a long archive run or restore.
type Progress struct {
	Op    string `json:"op"`    // "archive" or "restore"
	Hour  int64  `json:"hour"`  // the hour just finished
	Done  int    `json:"done"`  // hours finished so far, this one included
	Total int    `json:"total"` // hours this run will visit
	Rows  int64  `json:"rows"`  // rows moved so far
}

// Result sums one RunOnce.
type Result struct {
	Hours     int   `json:"hours"`     // hours with a part committed
	Parts     int   `json:"parts"`     // parts committed
	Rows      int64 `json:"rows"`      // rows moved out of SQL
	Requests  int64 `json:"requests"`  // requests in those rows
	Bytes     int64 `json:"bytes"`     // bytes of Parquet written
	Held      int   `json:"held"`      // hours skipped because a restore holds them
	Recovered int   `json:"recovered"` // unfinished parts settled by recovery (committed or deleted)
}

// Archiver archives old hours and restores them.
type Archiver struct {
	cfg Config
	log *slog.Logger
	lim lograte.Limiter // failures, one line per stage and interval
	m   *metrics
	mu  sync.Mutex // serialises RunOnce and Restore
}

// New returns an Archiver for cfg.
func New(cfg Config) (*Archiver, error) {
	if cfg.Store == nil || cfg.Bucket == nil {
		return nil, errors.New("archiver: store and bucket are required")
	}
	if cfg.Retention <= 0 {
		return nil, fmt.Errorf("archiver: retention %v must be positive", cfg.Retention)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Archiver{cfg: cfg, log: log.With("component", "archive"), m: newMetrics(cfg.Registerer)}, nil
}

// fail counts err against stage, logs it (rate-limited per stage) and
// returns it.
func (a *Archiver) fail(stage string, err error) error {
	a.m.errors.WithLabelValues(stage).Inc()
	a.lim.Log(a.log, slog.LevelWarn, stage, "archive stage failed", "stage", stage, "err", err)
	return err
}

// cutoff returns the first hour bucket kept in SQL.
func (a *Archiver) cutoff() int64 {
	return pathstats.HourBucket(a.cfg.Now().Add(-a.cfg.Retention))
}

// RunOnce settles unfinished parts left by a crash, then archives every
// hour before the retention cutoff that holds rows and is not held by a
// restore. An hour that fails is logged and skipped (the next run retries
// it); the errors are returned joined, with the Result of what was done.
func (a *Archiver) RunOnce(ctx context.Context) (Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := time.Now()
	var res Result
	n, stuck, err := a.recoverPending(ctx)
	res.Recovered = n
	var errs []error
	if err != nil {
		if stuck == nil || ctx.Err() != nil {
			return res, fmt.Errorf("archive run: %w", err)
		}
		errs = append(errs, err)
	}
	held, err := a.activeHolds(ctx)
	if err != nil {
		return res, fmt.Errorf("archive run: %w", a.fail(stageHold, err))
	}
	hours, err := a.cfg.Store.HoursBefore(ctx, a.cutoff())
	if err != nil {
		return res, fmt.Errorf("archive run: %w", a.fail(stageList, err))
	}
	for i, hour := range hours {
		if _, ok := held[hour]; ok {
			res.Held++
			continue
		}
		if stuck[hour] {
			continue
		}
		if err := a.archiveHour(ctx, hour, &res); err != nil {
			errs = append(errs, err) // counted and logged by fail
			if ctx.Err() != nil {
				break
			}
		}
		a.progress(Progress{Op: opArchive, Hour: hour, Done: i + 1, Total: len(hours), Rows: res.Rows})
	}
	a.m.duration.WithLabelValues(opArchive).Observe(time.Since(start).Seconds())
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("archive run: %w", err)
	}
	a.m.lastSuccess.WithLabelValues(opArchive).Set(float64(a.cfg.Now().Unix()))
	if res.Parts > 0 || res.Recovered > 0 {
		a.log.Info("archive run", "hours", res.Hours, "rows", res.Rows, "bytes", res.Bytes,
			"held", res.Held, "recovered", res.Recovered, "took", time.Since(start))
	}
	return res, nil
}

// progress reports p when a callback is configured.
func (a *Archiver) progress(p Progress) {
	if a.cfg.Progress != nil {
		a.cfg.Progress(p)
	}
}

// encodedPart is a part ready to upload.
type encodedPart struct {
	Part
	hour int64
	data []byte
}

// encodePart encodes rows as the next part of manifest m.
func encodePart(m *Manifest, rows []pathstats.HourlyRow, now time.Time) (*encodedPart, error) {
	var buf bytes.Buffer
	t, err := EncodeParquet(&buf, rows)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	shaHex := hex.EncodeToString(sum[:])
	id := partIDFor(m.Hour, m.Revision, shaHex)
	return &encodedPart{
		Part: Part{ID: id, Key: PartKey(m.Hour, id), Rows: t.Rows, Bytes: int64(buf.Len()), SHA256: shaHex,
			Requests: t.Requests, Errors: t.Errors, CreatedAt: now.UTC()},
		hour: m.Hour,
		data: buf.Bytes(),
	}, nil
}

// archiveHour moves one hour's current rows into a new part.
func (a *Archiver) archiveHour(ctx context.Context, hour int64, res *Result) error {
	rows, err := a.cfg.Store.HourRows(ctx, hour)
	if err != nil {
		return a.fail(stageRead, fmt.Errorf("hour %s: %w", hourDir(hour), err))
	}
	if len(rows) == 0 {
		return nil
	}
	m, err := readManifest(ctx, a.cfg.Bucket, hour)
	if err != nil {
		return a.fail(stageManifest, fmt.Errorf("hour %s: %w", hourDir(hour), err))
	}
	p, err := encodePart(m, rows, a.cfg.Now())
	if err != nil {
		return a.fail(stageEncode, fmt.Errorf("hour %s: %w", hourDir(hour), err))
	}
	if err := a.upload(ctx, p); err != nil {
		return fmt.Errorf("hour %s: %w", hourDir(hour), err)
	}
	applied, err := a.cfg.Store.RemoveArchived(ctx, archiveLedgerID(p.ID), rows)
	if err != nil {
		return a.fail(stageRemove, fmt.Errorf("hour %s: part %s: %w", hourDir(hour), p.ID, err))
	}
	if !applied {
		a.log.Warn("part already removed from SQL; committing it", "part", p.ID)
	}
	if err := a.commit(ctx, m, p.Part); err != nil {
		return fmt.Errorf("hour %s: %w", hourDir(hour), err)
	}
	res.Hours++
	res.Parts++
	res.Rows += p.Rows
	res.Requests += p.Requests
	res.Bytes += p.Bytes
	a.m.hours.WithLabelValues(opArchive).Inc()
	a.m.parts.WithLabelValues(opArchive).Inc()
	a.m.rows.WithLabelValues(opArchive).Add(float64(p.Rows))
	a.m.bytes.WithLabelValues(opArchive).Add(float64(p.Bytes))
	return nil
}

// upload records the intent for p, writes it (unless an identical object
// is already there) and reads it back to verify it.
func (a *Archiver) upload(ctx context.Context, p *encodedPart) error {
	intent := pending{ID: p.ID, Hour: p.hour, Key: p.Key, CreatedAt: p.CreatedAt}
	if err := writeJSON(ctx, a.cfg.Bucket, pendingKey(p.ID), &intent); err != nil {
		return a.fail(stageUpload, fmt.Errorf("part %s: intent: %w", p.ID, err))
	}
	if err := verifyPart(ctx, a.cfg.Bucket, &p.Part); err != nil {
		if err := a.cfg.Bucket.Put(ctx, p.Key, p.data); err != nil {
			return a.fail(stageUpload, fmt.Errorf("part %s: %w", p.ID, err))
		}
		if err := verifyPart(ctx, a.cfg.Bucket, &p.Part); err != nil {
			return a.fail(stageVerify, fmt.Errorf("part %s: %w", p.ID, err))
		}
	}
	return nil
}

// commit adds part to manifest m (unless already there), writes it and
// clears the part's intent.
func (a *Archiver) commit(ctx context.Context, m *Manifest, part Part) error {
	if m.part(part.ID) == nil {
		m.Parts = append(m.Parts, part)
		if err := writeManifest(ctx, a.cfg.Bucket, m); err != nil {
			m.Parts = m.Parts[:len(m.Parts)-1]
			return a.fail(stageManifest, fmt.Errorf("part %s: %w", part.ID, err))
		}
	}
	if err := a.cfg.Bucket.Delete(ctx, pendingKey(part.ID)); err != nil {
		return a.fail(stageDelete, fmt.Errorf("part %s: clear intent: %w", part.ID, err))
	}
	return nil
}

// verifyPart reads the object of p back and checks its size, checksum,
// that it decodes and that its rows and totals are p's.
func verifyPart(ctx context.Context, store pathstats.ObjectStore, p *Part) error {
	_, err := readPart(ctx, store, p, nil)
	return err
}

// readPart reads the object of p, checks its size and checksum, decodes
// it (passing the rows to fn when not nil) and checks its totals are p's.
func readPart(ctx context.Context, store pathstats.ObjectStore, p *Part, fn func([]pathstats.HourlyRow) error) (int64, error) {
	data, err := readObject(ctx, store, p.Key)
	if err != nil {
		return 0, err
	}
	if int64(len(data)) != p.Bytes {
		return 0, fmt.Errorf("verify %s: %d bytes, want %d", p.Key, len(data), p.Bytes)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != p.SHA256 {
		return 0, fmt.Errorf("verify %s: sha256 %s, want %s", p.Key, got, p.SHA256)
	}
	t, err := DecodeParquet(data, fn)
	if err != nil {
		return 0, fmt.Errorf("verify %s: %w", p.Key, err)
	}
	if t != p.totals() {
		return 0, fmt.Errorf("verify %s: totals %+v, want %+v", p.Key, t, p.totals())
	}
	return int64(len(data)), nil
}
