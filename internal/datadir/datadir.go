// Package datadir guards the data directory of `pathstats serve`: one
// process at a time (an OS file lock the kernel releases when the process
// dies, even by kill -9), and the node id that names the directory's node
// in leases and history across restarts.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// LockFile is the name of the lock file inside a data dir; it holds the
// pid of the process that holds the lock.
const LockFile = "serve.lock"

// startRace bounds how long Acquire waits for a lock whose recorded pid is
// not alive: the holder is then a process that took the lock a moment ago
// and has not written its pid yet, or a probe (InUse) that lets go at once.
const startRace = time.Second

// InUseError reports that another process holds a data dir's lock.
type InUseError struct {
	Dir string
	PID int // 0 when the holder did not name itself (yet)
}

func (e *InUseError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("data dir %s is in use by pid %d", e.Dir, e.PID)
	}
	return fmt.Sprintf("data dir %s is in use by another process", e.Dir)
}

// Lock is the exclusive lock on a data dir, held until Close or until the
// process exits.
type Lock struct {
	f *os.File
}

// Acquire takes the exclusive lock on dir (which must exist) and records
// this process's pid in it. It does not wait for a live holder: it returns
// an *InUseError naming that holder's pid at once.
func Acquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := lockOrReport(f, dir); err != nil {
		f.Close()
		return nil, err
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// lockOrReport takes the exclusive lock on f, or returns an *InUseError
// once the holder is known to be alive (or startRace passed).
func lockOrReport(f *os.File, dir string) error {
	deadline := time.Now().Add(startRace)
	for {
		err := tryLock(f, true)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errWouldBlock) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		pid := readPID(f.Name())
		if pid > 0 && processAlive(pid) {
			return &InUseError{Dir: dir, PID: pid}
		}
		if time.Now().After(deadline) {
			return &InUseError{Dir: dir}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// readPID is the pid recorded in a lock file, 0 when there is none.
func readPID(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid < 0 {
		return 0
	}
	return pid
}

// Close releases the lock. The file stays (removing a lock file races with
// a process that opened it to lock it).
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// InUse reports whether a process holds the lock of dir. It never blocks:
// it tries a shared lock and lets go of it at once. A dir without a lock
// file gives an error wrapping fs.ErrNotExist (no server of this version
// ever ran there).
func InUse(dir string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if err != nil {
		return false, fmt.Errorf("open lock: %w", err)
	}
	defer f.Close()
	switch err := tryLock(f, false); {
	case err == nil:
		return false, unlock(f)
	case errors.Is(err, errWouldBlock):
		return true, nil
	default:
		return false, fmt.Errorf("probe lock: %w", err)
	}
}

// ProcessAlive reports whether a process with this pid exists on this
// machine (it may be another program that reused the pid). Where that
// cannot be known it reports true.
func ProcessAlive(pid int) bool {
	return pid > 0 && processAlive(pid)
}
