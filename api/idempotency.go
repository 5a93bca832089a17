package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/pathstats/pathstats"
)

// IdempotencyTTL is how long an Idempotency-Key stays bound to the body it
// was first sent with (the store must expire entries no sooner). It equals
// the batch ledger's retention (aggregator.Config.LedgerTTL, 48 h): while
// the ledger still knows a request's batch ids, its key is known too, so a
// late resend is a duplicate rather than a new request the ledger skips.
const IdempotencyTTL = 48 * time.Hour

// idempotencyTimeout bounds one call to the key store.
const idempotencyTimeout = 3 * time.Second

var errKeyReused = pathstats.Errorf(pathstats.EIdempotencyKeyReused,
	"this Idempotency-Key was already used with another body; send a new key for new events")

// keyRecord is what the store holds per key: the body's digest, the events
// it carried and whether its batches were all enqueued.
type keyRecord struct {
	Digest   string `json:"d"`
	Accepted int    `json:"a"`
	Done     bool   `json:"done,omitempty"`
	AtMs     int64  `json:"t"`
}

// keyClaim is a request's hold on its key: done when the key's request was
// already accepted whole (a duplicate); else rev is the pending record's
// revision, which completeKey moves to done.
type keyClaim struct {
	rec  keyRecord
	rev  uint64
	done bool
}

// storeKey is the store's key of an Idempotency-Key (hashed: the store's
// key alphabet is limited and keys are client data).
func storeKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "idem:" + hex.EncodeToString(sum[:20])
}

// claimKey binds key to digest, or finds it bound: to another body (422),
// to this body and done (a duplicate), or to this body and pending (an
// earlier attempt did not finish: publish again, the batch ids are the
// same).
func (h *Ingest) claimKey(ctx context.Context, key, digest string, accepted int) (keyClaim, error) {
	rec := keyRecord{Digest: digest, Accepted: accepted, AtMs: h.now().UnixMilli()}
	value, err := json.Marshal(rec)
	if err != nil {
		return keyClaim{}, err
	}
	for range 3 {
		cctx, cancel := context.WithTimeout(ctx, idempotencyTimeout)
		rev, err := h.Keys.Create(cctx, storeKey(key), value)
		cancel()
		if err == nil {
			return keyClaim{rec: rec, rev: rev}, nil
		}
		if !errors.Is(err, pathstats.ErrConflict) {
			return keyClaim{}, h.keyStoreDown(err)
		}
		have, rev, err := h.loadKey(ctx, key)
		switch {
		case errors.Is(err, pathstats.ErrNotFound):
			continue // expired or deleted meanwhile: create again
		case err != nil:
			return keyClaim{}, h.keyStoreDown(err)
		case have.Digest != digest:
			return keyClaim{}, errKeyReused
		}
		return keyClaim{rec: have, rev: rev, done: have.Done}, nil
	}
	return keyClaim{}, h.keyStoreDown(errors.New("key kept changing"))
}

// completeKey marks a claimed key done. first is false when another attempt
// completed it meanwhile (then that attempt told the observer).
func (h *Ingest) completeKey(ctx context.Context, key string, c keyClaim) (first bool, err error) {
	rec := c.rec
	rec.Done = true
	value, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idempotencyTimeout)
	defer cancel()
	_, err = h.Keys.Update(cctx, storeKey(key), value, c.rev)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, pathstats.ErrConflict) {
		return false, err
	}
	have, _, err := h.loadKey(cctx, key)
	if err != nil {
		return false, err
	}
	if !have.Done {
		return false, errors.New("idempotency key changed but is not done")
	}
	return false, nil
}

// loadKey reads the record of key.
func (h *Ingest) loadKey(ctx context.Context, key string) (keyRecord, uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, idempotencyTimeout)
	defer cancel()
	e, err := h.Keys.Get(cctx, storeKey(key))
	if err != nil {
		return keyRecord{}, 0, err
	}
	var rec keyRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return keyRecord{}, 0, errors.New("unreadable idempotency record")
	}
	return rec, e.Revision, nil
}

// keyStoreDown is the answer when the key store cannot be used: nothing was
// enqueued, so a retry with the same key is safe.
func (h *Ingest) keyStoreDown(err error) error {
	h.lim.Warn(h.logger(), "ingest: idempotency key store unavailable", "err", err)
	return pathstats.Errorf(pathstats.EUnavailable,
		"idempotency key store unavailable; nothing was enqueued, retry with the same Idempotency-Key")
}
