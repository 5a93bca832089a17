package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// The archive cases run at windowNow (window from h(6)): hours h(1) … h(5)
// are before the window and may be archived, h(6) and later may not.

// archiver is what the archive cases need: the suite's Store and the
// pathstats.ArchiveStore methods.
type archiver interface {
	Store
	pathstats.ArchiveStore
}

// archiveCase adapts an archive case to the clocked cases; a backend that
// is not a pathstats.ArchiveStore fails.
func archiveCase(fn func(t *testing.T, s archiver, clk *Clock)) func(t *testing.T, s Store, clk *Clock) {
	return func(t *testing.T, s Store, clk *Clock) {
		t.Helper()
		a, ok := s.(archiver)
		if !ok {
			t.Fatalf("%T does not implement pathstats.ArchiveStore", s)
		}
		fn(t, a, clk)
	}
}

// archiveCases are the archive cases, registered among Run's clocked cases.
var archiveCases = []struct {
	name string
	fn   func(t *testing.T, s Store, clk *Clock)
}{
	{"ArchiveHoursBefore", archiveCase(testArchiveHoursBefore)},
	{"ArchiveHourRows", archiveCase(testArchiveHourRows)},
	{"ArchiveRemove", archiveCase(testArchiveRemove)},
	{"ArchiveRemoveKeepsGrowth", archiveCase(testArchiveRemoveKeepsGrowth)},
	{"ArchiveRestore", archiveCase(testArchiveRestore)},
	{"ArchiveRefused", archiveCase(testArchiveRefused)},
	{"ArchiveConcurrentApply", archiveCase(testArchiveConcurrentApply)},
	{"ArchiveLargeHour", archiveCase(testArchiveLargeHour)},
}

// seedArchive applies rows to hours before the window (h(1), h(2), h(4))
// and inside it (h(6), h(30)), and returns the expected rows per hour in
// (path, proxyId) order, UpdatedAt unset. h(1) holds several proxies of a
// path, byte-order paths and a row without requests.
func seedArchive(t *testing.T, s archiver) map[int64][]pathstats.HourlyRow {
	t.Helper()
	zero := pathstats.Counts{LastSeenMs: h(1)*1000 + 5}
	apply(t, s, []*pathstats.Batch{
		batch("seed-1",
			delta(h(1), "/b", "p1", at(h(1), 3)), delta(h(1), "/a", "p2", at(h(1), 2)),
			delta(h(1), "/a", "p1", at(h(1), 1)), delta(h(1), "/B", "", at(h(1), 4)),
			delta(h(1), "/zero", "p1", zero), delta(h(2), "/a", "p1", at(h(2), 5)),
		),
		batch("seed-2",
			delta(h(4), "/c", "p", at(h(4), 6)), delta(h(6), "/a", "p1", at(h(6), 7)),
			delta(h(30), "/a", "p1", at(h(30), 8)), delta(h(1), "/a", "p1", at(h(1), 9)),
		),
	}, nil)
	return map[int64][]pathstats.HourlyRow{
		h(1): {
			row(h(1), "/B", "", at(h(1), 4)),
			row(h(1), "/a", "p1", sum(at(h(1), 1), at(h(1), 9))),
			row(h(1), "/a", "p2", at(h(1), 2)),
			row(h(1), "/b", "p1", at(h(1), 3)),
			row(h(1), "/zero", "p1", zero),
		},
		h(2):  {row(h(2), "/a", "p1", at(h(2), 5))},
		h(4):  {row(h(4), "/c", "p", at(h(4), 6))},
		h(6):  {row(h(6), "/a", "p1", at(h(6), 7))},
		h(30): {row(h(30), "/a", "p1", at(h(30), 8))},
	}
}

// hourRows reads one hour's rows.
func hourRows(t *testing.T, s archiver, hour int64) []pathstats.HourlyRow {
	t.Helper()
	rows, err := s.HourRows(context.Background(), hour)
	if err != nil {
		t.Fatalf("hour rows h%+d: %v", (hour-h0)/3600, err)
	}
	return rows
}

