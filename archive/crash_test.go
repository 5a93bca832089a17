package archive

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/s3test"
)

// nth returns a fail function matching the n-th call of op on keys with
// prefix.
func nth(op, prefix string, n int) func(string, string) bool {
	count := 0
	return func(o, key string) bool {
		if o != op || !strings.HasPrefix(key, prefix) {
			return false
		}
		count++
		return count == n
	}
}

// crashCase interrupts a run at one step: fail makes one bucket call fail,
// or cancelOn cancels the run's context after a successful call.
type crashCase struct {
	name     string
	fail     func(op, key string) bool
	cancelOn func(op, key string) bool
}

// archiveCrashes returns fresh cases (nth keeps a count).
func archiveCrashes() []crashCase {
	return []crashCase{
		{name: "intent put fails", fail: on("put", pendingPrefix)},
		{name: "part put fails", fail: on("put", partsPrefix)},
		{name: "verify read fails after upload", fail: nth("get", partsPrefix, 2)},
		{name: "cancel after upload", cancelOn: on("put", partsPrefix)},
		{name: "manifest put fails after SQL removal", fail: on("put", manifestsPrefix)},
		{name: "intent delete fails after commit", fail: on("delete", pendingPrefix)},
	}
}

// restoreCrashes returns fresh cases (nth keeps a count).
func restoreCrashes() []crashCase {
	return []crashCase{
		{name: "cancel after hold", cancelOn: nth("put", holdsPrefix, 1)},
		{name: "part delete fails after SQL restore", fail: on("delete", partsPrefix)},
		{name: "manifest put fails after delete", fail: on("put", manifestsPrefix)},
	}
}

// bucketOpeners gives a fresh file:// bucket and, when the S3 test server
// is configured, a fresh S3 bucket.
func bucketOpeners() map[string]func(t *testing.T) pathstats.ObjectStore {
	return map[string]func(t *testing.T) pathstats.ObjectStore{
		"file": func(t *testing.T) pathstats.ObjectStore { return openFileBucket(t) },
		"s3":   func(t *testing.T) pathstats.ObjectStore { return openURL(t, s3test.Start(t)) },
	}
}

// interrupt runs fn on an archiver over a faulty view of bucket that
// injects c, and checks fn failed.
func interrupt(t *testing.T, store pathstats.ArchiveStore, bucket pathstats.ObjectStore, clk *clock, c crashCase,
	fn func(ctx context.Context, a *Archiver) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fs := &faultyStore{ObjectStore: bucket, fail: c.fail}
	if c.cancelOn != nil {
		fs.after = func(op, key string) {
			if c.cancelOn(op, key) {
				cancel()
			}
		}
	}
	err := fn(ctx, newArchiver(t, store, fs, clk))
	if err == nil {
		t.Fatalf("interrupted run succeeded")
	}
	if c.fail != nil && (fs.hit != 1 || !errors.Is(err, errInjected)) {
		t.Fatalf("injected failure hit %d times, run error %v", fs.hit, err)
	}
	if c.cancelOn != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run error %v, want context.Canceled", err)
	}
	t.Logf("interrupted: %v", err)
}

// TestArchiveCrashConverges interrupts an archive run at each step; the
// next run converges: old hours gone from SQL, each archived exactly once,
// no stray objects, and a restore gives back identical rows.
func TestArchiveCrashConverges(t *testing.T) {
	for bname, open := range bucketOpeners() {
		for _, c := range archiveCrashes() {
			t.Run(bname+"/"+c.name, func(t *testing.T) {
				ctx := context.Background()
				store, bucket := openStore(t), open(t)
				clk := &clock{t: time.Now()}
				th := hoursAt(clk.Now())
				seed(t, store, th, 30)
				before := snapshot(t, store, th.all())

				interrupt(t, store, bucket, clk, c, func(ctx context.Context, a *Archiver) error {
					_, err := a.RunOnce(ctx)
					return err
				})
				a := newArchiver(t, store, bucket, clk)
				if _, err := a.RunOnce(ctx); err != nil {
					t.Fatalf("rerun: %v", err)
				}
				if left, err := store.HoursBefore(ctx, th.recent); err != nil || len(left) != 0 {
					t.Fatalf("old hours left in SQL: %v, %v", left, err)
				}
				checkArchivedOnce(t, a, th, before)
				checkConsistent(t, a)
				if res, err := a.RunOnce(ctx); err != nil || res != (Result{}) {
					t.Fatalf("third run = %+v, %v; want a no-op", res, err)
				}
				if _, err := a.Restore(ctx, th.old[0], th.recent, time.Hour); err != nil {
					t.Fatalf("restore: %v", err)
				}
				checkHours(t, store, before)
				checkConsistent(t, a)
			})
		}
	}
}

