package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/pathstats/pathstats"
)

// Payload layout, before zstd (all integers varints; "u" = unsigned,
// otherwise zigzag so any int64 round-trips exactly):
//
//	magic "PSS" format(1)
//	u n                      items, in ComparePathItems order
//	u proxies, then each:    u len, bytes
//	paths, per item:         u shared prefix with the previous path, u len, suffix bytes
//	proxy index, per item:   u index into the proxy table
//	23 numeric columns, each u length in bytes then n values: requests
//	(first value, then previous-current), errors, clientErrors,
//	status[5], latency[14], lastAccessedMs (current-previous).
//
// Columns keep similar numbers together, which zstd compresses far better
// than rows; requests are sorted, so their deltas are small.
const (
	magic         = "PSS"
	formatVersion = 1
	numColumns    = 3 + pathstats.NumStatusClasses + pathstats.NumLatencyBuckets + 1
	// minItemBytes is the least an item takes: 2 path varints, 1 proxy
	// varint and one byte per numeric column. It bounds n by the input size
	// before anything is allocated.
	minItemBytes = 3 + numColumns
	// maxPathLen bounds one decoded path (pathstats.MaxPathLength with room).
	maxPathLen = 64 << 10
	// maxRawBytes bounds the decompressed payload (about 100 bytes a path)
	// and the total path bytes, so uint32 offsets cannot overflow.
	maxRawBytes = 1 << 31
)

var errFormat = errors.New("bad payload")

// encoder is shared: EncodeAll is safe for concurrent use.
var encoder = sync.OnceValue(func() *zstd.Encoder {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		panic(fmt.Sprintf("zstd encoder: %v", err)) // only on invalid static options
	}
	return enc
})

// encodePayload returns the compressed payload of items, which must be in
// ComparePathItems order.
func encodePayload(items []pathstats.PathItem) ([]byte, error) {
	raw, err := appendRaw(nil, items)
	if err != nil {
		return nil, err
	}
	return encoder().EncodeAll(raw, make([]byte, 0, len(raw)/4)), nil
}

