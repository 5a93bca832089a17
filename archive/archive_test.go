package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"regexp"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/s3test"
)

const rowsPerHour = 120

func TestRoundTripFile(t *testing.T) {
	roundTrip(t, openFileBucket(t))
}

func TestRoundTripS3(t *testing.T) {
	url := s3test.Start(t)
	t.Logf("archive bucket: %s", url)
	roundTrip(t, openURL(t, url))
}

// roundTrip archives the old hours, checks SQL, the manifests and the
// Parquet files, runs a no-op second pass, restores, and archives again
// once the restore's hold has expired.
func roundTrip(t *testing.T, bucket pathstats.ObjectStore) {
	ctx := context.Background()
	store := openStore(t)
	c := &clock{t: time.Now()}
	th := hoursAt(c.Now())
	seed(t, store, th, rowsPerHour)
	before := snapshot(t, store, th.all())
	reg := prometheus.NewRegistry()
	a, err := New(Config{Store: store, Bucket: bucket, Retention: testRetention, Now: c.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}

	res, err := a.RunOnce(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var want HourInfo
	for _, h := range th.old {
		s := sumRows(before[h])
		want.Rows += s.Rows
		want.Requests += s.Requests
	}
	if res.Hours != 3 || res.Parts != 3 || res.Rows != want.Rows || res.Requests != want.Requests {
		t.Fatalf("run result %+v, want 3 hours, %d rows, %d requests", res, want.Rows, want.Requests)
	}
	if got := testutil.ToFloat64(a.m.rows.WithLabelValues(opArchive)); got != float64(want.Rows) {
		t.Fatalf("rows metric %v, want %d", got, want.Rows)
	}
	if got := testutil.ToFloat64(a.m.lastSuccess.WithLabelValues(opArchive)); got != float64(c.Now().Unix()) {
		t.Fatalf("last success metric %v, want %d", got, c.Now().Unix())
	}
	if n, err := testutil.GatherAndCount(reg, "pathstats_archive_rows_total", "pathstats_archive_errors_total",
		"pathstats_archive_run_duration_seconds"); err != nil || n < 3 {
		t.Fatalf("registered archive metrics: %d series, %v", n, err)
	}
	// SQL lost exactly the old hours.
	left, err := store.HoursBefore(ctx, th.live+3600)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0] != th.recent || left[1] != th.live {
		t.Fatalf("hours left in SQL %v, want [%d %d]", left, th.recent, th.live)
	}
	checkHours(t, store, map[int64][]pathstats.HourlyRow{th.recent: before[th.recent], th.live: before[th.live]})

	checkList(t, a, th, before)
	checkParquet(t, a, th, before)
	checkConsistent(t, a)

	// A second run finds nothing to do and changes nothing.
	revs := revisions(t, a, th.old)
	res, err = a.RunOnce(ctx)
	if err != nil || res != (Result{}) {
		t.Fatalf("second run = %+v, %v; want nothing done", res, err)
	}
	if got := revisions(t, a, th.old); !equalMaps(got, revs) {
		t.Fatalf("manifest revisions %v after a no-op run, want %v", got, revs)
	}

	// Restore brings identical rows back and holds the hours.
	rres, err := a.Restore(ctx, th.old[0], th.old[2]+3600, 48*time.Hour)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if rres.Hours != 3 || rres.Parts != 3 || rres.Rows != want.Rows || rres.Requests != want.Requests {
		t.Fatalf("restore result %+v, want 3 hours, %d rows", rres, want.Rows)
	}
	checkHours(t, store, before)
	if infos, err := a.List(ctx, 0, th.live); err != nil || len(infos) != 0 {
		t.Fatalf("list after restore = %+v, %v; want none", infos, err)
	}
	checkConsistent(t, a)
	if parts := keys(t, bucket, partsPrefix); len(parts) != 0 {
		t.Fatalf("part objects left after restore: %v", parts)
	}

	// Held hours stay in SQL ...
	res, err = a.RunOnce(ctx)
	if err != nil || res.Held != 3 || res.Parts != 0 {
		t.Fatalf("run while held = %+v, %v; want 3 held, nothing archived", res, err)
	}
	checkHours(t, store, before)

	// ... until the hold expires; then they are archived again, as new parts.
	c.Add(49 * time.Hour)
	res, err = a.RunOnce(ctx)
	if err != nil || res.Hours != 3 || res.Rows != want.Rows {
		t.Fatalf("run after hold = %+v, %v; want 3 hours, %d rows", res, err, want.Rows)
	}
	if h := keys(t, bucket, holdsPrefix); len(h) != 0 {
		t.Fatalf("expired holds not removed: %v", h)
	}
	checkList(t, a, th, before)
	rres, err = a.Restore(ctx, th.old[0], th.old[2]+3600, time.Hour)
	if err != nil || rres.Rows != want.Rows {
		t.Fatalf("second restore = %+v, %v; want %d rows", rres, err, want.Rows)
	}
	checkHours(t, store, before)
	checkConsistent(t, a)
}

// checkList checks List reports each old hour with the totals of its rows.
func checkList(t *testing.T, a *Archiver, th testHours, before map[int64][]pathstats.HourlyRow) {
	t.Helper()
	infos, err := a.List(context.Background(), th.old[0], th.live+3600)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(infos) != len(th.old) {
		t.Fatalf("list = %+v, want hours %v", infos, th.old)
	}
	for i, info := range infos {
		s := sumRows(before[th.old[i]])
		if info.Hour != th.old[i] || info.Parts != 1 || info.Rows != s.Rows || info.Requests != s.Requests ||
			info.Errors != s.Errors || info.Bytes <= 0 {
			t.Fatalf("list[%d] = %+v, want hour %d, 1 part, %+v", i, info, th.old[i], s)
		}
	}
	// A range covering one hour lists only it.
	one, err := a.List(context.Background(), th.old[1], th.old[1]+3600)
	if err != nil || len(one) != 1 || one[0].Hour != th.old[1] {
		t.Fatalf("list of one hour = %+v, %v", one, err)
	}
}

var partKeyRE = regexp.MustCompile(`^hourly/date=\d{4}-\d{2}-\d{2}/hour=\d{2}/part-[0-9T]+-r\d+-[0-9a-f]{16}\.parquet$`)

// checkParquet reads each old hour's part with parquet-go directly (no
// archive code) and compares its rows with the rows SQL held.
func checkParquet(t *testing.T, a *Archiver, th testHours, before map[int64][]pathstats.HourlyRow) {
	t.Helper()
	ctx := context.Background()
	for _, h := range th.old {
		m, err := readManifest(ctx, a.cfg.Bucket, h)
		if err != nil || len(m.Parts) != 1 {
			t.Fatalf("manifest of %s = %+v, %v; want 1 part", hourDir(h), m, err)
		}
		p := m.Parts[0]
		if !partKeyRE.MatchString(p.Key) || p.Key != PartKey(h, p.ID) {
			t.Fatalf("part key %q does not follow the layout", p.Key)
		}
		data, err := readObject(ctx, a.cfg.Bucket, p.Key)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := parquet.Read[Row](bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("parquet read %s: %v", p.Key, err)
		}
		want := before[h]
		if len(rows) != len(want) {
			t.Fatalf("%s: %d rows, want %d", p.Key, len(rows), len(want))
		}
		for i := range rows {
			r, w := &rows[i], &want[i]
			if !r.HourBucket.Equal(time.Unix(h, 0)) || r.Path != w.Path || r.ProxyID != w.ProxyID ||
				r.Requests != w.Counts.Requests() || r.Errors != w.Counts.Errors() || r.ClientErrors != w.Counts.ClientErrors() ||
				r.Status2xx != w.Counts.Status[1] || r.Status5xx != w.Counts.Status[4] ||
				r.Lat00 != w.Counts.Latency[0] || r.Lat13 != w.Counts.Latency[13] ||
				r.LastSeenMs != w.Counts.LastSeenMs || !r.UpdatedAt.Equal(w.UpdatedAt) {
				t.Fatalf("%s row %d = %+v, want %+v", p.Key, i, *r, *w)
			}
			if got := r.HourlyRow(); got.Key != w.Key || got.Counts != w.Counts {
				t.Fatalf("%s row %d converts to %+v, want %+v", p.Key, i, got, *w)
			}
		}
	}
}

// revisions returns the manifest revision of each hour.
func revisions(t *testing.T, a *Archiver, hours []int64) map[int64]int64 {
	t.Helper()
	out := make(map[int64]int64)
	for _, h := range hours {
		m, err := readManifest(context.Background(), a.cfg.Bucket, h)
		if err != nil {
			t.Fatal(err)
		}
		out[h] = m.Revision
	}
	return out
}

func equalMaps(a, b map[int64]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestLateRowsSecondPart: rows arriving for an archived hour are archived
// as a second part, and a restore brings back the sum of both.
func TestLateRowsSecondPart(t *testing.T) {
	ctx := context.Background()
	store, bucket := openStore(t), openFileBucket(t)
	c := &clock{t: time.Now()}
	th := hoursAt(c.Now())
	h := th.old[0]
	apply(t, store, "first", seedRows(h, 40, 0))
	a := newArchiver(t, store, bucket, c)
	if res, err := a.RunOnce(ctx); err != nil || res.Parts != 1 {
		t.Fatalf("first run = %+v, %v", res, err)
	}
	first, _ := a.List(ctx, h, h+3600)
	// Late rows: 20 keys of the first part (added to) and 20 new ones.
	apply(t, store, "late", seedRows(h, 60, 7)[20:])
	late := snapshot(t, store, []int64{h})[h]
	if res, err := a.RunOnce(ctx); err != nil || res.Parts != 1 || res.Rows != int64(len(late)) {
		t.Fatalf("second run = %+v, %v; want one part of %d rows", res, err, len(late))
	}
	infos, err := a.List(ctx, h, h+3600)
	if err != nil || len(infos) != 1 || infos[0].Parts != 2 {
		t.Fatalf("list = %+v, %v; want one hour of 2 parts", infos, err)
	}
	lateSum := sumRows(late)
	if infos[0].Requests != first[0].Requests+lateSum.Requests || infos[0].Rows != first[0].Rows+lateSum.Rows {
		t.Fatalf("list = %+v, want the sum of %+v and %+v", infos[0], first[0], lateSum)
	}
	checkConsistent(t, a)

	// What restore must give back: both batches applied to an empty hour.
	ref := openStore(t)
	apply(t, ref, "first", seedRows(h, 40, 0))
	apply(t, ref, "late", seedRows(h, 60, 7)[20:])
	want := snapshot(t, ref, []int64{h})
	if _, err := a.Restore(ctx, h, h+3600, time.Hour); err != nil {
		t.Fatalf("restore: %v", err)
	}
	checkHours(t, store, want)
	checkConsistent(t, a)
}

// TestRestoreRange restores only the hours asked for.
func TestRestoreRange(t *testing.T) {
	ctx := context.Background()
	store, bucket := openStore(t), openFileBucket(t)
	c := &clock{t: time.Now()}
	th := hoursAt(c.Now())
	seed(t, store, th, 10)
	before := snapshot(t, store, th.all())
	a := newArchiver(t, store, bucket, c)
	if _, err := a.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	var progress []Progress
	a.cfg.Progress = func(p Progress) { progress = append(progress, p) }
	res, err := a.Restore(ctx, th.old[1], th.old[1]+3600, time.Hour)
	if err != nil || res.Hours != 1 || res.Rows != int64(len(before[th.old[1]])) {
		t.Fatalf("restore = %+v, %v", res, err)
	}
	if len(progress) != 1 || progress[0].Op != opRestore || progress[0].Hour != th.old[1] || progress[0].Done != 1 || progress[0].Total != 1 {
		t.Fatalf("progress = %+v", progress)
	}
	checkHours(t, store, map[int64][]pathstats.HourlyRow{th.old[1]: before[th.old[1]], th.old[0]: nil, th.old[2]: nil})
	for _, r := range [][2]int64{{math.MinInt64 / 2, math.MaxInt64}, {0, 1 << 62}, {0, th.old[2] + 3600}} {
		infos, err := a.List(ctx, r[0], r[1])
		if err != nil || len(infos) != 2 || infos[0].Hour != th.old[0] || infos[1].Hour != th.old[2] {
			t.Fatalf("list %v = %+v, %v; want the two other hours", r, infos, err)
		}
	}
}

// TestRestoreInWindowRefused: the store refuses rows of a window hour and
// the part stays archived.
func TestRestoreInWindowRefused(t *testing.T) {
	ctx := context.Background()
	store, bucket := openStore(t), openFileBucket(t)
	c := &clock{t: time.Now()}
	th := hoursAt(c.Now())
	apply(t, store, "live", seedRows(th.live, 5, 0))
	want := snapshot(t, store, []int64{th.live})
	// An archiver with a one-hour retention tries to archive a window hour.
	a, err := New(Config{Store: store, Bucket: bucket, Retention: time.Minute, Now: func() time.Time { return c.Now().Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.RunOnce(ctx)
	if !errors.Is(err, pathstats.ErrHourInWindow) {
		t.Fatalf("run over a window hour: %v, want ErrHourInWindow", err)
	}
	// The unfinished part is cleaned up by the next run's recovery.
	if _, err := a.RunOnce(ctx); !errors.Is(err, pathstats.ErrHourInWindow) {
		t.Fatalf("second run: %v, want ErrHourInWindow", err)
	}
	if got := testutil.ToFloat64(a.m.errors.WithLabelValues(stageRemove)); got != 2 {
		t.Fatalf("remove errors metric %v, want 2", got)
	}
	checkHours(t, store, want)
	if parts := keys(t, bucket, partsPrefix); len(parts) != 1 {
		t.Fatalf("parts %v, want the one unfinished upload", parts)
	}
}

func TestNewValidates(t *testing.T) {
	store, bucket := openStore(t), openFileBucket(t)
	for _, cfg := range []Config{{Bucket: bucket, Retention: time.Hour}, {Store: store, Retention: time.Hour}, {Store: store, Bucket: bucket}} {
		if _, err := New(cfg); err == nil {
			t.Fatalf("New(%+v) accepted", cfg)
		}
	}
}

// readAll reads an object through the ObjectStore interface.
func readAll(t *testing.T, b pathstats.ObjectStore, key string) ([]byte, error) {
	t.Helper()
	r, err := b.Get(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
