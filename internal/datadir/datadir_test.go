package datadir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// With DATADIR_TEST_HOLD set, the test binary is a helper process that
// holds the lock of that dir, says "locked" and keeps it until killed or
// until its stdin closes (the test process is gone).
func TestMain(m *testing.M) {
	if dir := os.Getenv("DATADIR_TEST_HOLD"); dir != "" {
		if _, err := Acquire(dir); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestLockSameProcess(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := readPID(filepath.Join(dir, LockFile)); got != os.Getpid() {
		t.Fatalf("lock file names pid %d, want %d", got, os.Getpid())
	}
	start := time.Now()
	_, err = Acquire(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() || inUse.Dir != dir {
		t.Fatalf("second Acquire: %v, want in use by pid %d", err, os.Getpid())
	}
	if d := time.Since(start); d >= startRace {
		t.Errorf("second Acquire took %s, want an answer without waiting out startRace", d)
	}
	want := fmt.Sprintf("data dir %s is in use by pid %d", dir, os.Getpid())
	if err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if held, err := InUse(dir); err != nil || !held {
		t.Fatalf("InUse while locked = %v, %v", held, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if held, err := InUse(dir); err != nil || held {
		t.Fatalf("InUse after Close = %v, %v", held, err)
	}
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Close: %v", err)
	}
	l2.Close()
}

// TestLockOtherProcess: a lock held by another process is refused with its
// pid, and kill -9 of that process frees it.
func TestLockOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DATADIR_TEST_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe() // kept open: the helper holds the lock until killed
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	_, err = Acquire(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != cmd.Process.Pid {
		t.Fatalf("Acquire while another process holds it: %v, want in use by pid %d", err, cmd.Process.Pid)
	}
	if held, err := InUse(dir); err != nil || !held {
		t.Fatalf("InUse = %v, %v", held, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", err)
	}
	defer l.Close()
	if got := readPID(filepath.Join(dir, LockFile)); got != os.Getpid() {
		t.Fatalf("lock file names pid %d, want %d", got, os.Getpid())
	}
}

// TestLockUnnamedHolder: a holder whose recorded pid is dead (it has not
// written its own yet) is waited for briefly, then reported without a pid.
func TestLockUnnamedHolder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, LockFile)
	if err := os.WriteFile(path, []byte("999999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tryLock(f, true); err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != 0 {
		t.Fatalf("Acquire: %v, want in use by an unnamed process", err)
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("message %q", err)
	}
	if err := unlock(f); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire over a stale lock file: %v", err)
	}
	l.Close()
}

func TestInUseNoLockFile(t *testing.T) {
	if _, err := InUse(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("InUse without a lock file: %v, want not exist", err)
	}
}

func TestProcessAlive(t *testing.T) {
	if !ProcessAlive(os.Getpid()) {
		t.Error("this process is not alive")
	}
	for _, pid := range []int{0, -1, 999999999} {
		if ProcessAlive(pid) {
			t.Errorf("pid %d alive", pid)
		}
	}
}
