package reliability

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// killPlugin sends SIGKILL to the running plugin process of v and waits
// until it has exited. It returns the PID, or 0 when no plugin process was
// running (Vault starts it on the next request to the mount).
func killPlugin(v *vaulttest.Server) (int, error) {
	return killPluginThen(v, nil)
}

// killPluginThen is killPlugin calling justBefore right before the signal
// is sent, to sample what is in flight at the moment of the kill.
func killPluginThen(v *vaulttest.Server, justBefore func()) (int, error) {
	pids, err := v.PluginPIDs()
	if err != nil {
		return 0, err
	}
	if len(pids) == 0 {
		return 0, nil
	}
	if len(pids) > 1 {
		return 0, fmt.Errorf("%d plugin processes running (%v), want one", len(pids), pids)
	}
	pid := pids[0]
	if justBefore != nil {
		justBefore()
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill -9 %d: %w", pid, err)
	}
	return pid, waitExited(pid, 10*time.Second)
}

// waitExited waits until pid is gone or a zombie: it runs no more code.
func waitExited(pid int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return nil // reaped
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still running %s after SIGKILL", pid, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitNewPlugin waits until a plugin process other than old runs, and
// returns its PID (0 if none started within limit).
func waitNewPlugin(v *vaulttest.Server, old int, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		pids, _ := v.PluginPIDs()
		for _, p := range pids {
			if p != old {
				return p
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0
}
