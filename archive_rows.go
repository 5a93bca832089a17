package pathstats

import "fmt"

// RowDeltas turns hourly rows into deltas with unique keys in key order, as
// the SQL backends' upserts take them; negate gives the deltas subtracting
// the rows, with LastSeenMs 0 so the stored value is kept.
func RowDeltas(rows []HourlyRow, negate bool) []Delta {
	ds := make([]Delta, len(rows))
	for i := range rows {
		ds[i] = Delta{Key: rows[i].Key, Counts: rows[i].Counts}
		if negate {
			c := &ds[i].Counts
			for j := range c.Status {
				c.Status[j] = -c.Status[j]
			}
			for j := range c.Latency {
				c.Latency[j] = -c.Latency[j]
			}
			c.LastSeenMs = 0
		}
	}
	return MergeDeltas([]*Batch{{Deltas: ds}})
}

// OneHour returns the hour of rows (0 for none), or an error when they span
// several hours.
func OneHour(rows []HourlyRow) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	hour := rows[0].Hour
	for i := range rows {
		if rows[i].Hour != hour {
			return 0, fmt.Errorf("rows of hours %d and %d: a part holds one hour", hour, rows[i].Hour)
		}
	}
	return hour, nil
}

// HourSignature summarises an hour's rows. Between ArchiveStore.HourRows
// and RemoveArchived counters only grow (Apply adds non-negative deltas and
// stamps updated_at), so an unchanged signature means the hour still holds
// exactly the rows read. The SQL backends compute the same sums in SQL.
type HourSignature struct {
	Rows, Requests, Errors, Latency, LastSeenMs, UpdatedAt int64
}

// Dests returns scan destinations in the order rows, requests, errors,
// latency total, max last seen (ms), max updated_at (unix s).
func (g *HourSignature) Dests() []any {
	return []any{&g.Rows, &g.Requests, &g.Errors, &g.Latency, &g.LastSeenMs, &g.UpdatedAt}
}

// SignatureOf computes the signature of rows.
func SignatureOf(rows []HourlyRow) HourSignature {
	g := HourSignature{Rows: int64(len(rows))}
	for i := range rows {
		c := &rows[i].Counts
		g.Requests += c.Requests()
		g.Errors += c.Errors()
		for _, v := range c.Latency {
			g.Latency += v
		}
		g.LastSeenMs = max(g.LastSeenMs, c.LastSeenMs)
		g.UpdatedAt = max(g.UpdatedAt, rows[i].UpdatedAt.Unix())
	}
	return g
}