// decodePayload decompresses and decodes a payload into a View's items and
// indexes. Any malformed input yields an error wrapping ErrDecode.
func decodePayload(payload []byte) (*View, error) {
	raw, err := decompress(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %w", ErrDecode, err)
	}
	v, err := decodeRaw(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return v, nil
}

// maxRatio bounds how much larger than the payload its decompression may
// be; real snapshots compress 4–10×. It keeps a corrupt or hostile frame
// header from allocating maxRawBytes.
const maxRatio = 1024

// decompress inflates payload with a decoder limited to maxRatio times its
// size (a decoder per call is cheap next to decoding a version).
func decompress(payload []byte) ([]byte, error) {
	limit := min(uint64(len(payload))*maxRatio+1<<20, maxRawBytes)
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(limit), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	return dec.DecodeAll(payload, nil)
}

// appendRaw appends the uncompressed encoding of items to dst.
func appendRaw(dst []byte, items []pathstats.PathItem) ([]byte, error) {
	proxies, proxyIdx := proxyTable(items)
	if dst == nil {
		dst = make([]byte, 0, estimateRaw(items))
	}
	dst = append(dst, magic...)
	dst = append(dst, formatVersion)
	dst = binary.AppendUvarint(dst, uint64(len(items)))
	dst = binary.AppendUvarint(dst, uint64(len(proxies)))
	for _, p := range proxies {
		if len(p) > maxPathLen {
			return nil, fmt.Errorf("encode snapshot: proxy id of %d bytes exceeds %d", len(p), maxPathLen)
		}
		dst = binary.AppendUvarint(dst, uint64(len(p)))
		dst = append(dst, p...)
	}
	prev := ""
	for i := range items {
		p := items[i].Path
		if len(p) > maxPathLen {
			return nil, fmt.Errorf("encode snapshot: path of %d bytes exceeds %d", len(p), maxPathLen)
		}
		n := sharedPrefix(prev, p)
		dst = binary.AppendUvarint(dst, uint64(n))
		dst = binary.AppendUvarint(dst, uint64(len(p)-n))
		dst = append(dst, p[n:]...)
		prev = p
	}
	for i := range items {
		dst = binary.AppendUvarint(dst, uint64(proxyIdx[items[i].ProxyID]))
	}
	return appendColumns(dst, items), nil
}

func estimateRaw(items []pathstats.PathItem) int {
	n := 64
	for i := range items {
		n += len(items[i].Path) + 32
	}
	return n
}

// proxyTable returns the distinct proxy ids in order of first appearance
// and their indexes.
func proxyTable(items []pathstats.PathItem) ([]string, map[string]int) {
	idx := make(map[string]int)
	var list []string
	for i := range items {
		p := items[i].ProxyID
		if _, ok := idx[p]; !ok {
			idx[p] = len(list)
			list = append(list, p)
		}
	}
	return list, idx
}

func sharedPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

const (
	colRequests     = 0
	colLastAccessed = numColumns - 1
)

// row copies an item's numeric fields in column order.
func row(it *pathstats.PathItem, v *[numColumns]int64) {
	v[0], v[1], v[2] = it.Requests, it.Errors, it.ClientErrors
	copy(v[3:], it.Status[:])
	copy(v[3+pathstats.NumStatusClasses:], it.Latency[:])
	v[colLastAccessed] = it.LastAccessedMs
}

// setRow is the inverse of row.
func setRow(it *pathstats.PathItem, v *[numColumns]int64) {
	it.Requests, it.Errors, it.ClientErrors = v[0], v[1], v[2]
	copy(it.Status[:], v[3:])
	copy(it.Latency[:], v[3+pathstats.NumStatusClasses:])
	it.LastAccessedMs = v[colLastAccessed]
}

// appendColumns writes the numeric columns, each preceded by its length in
// bytes, in one pass over the items.
func appendColumns(dst []byte, items []pathstats.PathItem) []byte {
	var cols [numColumns][]byte
	for c := range cols {
		cols[c] = make([]byte, 0, len(items)+16)
	}
	var v, prev [numColumns]int64
	for i := range items {
		row(&items[i], &v)
		for c := range cols {
			x := v[c]
			switch {
			case c == colRequests && i > 0:
				x = prev[c] - v[c]
			case c == colLastAccessed:
				x = v[c] - prev[c]
			}
			cols[c] = binary.AppendVarint(cols[c], x)
		}
		prev = v
	}
	for _, col := range cols {
		dst = binary.AppendUvarint(dst, uint64(len(col)))
		dst = append(dst, col...)
	}
	return dst
}

// reader walks a raw payload; every read is bounds-checked.
type reader struct {
	b   []byte
	pos int
}

func (r *reader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad uvarint at %d", errFormat, r.pos)
	}
	r.pos += n
	return v, nil
}

func (r *reader) varint() (int64, error) {
	v, n := binary.Varint(r.b[r.pos:])
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varint at %d", errFormat, r.pos)
	}
	r.pos += n
	return v, nil
}

