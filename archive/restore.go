package archive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pathstats/pathstats"
)

// HourInfo describes one archived hour, from its manifest.
type HourInfo struct {
	Hour      int64     `json:"hour"` // hour bucket, unix seconds
	Parts     int       `json:"parts"`
	Rows      int64     `json:"rows"`
	Requests  int64     `json:"requests"`
	Errors    int64     `json:"errors"`
	Bytes     int64     `json:"bytes"`
	HeldUntil time.Time `json:"heldUntil,omitzero"` // a restore keeps the hour in SQL until then
}

// RestoreResult sums one Restore.
type RestoreResult struct {
	Hours    int   `json:"hours"`    // hours with at least one part restored
	Parts    int   `json:"parts"`    // parts restored
	Rows     int64 `json:"rows"`     // rows added back into SQL
	Requests int64 `json:"requests"` // requests in those rows
}

// List returns the archived hours with fromHour <= hour < toHour that hold
// at least one part, in hour order. It fails when the archive is broken:
// the bucket unreachable, a manifest unreadable, or a part a manifest lists
// missing or of another size than recorded.
func (a *Archiver) List(ctx context.Context, fromHour, toHour int64) ([]HourInfo, error) {
	ms, err := a.manifests(ctx, fromHour, toHour)
	if err != nil {
		return nil, fmt.Errorf("archive list: %w", err)
	}
	if err := a.checkParts(ctx, ms); err != nil {
		return nil, fmt.Errorf("archive list: %w", err)
	}
	holds, err := a.holdsIn(ctx, fromHour, toHour)
	if err != nil {
		return nil, fmt.Errorf("archive list: %w", err)
	}
	out := make([]HourInfo, 0, len(ms))
	for _, m := range ms {
		t, bytes := m.Totals()
		out = append(out, HourInfo{Hour: m.Hour, Parts: len(m.Parts), Rows: t.Rows, Requests: t.Requests,
			Errors: t.Errors, Bytes: bytes, HeldUntil: holds[m.Hour]})
	}
	return out, nil
}

// checkParts checks that every part the manifests ms list is stored with
// its recorded size (one listing; the checksums are verified when a part is
// read back or restored).
func (a *Archiver) checkParts(ctx context.Context, ms []*Manifest) error {
	if len(ms) == 0 {
		return nil
	}
	objs, err := a.cfg.Bucket.List(ctx, partsPrefix+commonPrefix(hourDir(ms[0].Hour), hourDir(ms[len(ms)-1].Hour)))
	if err != nil {
		return fmt.Errorf("list parts: %w", err)
	}
	size := make(map[string]int64, len(objs))
	for _, o := range objs {
		size[o.Key] = o.Size
	}
	for _, m := range ms {
		for _, p := range m.Parts {
			got, ok := size[p.Key]
			switch {
			case !ok:
				return fmt.Errorf("hour %s: part %s is missing", hourDir(m.Hour), p.ID)
			case got != p.Bytes:
				return fmt.Errorf("hour %s: part %s has %d bytes, the manifest says %d", hourDir(m.Hour), p.ID, got, p.Bytes)
			}
		}
	}
	return nil
}

// commonPrefix is the longest common prefix of a and b.
func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

// Restore brings the archived hours with fromHour <= hour < toHour back
// into SQL. For each hour it first writes a hold until now+hold (none when
// hold <= 0), so the archiver leaves the restored rows in SQL until then;
// then for each part it reads and verifies the object, adds its rows to SQL
// under the ledger id "restore:<part id>", deletes the object and drops the
// part from the manifest. A rerun after a crash finishes the job without
// adding any part twice. Hours inside the store's rolling window are
// refused by the store.
func (a *Archiver) Restore(ctx context.Context, fromHour, toHour int64, hold time.Duration) (RestoreResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := time.Now()
	var res RestoreResult
	ms, err := a.manifests(ctx, fromHour, toHour)
	if err != nil {
		return res, fmt.Errorf("archive restore: %w", a.fail(stageList, err))
	}
	for i, m := range ms {
		if err := a.restoreHour(ctx, m, hold, &res); err != nil {
			return res, fmt.Errorf("archive restore: hour %s: %w", hourDir(m.Hour), err)
		}
		a.progress(Progress{Op: opRestore, Hour: m.Hour, Done: i + 1, Total: len(ms), Rows: res.Rows})
	}
	a.m.duration.WithLabelValues(opRestore).Observe(time.Since(start).Seconds())
	a.m.lastSuccess.WithLabelValues(opRestore).Set(float64(a.cfg.Now().Unix()))
	a.log.Info("archive restore", "hours", res.Hours, "parts", res.Parts, "rows", res.Rows, "took", time.Since(start))
	return res, nil
}

// restoreHour holds one hour and restores each of its parts.
func (a *Archiver) restoreHour(ctx context.Context, m *Manifest, holdFor time.Duration, res *RestoreResult) error {
	if holdFor > 0 {
		if err := a.holdHour(ctx, m.Hour, a.cfg.Now().Add(holdFor)); err != nil {
			return a.fail(stageHold, err)
		}
	}
	restored := 0
	for len(m.Parts) > 0 {
		part := m.Parts[0]
		rows, err := a.restorePart(ctx, m.Hour, &part)
		if err != nil {
			return fmt.Errorf("part %s: %w", part.ID, err)
		}
		m.Parts = slices.Delete(m.Parts, 0, 1)
		if err := writeManifest(ctx, a.cfg.Bucket, m); err != nil {
			return a.fail(stageManifest, fmt.Errorf("part %s: %w", part.ID, err))
		}
		restored++
		res.Parts++
		res.Rows += rows
		res.Requests += part.Requests
		a.m.parts.WithLabelValues(opRestore).Inc()
		a.m.rows.WithLabelValues(opRestore).Add(float64(rows))
	}
	if restored > 0 {
		res.Hours++
		a.m.hours.WithLabelValues(opRestore).Inc()
	}
	return nil
}