// wantHour checks an hour's rows exactly, in order; UpdatedAt must be set
// and is not compared.
func wantHour(t *testing.T, s archiver, hour int64, want []pathstats.HourlyRow) {
	t.Helper()
	got := slices.Clone(hourRows(t, s, hour))
	for i := range got {
		if got[i].UpdatedAt.IsZero() {
			t.Errorf("hour rows h%+d: row %d: UpdatedAt not set", (hour-h0)/3600, i)
		}
		got[i].UpdatedAt = time.Time{}
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hour rows h%+d:\n got %+v\nwant %+v", (hour-h0)/3600, got, want)
	}
}

// wantHours checks HoursBefore exactly.
func wantHours(t *testing.T, s archiver, before int64, want ...int64) {
	t.Helper()
	got, err := s.HoursBefore(context.Background(), before)
	if err != nil {
		t.Fatalf("hours before h%+d: %v", (before-h0)/3600, err)
	}
	if len(got) != 0 || len(want) != 0 {
		if !slices.Equal(got, want) {
			t.Errorf("hours before h%+d = %v, want %v", (before-h0)/3600, got, want)
		}
	}
}

// wantLedger checks LedgerHas for id.
func wantLedger(t *testing.T, s archiver, id string, want bool) {
	t.Helper()
	got, err := s.LedgerHas(context.Background(), id)
	if err != nil {
		t.Fatalf("ledger has %q: %v", id, err)
	}
	if got != want {
		t.Errorf("ledger has %q = %v, want %v", id, got, want)
	}
}

// removeArchived calls RemoveArchived and checks applied.
func removeArchived(t *testing.T, s archiver, id string, rows []pathstats.HourlyRow, want bool) {
	t.Helper()
	applied, err := s.RemoveArchived(context.Background(), id, rows)
	if err != nil {
		t.Fatalf("remove archived %q: %v", id, err)
	}
	if applied != want {
		t.Errorf("remove archived %q: applied = %v, want %v", id, applied, want)
	}
}

// restoreArchived calls RestoreArchived and checks applied.
func restoreArchived(t *testing.T, s archiver, id string, rows []pathstats.HourlyRow, want bool) {
	t.Helper()
	applied, err := s.RestoreArchived(context.Background(), id, rows)
	if err != nil {
		t.Fatalf("restore archived %q: %v", id, err)
	}
	if applied != want {
		t.Errorf("restore archived %q: applied = %v, want %v", id, applied, want)
	}
}

// windowState is the window as the read path sees it and the hourly totals
// of its hours.
type windowState struct {
	items  []pathstats.PathItem
	totals []pathstats.PathTotal
}

// readWindow records the window (which must start at h(6)) for wantSameWindow.
func readWindow(t *testing.T, s archiver) windowState {
	t.Helper()
	items, start := windowTotals(t, s)
	if start != h(6) {
		t.Fatalf("window start h%+d, want h+6", (start-h0)/3600)
	}
	return windowState{items: items, totals: pathTotals(t, s, h(6), h(100))}
}

// wantSameWindow checks the window and PathTotals over its hours are still w.
func wantSameWindow(t *testing.T, s archiver, w windowState) {
	t.Helper()
	wantWindow(t, s, h(6), slices.Clone(w.items))
	wantTotals(t, s, h(6), h(100), w.totals)
}

// testArchiveHoursBefore lists the hours with rows below a bound.
func testArchiveHoursBefore(t *testing.T, s archiver, _ *Clock) {
	wantHours(t, s, h(6))
	seedArchive(t, s)
	wantHours(t, s, h(6), h(1), h(2), h(4))
	wantHours(t, s, h(4), h(1), h(2))
	wantHours(t, s, h(2)+1, h(1), h(2))
	wantHours(t, s, h(2), h(1))
	wantHours(t, s, h(1))
	wantHours(t, s, h(31), h(1), h(2), h(4), h(6), h(30))
	wantHours(t, s, h(30), h(1), h(2), h(4), h(6))
}

// testArchiveHourRows reads every counter of an hour back, in (path,
// proxyId) byte order, with UpdatedAt the store's clock to the second.
func testArchiveHourRows(t *testing.T, s archiver, clk *Clock) {
	want := seedArchive(t, s)
	for hour, rows := range want {
		wantHour(t, s, hour, rows)
	}
	wantHour(t, s, h(3), nil)
	stamp := time.Unix(clk.Now().Unix(), 0)
	for i, r := range hourRows(t, s, h(1)) {
		if !r.UpdatedAt.Equal(stamp) {
			t.Errorf("hour rows h+1: row %d: UpdatedAt = %v, want %v", i, r.UpdatedAt, stamp)
		}
	}
}