// count reads a uvarint that must be at most limit.
func (r *reader) count(limit int, what string) (int, error) {
	v, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if limit < 0 || v > uint64(limit) {
		return 0, fmt.Errorf("%w: %s %d exceeds %d", errFormat, what, v, limit)
	}
	return int(v), nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n > len(r.b)-r.pos {
		return nil, fmt.Errorf("%w: truncated at %d", errFormat, r.pos)
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

// decodeRaw decodes an uncompressed payload into a View (Config unset).
func decodeRaw(raw []byte) (*View, error) {
	r := &reader{b: raw}
	head, err := r.bytes(len(magic) + 1)
	if err != nil || string(head[:len(magic)]) != magic || head[len(magic)] != formatVersion {
		return nil, fmt.Errorf("%w: unknown header", errFormat)
	}
	n, err := r.count(len(raw)/minItemBytes, "item count")
	if err != nil {
		return nil, err
	}
	proxies, err := readProxies(r, n)
	if err != nil {
		return nil, err
	}
	items := make([]pathstats.PathItem, n)
	pt, err := readPaths(r, items)
	if err != nil {
		return nil, err
	}
	proxyOf, err := readProxyIndex(r, items, proxies)
	if err != nil {
		return nil, err
	}
	if err := readColumns(r, items); err != nil {
		return nil, err
	}
	if r.pos != len(raw) {
		return nil, fmt.Errorf("%w: %d trailing bytes", errFormat, len(raw)-r.pos)
	}
	return newViewFrom(items, pt, proxies, proxyOf), nil
}

func readProxies(r *reader, n int) ([]string, error) {
	np, err := r.count(max(n, 1), "proxy count")
	if err != nil {
		return nil, err
	}
	proxies := make([]string, np)
	seen := make(map[string]bool, np)
	for i := range proxies {
		l, err := r.count(maxPathLen, "proxy length")
		if err != nil {
			return nil, err
		}
		b, err := r.bytes(l)
		if err != nil {
			return nil, err
		}
		proxies[i] = string(b)
		if seen[proxies[i]] {
			return nil, fmt.Errorf("%w: duplicate proxy %q", errFormat, proxies[i])
		}
		seen[proxies[i]] = true
	}
	return proxies, nil
}

// readPaths decodes the path section into a pathTable and sets each item's
// Path. A first pass sizes the buffers exactly.
func readPaths(r *reader, items []pathstats.PathItem) (*pathTable, error) {
	start := r.pos
	total, err := scanPaths(r, len(items))
	if err != nil {
		return nil, err
	}
	r.pos = start
	pt := newPathTable(len(items), total)
	var cur []byte
	for range items {
		shared, _ := r.uvarint() // validated by scanPaths
		l, _ := r.uvarint()
		suffix, _ := r.bytes(int(l))
		cur = append(cur[:shared], suffix...)
		pt.add(cur)
	}
	pt.finish(items)
	return pt, nil
}

// scanPaths validates the path section and returns the total path length.
func scanPaths(r *reader, n int) (int, error) {
	total, prevLen := 0, 0
	for range n {
		shared, err := r.count(prevLen, "shared prefix")
		if err != nil {
			return 0, err
		}
		l, err := r.count(maxPathLen-shared, "path length")
		if err != nil {
			return 0, err
		}
		if _, err := r.bytes(l); err != nil {
			return 0, err
		}
		prevLen = shared + l
		total += prevLen
		if total > maxRawBytes {
			return 0, fmt.Errorf("%w: paths exceed %d bytes", errFormat, maxRawBytes)
		}
	}
	return total, nil
}

func readProxyIndex(r *reader, items []pathstats.PathItem, proxies []string) ([]int32, error) {
	proxyOf := make([]int32, len(items))
	for i := range items {
		p, err := r.count(len(proxies)-1, "proxy index")
		if err != nil {
			return nil, err
		}
		items[i].ProxyID = proxies[p]
		proxyOf[i] = int32(p)
	}
	return proxyOf, nil
}

// readColumns reads the numeric columns row by row: each item is written
// once, while the column streams are read sequentially.
func readColumns(r *reader, items []pathstats.PathItem) error {
	var cols [numColumns]reader
	for c := range cols {
		l, err := r.count(len(r.b)-r.pos, "column length")
		if err != nil {
			return err
		}
		b, _ := r.bytes(l)
		cols[c] = reader{b: b}
	}
	var v, prev [numColumns]int64
	for i := range items {
		for c := range cols {
			x, err := cols[c].varint()
			if err != nil {
				return err
			}
			switch {
			case c == colRequests && i > 0:
				x = prev[c] - x
			case c == colLastAccessed:
				x += prev[c]
			}
			v[c] = x
		}
		setRow(&items[i], &v)
		prev = v
	}
	for c := range cols {
		if cols[c].pos != len(cols[c].b) {
			return fmt.Errorf("%w: column %d has trailing bytes", errFormat, c)
		}
	}
	return nil
}