// restorePart adds one part's rows back into SQL (once) and deletes its
// object. A missing object is accepted when the ledger shows the part was
// restored (a crash after the delete); rows is then 0.
func (a *Archiver) restorePart(ctx context.Context, hour int64, part *Part) (rows int64, err error) {
	var got []pathstats.HourlyRow
	size, err := readPart(ctx, a.cfg.Bucket, part, func(chunk []pathstats.HourlyRow) error {
		if got == nil {
			got = make([]pathstats.HourlyRow, 0, part.Rows)
		}
		for i := range chunk {
			if chunk[i].Hour != hour {
				return fmt.Errorf("row %s of hour %d in a part of hour %d", chunk[i].Path, chunk[i].Hour, hour)
			}
		}
		got = append(got, chunk...)
		return nil
	})
	if errors.Is(err, pathstats.ErrNotFound) {
		done, lerr := a.cfg.Store.LedgerHas(ctx, restoreLedgerID(part.ID))
		if lerr != nil {
			return 0, a.fail(stageRestore, lerr)
		}
		if done {
			return 0, nil
		}
		return 0, a.fail(stageRead, fmt.Errorf("part object missing and not restored: %w", err))
	}
	if err != nil {
		return 0, a.fail(stageVerify, err)
	}
	applied, err := a.cfg.Store.RestoreArchived(ctx, restoreLedgerID(part.ID), got)
	if err != nil {
		return 0, a.fail(stageRestore, err)
	}
	if err := a.cfg.Bucket.Delete(ctx, part.Key); err != nil {
		return 0, a.fail(stageDelete, err)
	}
	a.m.bytes.WithLabelValues(opRestore).Add(float64(size))
	if !applied {
		return 0, nil
	}
	return int64(len(got)), nil
}

// holdHour writes (or extends) the hold of an hour until until.
func (a *Archiver) holdHour(ctx context.Context, hour int64, until time.Time) error {
	var h hold
	found, err := readJSON(ctx, a.cfg.Bucket, holdKey(hour), &h)
	if err != nil {
		return fmt.Errorf("read hold: %w", err)
	}
	if found && !h.Until.Before(until) {
		return nil
	}
	if err := writeJSON(ctx, a.cfg.Bucket, holdKey(hour), &hold{Hour: hour, Until: until.UTC()}); err != nil {
		return fmt.Errorf("write hold: %w", err)
	}
	return nil
}

// manifests reads the manifests of the hours fromHour <= hour < toHour
// that hold at least one part, in hour order.
func (a *Archiver) manifests(ctx context.Context, fromHour, toHour int64) ([]*Manifest, error) {
	keys, err := a.hourKeys(ctx, manifestsPrefix, fromHour, toHour)
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, hour := range keys {
		m, err := readManifest(ctx, a.cfg.Bucket, hour)
		if err != nil {
			return nil, err
		}
		if len(m.Parts) > 0 {
			out = append(out, m)
		}
	}
	return out, nil
}

// holdsIn returns the unexpired holds of hours in [fromHour, toHour).
func (a *Archiver) holdsIn(ctx context.Context, fromHour, toHour int64) (map[int64]time.Time, error) {
	hours, err := a.hourKeys(ctx, holdsPrefix, fromHour, toHour)
	if err != nil {
		return nil, err
	}
	now := a.cfg.Now()
	out := make(map[int64]time.Time)
	for _, hour := range hours {
		var h hold
		found, err := readJSON(ctx, a.cfg.Bucket, holdKey(hour), &h)
		if err != nil {
			return nil, fmt.Errorf("read hold: %w", err)
		}
		if found && h.Until.After(now) {
			out[hour] = h.Until
		}
	}
	return out, nil
}

// lastKeyHour is the last hour a key can name (year 9999).
var lastKeyHour = time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC).Unix()

// hourKeys lists the hours of the per-hour objects under prefix
// (manifests/ or holds/) in [fromHour, toHour), in hour order. It lists
// only the longest key prefix that the whole range shares.
func (a *Archiver) hourKeys(ctx context.Context, prefix string, fromHour, toHour int64) ([]int64, error) {
	// Keys hold four-digit years: clamp the range to them, or the shared
	// prefix of far-apart bounds would be wrong.
	fromHour, toHour = max(fromHour, 0), min(toHour, lastKeyHour+3600)
	if toHour <= fromHour {
		return nil, nil
	}
	first, last := prefix+hourDir(fromHour), prefix+hourDir(pathstats.HourBucket(time.Unix(toHour-1, 0)))
	common := 0
	for common < len(first) && common < len(last) && first[common] == last[common] {
		common++
	}
	objs, err := a.cfg.Bucket.List(ctx, first[:common])
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	var out []int64
	for _, o := range objs {
		hour, ok := parseHourKey(prefix, o.Key)
		if ok && hour >= fromHour && hour < toHour {
			out = append(out, hour)
		}
	}
	slices.Sort(out)
	return out, nil
}