// checkArchivedOnce checks each old hour's archive totals equal its rows.
func checkArchivedOnce(t *testing.T, a *Archiver, th testHours, before map[int64][]pathstats.HourlyRow) {
	t.Helper()
	infos, err := a.List(context.Background(), th.old[0], th.recent)
	if err != nil || len(infos) != len(th.old) {
		t.Fatalf("list = %+v, %v; want %d hours", infos, err, len(th.old))
	}
	for i, info := range infos {
		s := sumRows(before[th.old[i]])
		if info.Rows != s.Rows || info.Requests != s.Requests || info.Errors != s.Errors {
			t.Fatalf("hour %s archived %+v, want %+v", hourDir(info.Hour), info, s)
		}
	}
}

// TestRestoreCrashConverges interrupts a restore at each step; rerunning
// the restore brings every row back exactly once.
func TestRestoreCrashConverges(t *testing.T) {
	for bname, open := range bucketOpeners() {
		for _, c := range restoreCrashes() {
			t.Run(bname+"/"+c.name, func(t *testing.T) {
				ctx := context.Background()
				store, bucket := openStore(t), open(t)
				clk := &clock{t: time.Now()}
				th := hoursAt(clk.Now())
				seed(t, store, th, 30)
				before := snapshot(t, store, th.all())
				a := newArchiver(t, store, bucket, clk)
				if _, err := a.RunOnce(ctx); err != nil {
					t.Fatal(err)
				}

				interrupt(t, store, bucket, clk, c, func(ctx context.Context, a *Archiver) error {
					_, err := a.Restore(ctx, th.old[0], th.recent, time.Hour)
					return err
				})
				// An archive run in between must not touch the held hours.
				if res, err := a.RunOnce(ctx); err != nil || res.Parts != 0 {
					t.Fatalf("run during restore = %+v, %v", res, err)
				}
				if _, err := a.Restore(ctx, th.old[0], th.recent, time.Hour); err != nil {
					t.Fatalf("restore rerun: %v", err)
				}
				checkHours(t, store, before)
				checkConsistent(t, a)
				if infos, err := a.List(ctx, 0, th.recent); err != nil || len(infos) != 0 {
					t.Fatalf("list after restore = %+v, %v", infos, err)
				}
			})
		}
	}
}

// TestRecoveryAfterRestoreOfUnclearedPart: a run commits a part but fails
// to clear its intent; the hour is restored before the next run, whose
// recovery must delete the leftover, not commit the part again.
func TestRecoveryAfterRestoreOfUnclearedPart(t *testing.T) {
	ctx := context.Background()
	store, bucket := openStore(t), openFileBucket(t)
	clk := &clock{t: time.Now()}
	th := hoursAt(clk.Now())
	seed(t, store, th, 20)
	before := snapshot(t, store, th.all())
	interrupt(t, store, bucket, clk, crashCase{fail: on("delete", pendingPrefix)}, func(ctx context.Context, a *Archiver) error {
		_, err := a.RunOnce(ctx)
		return err
	})
	if p := keys(t, bucket, pendingPrefix); len(p) != 1 {
		t.Fatalf("intents %v, want one left", p)
	}
	a := newArchiver(t, store, bucket, clk)
	if _, err := a.Restore(ctx, th.old[0], th.recent, time.Hour); err != nil {
		t.Fatalf("restore: %v", err)
	}
	res, err := a.RunOnce(ctx)
	if err != nil || res.Recovered != 1 || res.Parts != 0 || res.Held != 3 {
		t.Fatalf("run = %+v, %v; want 1 recovered, 3 held, nothing archived", res, err)
	}
	checkHours(t, store, before)
	checkConsistent(t, a)
	if infos, err := a.List(ctx, 0, th.recent); err != nil || len(infos) != 0 {
		t.Fatalf("list = %+v, %v; want nothing archived", infos, err)
	}
}
