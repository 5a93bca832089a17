package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pathstats/pathstats"
)

// Manifest lists the committed parts of one archived hour. It is the source
// of truth: a part object not in its hour's manifest holds no archived rows
// (it is an unfinished upload, or a restored part awaiting deletion).
// Revision grows with every change and never goes back, even when restores
// empty the manifest, so part ids are never reused for an hour.
type Manifest struct {
	Hour     int64  `json:"hour"`
	HourTime string `json:"hourTime"` // the hour in RFC 3339, for people
	Revision int64  `json:"revision"`
	Parts    []Part `json:"parts"`
}

// Part is one committed Parquet file of an hour.
type Part struct {
	ID        string    `json:"id"`
	Key       string    `json:"key"`
	Rows      int64     `json:"rows"`
	Bytes     int64     `json:"bytes"`
	SHA256    string    `json:"sha256"`
	Requests  int64     `json:"requests"`
	Errors    int64     `json:"errors"`
	CreatedAt time.Time `json:"createdAt"`
}

// totals returns the totals recorded for the part.
func (p *Part) totals() Totals {
	return Totals{Rows: p.Rows, Requests: p.Requests, Errors: p.Errors}
}

// newManifest returns the empty manifest of an hour.
func newManifest(hour int64) *Manifest {
	return &Manifest{Hour: hour, HourTime: time.Unix(hour, 0).UTC().Format(time.RFC3339), Parts: []Part{}}
}

// part returns the part with id, or nil.
func (m *Manifest) part(id string) *Part {
	for i := range m.Parts {
		if m.Parts[i].ID == id {
			return &m.Parts[i]
		}
	}
	return nil
}

// Totals sums the manifest's parts.
func (m *Manifest) Totals() (t Totals, bytes int64) {
	for i := range m.Parts {
		t.Rows += m.Parts[i].Rows
		t.Requests += m.Parts[i].Requests
		t.Errors += m.Parts[i].Errors
		bytes += m.Parts[i].Bytes
	}
	return t, bytes
}

// readManifest reads an hour's manifest; a missing one is returned empty.
func readManifest(ctx context.Context, store pathstats.ObjectStore, hour int64) (*Manifest, error) {
	m := newManifest(hour)
	found, err := readJSON(ctx, store, ManifestKey(hour), m)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if found && m.Hour != hour {
		return nil, fmt.Errorf("read manifest %s: holds hour %d", ManifestKey(hour), m.Hour)
	}
	if m.Parts == nil {
		m.Parts = []Part{}
	}
	return m, nil
}

// writeManifest stores m as its next revision.
func writeManifest(ctx context.Context, store pathstats.ObjectStore, m *Manifest) error {
	m.Revision++
	if err := writeJSON(ctx, store, ManifestKey(m.Hour), m); err != nil {
		m.Revision--
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// hold keeps a restored hour out of the archiver until Until.
type hold struct {
	Hour  int64     `json:"hour"`
	Until time.Time `json:"until"`
}

// pending records the intent to commit a part, written before the part is
// uploaded so that recovery finds unfinished uploads without listing every
// part.
type pending struct {
	ID        string    `json:"id"`
	Hour      int64     `json:"hour"`
	Key       string    `json:"key"`
	CreatedAt time.Time `json:"createdAt"`
}

// readJSON decodes the object at key into v; found is false when it is
// missing.
func readJSON(ctx context.Context, store pathstats.ObjectStore, key string, v any) (found bool, err error) {
	data, err := readObject(ctx, store, key)
	if errors.Is(err, pathstats.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

// writeJSON stores v as indented JSON at key.
func writeJSON(ctx context.Context, store pathstats.ObjectStore, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return store.Put(ctx, key, append(data, '\n'))
}

// readObject reads a whole object.
func readObject(ctx context.Context, store pathstats.ObjectStore, key string) ([]byte, error) {
	r, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return data, nil
}
