//go:build !linux

package vaultcluster

import (
	"errors"
	"syscall"
)

// The harness relies on Linux process groups; elsewhere it says so instead
// of half-working.

var errUnsupported = errors.New("vaultcluster supports Linux only")

func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(pid int) {}

func reservePortPair() (int, func(), error) { return 0, nil, errUnsupported }

func pluginPIDs(parent int, dir string) ([]int, error) { return nil, errUnsupported }
