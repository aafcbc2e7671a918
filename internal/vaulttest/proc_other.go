//go:build !linux

package vaulttest

import (
	"errors"
	"os"
	"syscall"
)

// The harness scans /proc and uses Linux process attributes; elsewhere it
// reports that it is unsupported instead of half-working.

var errUnsupported = errors.New("vaulttest supports Linux only")

var terminateSignal = os.Interrupt

func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(pid int) {}

func pluginPIDs(parent int, dir string) ([]int, error) { return nil, errUnsupported }

func reservePortPair() (int, func(), error) { return 0, nil, errUnsupported }
