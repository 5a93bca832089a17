package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/pathstats/pathstats"
)

// recoverPending settles every part intent left by an interrupted run. For
// each intent whose part is not in its manifest: a part restored since
// (restore ledger) or never removed from SQL (no archive ledger entry) is
// deleted; a part whose rows were removed (archive ledger entry) is added
// to the manifest. It returns how many intents it settled and the hours of
// those it could not settle (with the errors joined), which the run then
// leaves alone.
func (a *Archiver) recoverPending(ctx context.Context) (int, map[int64]bool, error) {
	objs, err := a.cfg.Bucket.List(ctx, pendingPrefix)
	if err != nil {
		return 0, nil, a.fail(stageRecover, fmt.Errorf("recover: %w", err))
	}
	n, stuck := 0, make(map[int64]bool)
	var errs []error
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		var p pending
		found, err := readJSON(ctx, a.cfg.Bucket, o.Key, &p)
		if err != nil {
			return n, nil, a.fail(stageRecover, fmt.Errorf("recover: %w", err))
		}
		if !found || p.ID == "" || pendingKey(p.ID) != o.Key || p.Key != PartKey(p.Hour, p.ID) {
			a.log.Warn("ignoring malformed part intent", "key", o.Key)
			continue
		}
		if err := a.settle(ctx, &p); err != nil {
			stuck[p.Hour] = true
			errs = append(errs, a.fail(stageRecover, fmt.Errorf("recover part %s: %w", p.ID, err)))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		n++
	}
	return n, stuck, errors.Join(errs...)
}

// settle finishes or undoes the part of one intent.
func (a *Archiver) settle(ctx context.Context, p *pending) error {
	m, err := readManifest(ctx, a.cfg.Bucket, p.Hour)
	if err != nil {
		return err
	}
	if m.part(p.ID) != nil {
		return a.cfg.Bucket.Delete(ctx, pendingKey(p.ID))
	}
	restored, err := a.cfg.Store.LedgerHas(ctx, restoreLedgerID(p.ID))
	if err != nil {
		return err
	}
	removed := false
	if !restored {
		if removed, err = a.cfg.Store.LedgerHas(ctx, archiveLedgerID(p.ID)); err != nil {
			return err
		}
	}
	if !removed {
		a.log.Info("deleting unfinished part", "part", p.ID, "restored", restored)
		if err := a.cfg.Bucket.Delete(ctx, p.Key); err != nil {
			return err
		}
		return a.cfg.Bucket.Delete(ctx, pendingKey(p.ID))
	}
	part, err := describePart(ctx, a.cfg.Bucket, p)
	if err != nil {
		return fmt.Errorf("rows removed from SQL but part unreadable: %w", err)
	}
	a.log.Info("committing part left unfinished", "part", p.ID, "rows", part.Rows)
	return a.commit(ctx, m, part)
}

// describePart reads an uploaded part and returns its manifest entry,
// checking that its content matches its id.
func describePart(ctx context.Context, store pathstats.ObjectStore, p *pending) (Part, error) {
	data, err := readObject(ctx, store, p.Key)
	if err != nil {
		return Part{}, err
	}
	sum := sha256.Sum256(data)
	shaHex := hex.EncodeToString(sum[:])
	if !strings.HasSuffix(p.ID, "-"+shaHex[:16]) {
		return Part{}, fmt.Errorf("%s: sha256 %s does not match the part id", p.Key, shaHex)
	}
	t, err := DecodeParquet(data, nil)
	if err != nil {
		return Part{}, fmt.Errorf("%s: %w", p.Key, err)
	}
	return Part{ID: p.ID, Key: p.Key, Rows: t.Rows, Bytes: int64(len(data)), SHA256: shaHex,
		Requests: t.Requests, Errors: t.Errors, CreatedAt: p.CreatedAt}, nil
}

// activeHolds returns the held hours whose hold has not expired, deleting
// expired holds.
func (a *Archiver) activeHolds(ctx context.Context) (map[int64]hold, error) {
	objs, err := a.cfg.Bucket.List(ctx, holdsPrefix)
	if err != nil {
		return nil, fmt.Errorf("list holds: %w", err)
	}
	now := a.cfg.Now()
	out := make(map[int64]hold)
	for _, o := range objs {
		hour, ok := parseHourKey(holdsPrefix, o.Key)
		if !ok {
			continue
		}
		var h hold
		found, err := readJSON(ctx, a.cfg.Bucket, o.Key, &h)
		if err != nil {
			return nil, fmt.Errorf("read hold: %w", err)
		}
		if !found {
			continue
		}
		if h.Until.After(now) {
			out[hour] = h
			continue
		}
		if err := a.cfg.Bucket.Delete(ctx, o.Key); err != nil && !errors.Is(err, pathstats.ErrNotFound) {
			return nil, fmt.Errorf("delete expired hold: %w", err)
		}
	}
	return out, nil
}
