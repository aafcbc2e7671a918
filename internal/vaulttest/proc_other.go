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

func SysProcAttr() *syscall.SysProcAttr { return nil }

func KillGroup(pid int) {}

func PluginPIDs(parent int, dir string, names ...string) ([]int, error) { return nil, errUnsupported }

func ReservePortPair() (int, func(), error) { return 0, nil, errUnsupported }