// testArchiveRemove removes a whole hour (other hours and the window stay),
// and a repeated part id changes nothing.
func testArchiveRemove(t *testing.T, s archiver, _ *Clock) {
	want := seedArchive(t, s)
	w := readWindow(t, s)
	rows := hourRows(t, s, h(1))
	wantLedger(t, s, "part-h1", false)
	removeArchived(t, s, "part-h1", rows, true)
	wantLedger(t, s, "part-h1", true)
	wantHour(t, s, h(1), nil)
	wantHours(t, s, h(6), h(2), h(4))
	for _, hour := range []int64{h(2), h(4), h(6), h(30)} {
		wantHour(t, s, hour, want[hour])
	}
	wantSameWindow(t, s, w)

	// The hour comes back under another id; the removal's id is spent.
	restoreArchived(t, s, "restore-h1", rows, true)
	removeArchived(t, s, "part-h1", rows, false)
	wantHour(t, s, h(1), want[h(1)])
	wantHours(t, s, h(6), h(1), h(2), h(4))
	wantSameWindow(t, s, w)

	// No rows: only the id is recorded.
	removeArchived(t, s, "part-empty", nil, true)
	removeArchived(t, s, "part-empty", nil, false)
	wantLedger(t, s, "part-empty", true)
	wantHour(t, s, h(1), want[h(1)])
}

// testArchiveRemoveKeepsGrowth applies late batches between HourRows and
// RemoveArchived: the hour keeps exactly the late counts.
func testArchiveRemoveKeepsGrowth(t *testing.T, s archiver, clk *Clock) {
	want := seedArchive(t, s)
	w := readWindow(t, s)
	rows1, rows2, rows4 := hourRows(t, s, h(1)), hourRows(t, s, h(2)), hourRows(t, s, h(4))

	// h(1): an existing row grows and a new row appears (LastSeenMs later
	// than every read row, so the late counts are the rows' whole state).
	clk.Set(windowNow.Add(2 * time.Second))
	grow, fresh := at(h(1), 20), at(h(1), 21)
	apply(t, s, []*pathstats.Batch{batch("late-1", delta(h(1), "/a", "p1", grow), delta(h(1), "/new", "p9", fresh))}, nil)
	removeArchived(t, s, "part-h1", rows1, true)
	wantHour(t, s, h(1), []pathstats.HourlyRow{row(h(1), "/a", "p1", grow), row(h(1), "/new", "p9", fresh)})

	// h(2): only a new row appears.
	apply(t, s, []*pathstats.Batch{batch("late-2", delta(h(2), "/a", "p0", at(h(2), 22)))}, nil)
	removeArchived(t, s, "part-h2", rows2, true)
	wantHour(t, s, h(2), []pathstats.HourlyRow{row(h(2), "/a", "p0", at(h(2), 22))})

	// h(4): the only row grows within the same second as the read.
	clk.Set(windowNow)
	apply(t, s, []*pathstats.Batch{batch("late-4", delta(h(4), "/c", "p", at(h(4), 23)))}, nil)
	removeArchived(t, s, "part-h4", rows4, true)
	wantHour(t, s, h(4), []pathstats.HourlyRow{row(h(4), "/c", "p", at(h(4), 23))})

	// A repeat of a part id changes nothing, even with the growth there.
	removeArchived(t, s, "part-h1", rows1, false)
	wantHour(t, s, h(1), []pathstats.HourlyRow{row(h(1), "/a", "p1", grow), row(h(1), "/new", "p9", fresh)})
	wantHour(t, s, h(6), want[h(6)])
	wantSameWindow(t, s, w)
}

