//go:build linux

package vaultcluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts a node in its own process group, so that Kill takes its
// plugin processes down with it (a crashed machine), and has the kernel send
// it SIGTERM if the test process dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// Port pairs (API port P, cluster port P+1) are reserved with one lock file
// per pair in the same directory and range as internal/vaulttest, so that a
// cluster and single servers started by other test binaries never collide.
const (
	portLow   = 20000
	portPairs = 6000 // P in [20000, 32000), below Linux's ephemeral range
)

// reservePortPair returns a free, reserved pair and a function releasing it.
func reservePortPair() (int, func(), error) {
	dir := filepath.Join(os.TempDir(), "flowcred-vaulttest-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, nil, err
	}
	_ = os.Chmod(dir, 0o777|os.ModeSticky)
	for attempt := 0; attempt < 500; attempt++ {
		port := portLow + 2*rand.IntN(portPairs)
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)+".lock"), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		if !canListen(port) || !canListen(port+1) {
			f.Close() // closing drops the lock
			continue
		}
		return port, func() { f.Close() }, nil
	}
	return 0, nil, fmt.Errorf("vaultcluster: no free port pair found in [%d, %d)", portLow, portLow+2*portPairs)
}

func canListen(port int) bool {
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// pluginPIDs lists children of parent whose executable is in dir.
func pluginPIDs(parent int, dir string) ([]int, error) {
	if parent == 0 {
		return nil, errors.New("vault server is not running")
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ppid(pid) != parent {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		if filepath.Dir(strings.TrimSuffix(exe, " (deleted)")) == dir {
			out = append(out, pid)
		}
	}
	return out, nil
}

// ppid reads the parent PID from /proc/PID/stat ("pid (comm) state ppid ...";
// comm may contain spaces and parentheses, so parse after the last ')').
func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return n
}
