// Package snapshot publishes the window's per-path totals to KV as versioned
// snapshots and serves them from memory.
//
// A Writer (one per cluster, elected through the "snapshotter" lease) reads
// every path of the window from SQL, encodes it (columnar uvarints, paths
// prefix-compressed, then zstd), stores the payload in chunks of at most
// pathstats.MaxKVValue bytes under "snapshot:v<version>:<i>" and only then
// writes "snapshot:config", which names the version, its chunk count, size
// and SHA-256. A reader therefore never pairs a config with another
// version's payload, and a writer that crashes half way leaves the config
// pointing at the previous, complete version. Chunks of versions older than
// the previous one are deleted after each publish.
//
// A Reader decodes each version once per node into a View: items sorted by
// pathstats.ComparePathItems, a per-proxyId index and a contiguous buffer of
// lowercased paths, so a query is a slice copy, an index walk or one linear
// scan, never a decode.
//
// "snapshot:latest" keeps the migration plan's JSON array
// ([{path, requests, errors, last_updated}]) for compatibility: it holds the
// top paths only, as many as fit in pathstats.MaxKVValue; the full data is
// in the chunks.
package snapshot