// testArchiveRestore restores a removed hour exactly, once per part id, and
// adds a restore to rows already there.
func testArchiveRestore(t *testing.T, s archiver, _ *Clock) {
	want := seedArchive(t, s)
	w := readWindow(t, s)
	rows := hourRows(t, s, h(1))
	removeArchived(t, s, "rm-h1", rows, true)
	wantHour(t, s, h(1), nil)

	restoreArchived(t, s, "rs-h1", rows, true)
	wantLedger(t, s, "rs-h1", true)
	wantHour(t, s, h(1), want[h(1)])
	wantHours(t, s, h(6), h(1), h(2), h(4))
	restoreArchived(t, s, "rs-h1", rows, false)
	wantHour(t, s, h(1), want[h(1)])
	wantSameWindow(t, s, w)

	// Restored onto rows still there: counters add, LastSeenMs is the max.
	late := at(h(1), 30)
	apply(t, s, []*pathstats.Batch{batch("late", delta(h(1), "/a", "p1", late))}, nil)
	restoreArchived(t, s, "rs-h1-again", rows, true)
	var doubled []pathstats.HourlyRow
	for _, r := range want[h(1)] {
		c := sum(r.Counts, r.Counts)
		if r.Path == "/a" && r.ProxyID == "p1" {
			c = sum(c, late)
		}
		doubled = append(doubled, row(h(1), r.Path, r.ProxyID, c))
	}
	wantHour(t, s, h(1), doubled)

	// Restored into an empty hour.
	moved := slices.Clone(want[h(2)])
	for i := range moved {
		moved[i].Hour = h(3)
	}
	restoreArchived(t, s, "rs-h3", moved, true)
	wantHour(t, s, h(3), moved)
	wantHour(t, s, h(2), want[h(2)])
	wantHours(t, s, h(6), h(1), h(2), h(3), h(4))
	wantSameWindow(t, s, w)
}

// testArchiveRefused checks rows of window hours, and of several hours, are
// refused with nothing changed and no id recorded.
func testArchiveRefused(t *testing.T, s archiver, _ *Clock) {
	ctx := context.Background()
	want := seedArchive(t, s)
	w := readWindow(t, s)
	for _, hour := range []int64{h(6), h(30), h(31)} {
		rows := want[hour]
		if rows == nil {
			rows = []pathstats.HourlyRow{row(hour, "/x", "p", at(hour, 40))}
		}
		for _, op := range []struct {
			name string
			fn   func(context.Context, string, []pathstats.HourlyRow) (bool, error)
		}{{"remove", s.RemoveArchived}, {"restore", s.RestoreArchived}} {
			id := fmt.Sprintf("%s-h%d", op.name, (hour-h0)/3600)
			applied, err := op.fn(ctx, id, rows)
			if !errors.Is(err, pathstats.ErrHourInWindow) || applied {
				t.Errorf("%s archived rows of h%+d: applied %v, err %v; want ErrHourInWindow", op.name, (hour-h0)/3600, applied, err)
			}
			wantLedger(t, s, id, false)
		}
	}
	mixed := append(slices.Clone(want[h(1)]), want[h(2)]...)
	for _, op := range []struct {
		name string
		fn   func(context.Context, string, []pathstats.HourlyRow) (bool, error)
	}{{"remove", s.RemoveArchived}, {"restore", s.RestoreArchived}} {
		applied, err := op.fn(ctx, op.name+"-mixed", mixed)
		if err == nil || errors.Is(err, pathstats.ErrHourInWindow) || applied {
			t.Errorf("%s archived rows of two hours: applied %v, err %v; want another error", op.name, applied, err)
		}
		wantLedger(t, s, op.name+"-mixed", false)
	}
	for hour, rows := range want {
		wantHour(t, s, hour, rows)
	}
	wantSameWindow(t, s, w)
}

