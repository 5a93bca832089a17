//go:build !linux

package natscluster

import "syscall"

// sysProcAttr has nothing to set outside Linux.
func sysProcAttr() *syscall.SysProcAttr { return nil }
