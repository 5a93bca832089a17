package archive

import (
	"fmt"
	"strings"
	"time"
)

// Object layout (Hive-style partitions, so DuckDB, Spark or Trino read
// hourly/**/*.parquet with date and hour partition columns):
//
//	hourly/date=YYYY-MM-DD/hour=HH/part-<id>.parquet   one committed part
//	manifests/date=YYYY-MM-DD/hour=HH.json             the hour's parts (the source of truth)
//	holds/date=YYYY-MM-DD/hour=HH.json                 restored hour kept out of the archiver until a time
//	pending/<id>.json                                   intent written before a part is uploaded
const (
	partsPrefix     = "hourly/"
	manifestsPrefix = "manifests/"
	holdsPrefix     = "holds/"
	pendingPrefix   = "pending/"
)

// hourDir returns "date=YYYY-MM-DD/hour=HH" for an hour bucket.
func hourDir(hour int64) string {
	t := time.Unix(hour, 0).UTC()
	return fmt.Sprintf("date=%s/hour=%02d", t.Format(time.DateOnly), t.Hour())
}

// hourStamp returns a compact UTC stamp of an hour (20060102T15) for ids.
func hourStamp(hour int64) string {
	return time.Unix(hour, 0).UTC().Format("20060102T15")
}

// PartKey returns the object key of a part.
func PartKey(hour int64, partID string) string {
	return partsPrefix + hourDir(hour) + "/part-" + partID + ".parquet"
}

// ManifestKey returns the object key of an hour's manifest.
func ManifestKey(hour int64) string {
	return manifestsPrefix + hourDir(hour) + ".json"
}

// holdKey returns the object key of an hour's hold.
func holdKey(hour int64) string {
	return holdsPrefix + hourDir(hour) + ".json"
}

// pendingKey returns the object key of a part's upload intent.
func pendingKey(partID string) string {
	return pendingPrefix + partID + ".json"
}

// parseHourKey parses the hour of a manifest or hold key
// (<prefix>date=YYYY-MM-DD/hour=HH.json); ok is false for other keys.
func parseHourKey(prefix, key string) (hour int64, ok bool) {
	rest, found := strings.CutPrefix(key, prefix)
	if !found {
		return 0, false
	}
	rest, found = strings.CutSuffix(rest, ".json")
	if !found {
		return 0, false
	}
	t, err := time.Parse("date=2006-01-02/hour=15", rest)
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

// partIDFor derives a part id from what the part is: its hour, the
// manifest revision it extends and the checksum of its content. Archiving
// the same rows onto the same manifest again (a retry after a crash) gives
// the same id, so the ledger recognises it.
func partIDFor(hour int64, revision int64, sha256Hex string) string {
	return fmt.Sprintf("%s-r%d-%s", hourStamp(hour), revision, sha256Hex[:16])
}

// archiveLedgerID is the ledger id recording that a part's rows were
// removed from SQL.
func archiveLedgerID(partID string) string { return "archive:" + partID }

// restoreLedgerID is the ledger id recording that a part's rows were added
// back into SQL.
func restoreLedgerID(partID string) string { return "restore:" + partID }
