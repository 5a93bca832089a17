package pathstats

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// batchMagic starts the binary batch encoding (version 1).
const batchMagic = "PSB1"

// EncodeBatch encodes a batch for the queue in a compact binary form:
// magic, id, node, created, then per delta hour, path, proxyId, the status
// and latency counts and last-seen, all as varints.
func EncodeBatch(b *Batch) ([]byte, error) {
	buf := make([]byte, 0, 64+len(b.Deltas)*48)
	buf = append(buf, batchMagic...)
	buf = appendString(buf, b.ID)
	buf = appendString(buf, b.Node)
	buf = binary.AppendVarint(buf, b.CreatedMs)
	buf = binary.AppendUvarint(buf, uint64(len(b.Deltas)))
	for i := range b.Deltas {
		d := &b.Deltas[i]
		if d.Hour%3600 != 0 {
			return nil, fmt.Errorf("encode batch %s: hour %d is not an hour bucket", b.ID, d.Hour)
		}
		buf = binary.AppendVarint(buf, d.Hour/3600)
		buf = appendString(buf, d.Path)
		buf = appendString(buf, d.ProxyID)
		for _, v := range d.Status {
			buf = binary.AppendUvarint(buf, uint64(v))
		}
		for _, v := range d.Latency {
			buf = binary.AppendUvarint(buf, uint64(v))
		}
		buf = binary.AppendVarint(buf, d.LastSeenMs)
	}
	return buf, nil
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// minDeltaBytes is the smallest encoded delta: every varint one byte and a
// one-byte path.
const minDeltaBytes = 1 + 2 + 1 + NumStatusClasses + NumLatencyBuckets + 1

// DecodeBatch decodes and checks a queued batch. An error means the message can
// never be applied and belongs in the dead-letter table.
func DecodeBatch(data []byte) (*Batch, error) {
	if len(data) < len(batchMagic) || string(data[:len(batchMagic)]) != batchMagic {
		return nil, errors.New("decode batch: not a pathstats batch")
	}
	r := reader{data: data[len(batchMagic):]}
	b := &Batch{ID: r.string(), Node: r.string(), CreatedMs: r.varint()}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.data)/minDeltaBytes) {
		return nil, fmt.Errorf("decode batch: %d deltas cannot fit %d bytes", n, len(r.data))
	}
	b.Deltas = make([]Delta, n)
	for i := range b.Deltas {
		d := &b.Deltas[i]
		d.Hour = r.varint() * 3600
		d.Path = r.string()
		d.ProxyID = r.string()
		for j := range d.Status {
			d.Status[j] = r.count()
		}
		for j := range d.Latency {
			d.Latency[j] = r.count()
		}
		d.LastSeenMs = r.varint()
		if r.err != nil {
			break
		}
		if err := d.validate(); err != nil {
			return nil, fmt.Errorf("decode batch %s: delta %d: %w", b.ID, i, err)
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode batch: %w", r.err)
	}
	if len(r.data) != 0 {
		return nil, fmt.Errorf("decode batch: %d trailing bytes", len(r.data))
	}
	if b.ID == "" {
		return nil, errors.New("decode batch: missing id")
	}
	return b, nil
}

// reader consumes varints and strings, remembering the first error.
type reader struct {
	data []byte
	err  error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated or corrupt %s", what)
	}
	r.data = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.data)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.data = r.data[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.data)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.data = r.data[n:]
	return v
}

// count reads a counter, which must fit an int64.
func (r *reader) count() int64 {
	v := r.uvarint()
	if v > 1<<62 {
		r.fail("counter")
		return 0
	}
	return int64(v)
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.data)) {
		r.fail("string")
		return ""
	}
	s := string(r.data[:n])
	r.data = r.data[n:]
	return s
}

func (d *Delta) validate() error {
	if d.Path == "" || d.Path[0] != '/' || len(d.Path) > MaxPathLength || !utf8.ValidString(d.Path) {
		return fmt.Errorf("bad path %q", d.Path)
	}
	if !utf8.ValidString(d.ProxyID) {
		return fmt.Errorf("bad proxyId %q", d.ProxyID)
	}
	return nil
}