// testArchiveConcurrentApply removes, then restores, an hour while batches
// to the same hour (rows read and new rows) are applied concurrently: no
// increment is lost.
func testArchiveConcurrentApply(t *testing.T, s archiver, _ *Clock) {
	want := seedArchive(t, s)
	w := readWindow(t, s)
	rows := hourRows(t, s, h(1))
	const rounds = 20
	late := map[pathstats.Key]pathstats.Counts{}
	lateBatch := func(round int) *pathstats.Batch {
		seed := int64(100 + round)
		b := batch(fmt.Sprintf("late-%d", round),
			delta(h(1), "/a", "p1", at(h(1), seed)), delta(h(1), "/b", "p1", at(h(1), seed+50)),
			delta(h(1), fmt.Sprintf("/late/%02d", round%5), "p", at(h(1), seed+100)))
		for _, d := range b.Deltas {
			c := late[d.Key]
			late[d.Key] = sum(c, d.Counts)
		}
		return b
	}
	run := func(from int, archive func() error) {
		t.Helper()
		batches := make([]*pathstats.Batch, rounds)
		for i := range batches {
			batches[i] = lateBatch(from + i)
		}
		var wg sync.WaitGroup
		errs := make(chan error, rounds+1)
		wg.Go(func() {
			for _, b := range batches {
				if _, err := s.Apply(context.Background(), []*pathstats.Batch{b}, nil); err != nil {
					errs <- fmt.Errorf("apply %s: %w", b.ID, err)
				}
			}
		})
		wg.Go(func() { errs <- archive() })
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	expect := func(base []pathstats.HourlyRow) []pathstats.HourlyRow {
		all := map[pathstats.Key]pathstats.Counts{}
		for _, r := range base {
			all[r.Key] = r.Counts
		}
		for k, c := range late {
			all[k] = sum(all[k], c)
		}
		var out []pathstats.HourlyRow
		for k, c := range all {
			out = append(out, pathstats.HourlyRow{Key: k, Counts: c})
		}
		slices.SortFunc(out, func(a, b pathstats.HourlyRow) int { return a.Key.Compare(b.Key) })
		return out
	}

	run(0, func() error {
		applied, err := s.RemoveArchived(context.Background(), "cc-remove", rows)
		if err == nil && !applied {
			err = errors.New("remove archived: not applied")
		}
		return err
	})
	wantHour(t, s, h(1), expect(nil))

	run(rounds, func() error {
		applied, err := s.RestoreArchived(context.Background(), "cc-restore", rows)
		if err == nil && !applied {
			err = errors.New("restore archived: not applied")
		}
		return err
	})
	wantHour(t, s, h(1), expect(want[h(1)]))
	wantHour(t, s, h(2), want[h(2)])
	wantSameWindow(t, s, w)
}

// largeHourRows is the size of the hour of testArchiveLargeHour: above the
// size from which a backend may move rows differently (PostgreSQL copies
// parts of 5,000 rows and more).
const largeHourRows = 6_000

// testArchiveLargeHour removes a large hour that grew (every row
// subtracted), restores it, removes it whole and restores it again.
func testArchiveLargeHour(t *testing.T, s archiver, _ *Clock) {
	w := readWindow(t, s)
	ds := make([]pathstats.Delta, largeHourRows)
	for i := range ds {
		ds[i] = delta(h(2), fmt.Sprintf("/large/%05d", i), fmt.Sprintf("p%d", i%3), at(h(2), int64(i+1)))
	}
	apply(t, s, pathstats.SplitBatches("large", "storetest", slices.Clone(ds)), nil)
	rows := hourRows(t, s, h(2))
	if len(rows) != largeHourRows {
		t.Fatalf("hour rows: %d rows, want %d", len(rows), largeHourRows)
	}
	want := make([]pathstats.HourlyRow, len(rows))
	for i, r := range rows {
		want[i] = row(r.Hour, r.Path, r.ProxyID, r.Counts)
	}

	// One row grows by a delta whose LastSeenMs is older than the row's:
	// after the removal the row holds the delta's counters and keeps its
	// LastSeenMs.
	grow := delta(h(2), rows[17].Path, rows[17].ProxyID, at(h(2), 3_000_000))
	grow.LastSeenMs = h(2)*1000 + 1
	apply(t, s, []*pathstats.Batch{batch("large-late", grow)}, nil)
	removeArchived(t, s, "large-rm-1", rows, true)
	left := grow.Counts
	left.LastSeenMs = rows[17].Counts.LastSeenMs
	wantHour(t, s, h(2), []pathstats.HourlyRow{row(h(2), grow.Path, grow.ProxyID, left)})

	restoreArchived(t, s, "large-rs-1", rows, true)
	grown := slices.Clone(want)
	grown[17].Counts = sum(grown[17].Counts, grow.Counts)
	wantHour(t, s, h(2), grown)
	removeArchived(t, s, "large-rm-2", hourRows(t, s, h(2)), true)
	wantHour(t, s, h(2), nil)
	restoreArchived(t, s, "large-rs-2", rows, true)
	restoreArchived(t, s, "large-rs-2", rows, false)
	wantHour(t, s, h(2), want)
	wantHours(t, s, h(6), h(2))
	wantSameWindow(t, s, w)
}
