//go:build linux

package vaulttest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

var terminateSignal = syscall.SIGTERM

// SysProcAttr puts a vault server in its own process group (so that
// KillGroup takes the plugin processes it started, or a crash left behind,
// down with it) and has the kernel send it SIGTERM if the test process dies
// first (go test's timeout, Ctrl-C). internal/vaultcluster uses it too.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// KillGroup sends SIGKILL to the process group led by pid (a process
// started with SysProcAttr); it does nothing for pid <= 0.
func KillGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// PluginPIDs lists the children of the vault server parent whose
// executable is in dir (its plugin directory): its plugin processes; with
// names, only those whose executable has one of these file names.
func PluginPIDs(parent int, dir string, names ...string) ([]int, error) {
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
		if err != nil {
			continue
		}
		if ppid(pid) != parent {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		if filepath.Dir(exe) == dir && (len(names) == 0 || slices.Contains(names, filepath.Base(exe))) {
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

// Port pairs (API port P, cluster port P+1) are reserved across processes
// with a lock file per pair, so two test binaries (go test runs packages in
// parallel) never pick the same pair. P is even and below Linux's ephemeral
// range (32768+), where outgoing connections and ":0" listeners live.
const (
	portLow   = 20000
	portPairs = 6000 // P in [20000, 32000)
)

// ReservePortPair returns a free, reserved pair (API port P, cluster port
// P+1) and a function releasing it. internal/vaultcluster reserves its
// nodes' ports with it too, so clusters and single servers never collide.
func ReservePortPair() (int, func(), error) {
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
	return 0, nil, fmt.Errorf("vaulttest: no free port pair found in [%d, %d)", portLow, portLow+2*portPairs)
}

func canListen(port int) bool {
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
