package natscluster

import "syscall"

// sysProcAttr kills the server when the test process dies (a test binary
// killed by -timeout runs no cleanup). Pdeathsig follows the thread that
// started the child; Go only ends threads whose goroutine locked them.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
