package vaultcluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// Node is one `vault server` process of a Cluster.
type Node struct {
	// Name is the raft node ID (node1, node2, ...).
	Name string
	// Addr is the API address, http://127.0.0.1:Port.
	Addr string
	// Port is the API port; the cluster port is Port+1.
	Port int
	// ClusterAddr is the raft and request-forwarding address, https://127.0.0.1:Port+1.
	ClusterAddr string
	// Client talks to this node (and only this node) with the root token.
	// It does not retry: Vault's client retries 5xx answers by default,
	// which would hide or multiply upstream calls in tests.
	Client *api.Client
	// LogPath is the node's log (stdout and stderr of every run).
	LogPath string

	dir     string
	release func()

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

func (n *Node) String() string { return n.Name }

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// PID is the node's vault server process ID, 0 when it is not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// LogTail returns the last lines of the node's log.
func (n *Node) LogTail(lines int) string {
	return vaulttest.LogTail(n.LogPath, lines)
}

func (n *Node) writeConfig(pluginDir string, o Options) error {
	cfg := fmt.Sprintf(`storage "raft" {
  path                         = %q
  node_id                      = %q
  performance_multiplier       = %d
  autopilot_update_interval    = "500ms"
  autopilot_reconcile_interval = "1s"
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = %q
cluster_addr     = %q
plugin_directory = %q
disable_mlock    = true
ui               = false
`, filepath.Join(n.dir, "raft"), n.Name, o.PerformanceMultiplier,
		n.Port, n.Port+1, n.Addr, n.ClusterAddr, pluginDir)
	for _, d := range []string{filepath.Join(n.dir, "raft"), filepath.Join(n.dir, "home")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(n.dir, "vault.hcl"), []byte(cfg), 0o600)
}

// start runs the vault server process, its output appended to LogPath.
func (n *Node) start(logLevel string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("vaultcluster: %s is already running", n.Name)
	}
	args := []string{"server", "-config=" + filepath.Join(n.dir, "vault.hcl"), "-log-level=" + logLevel}
	banner := fmt.Sprintf("vaultcluster: %s %s", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd, exited, err := vaulttest.StartLogged(n.LogPath, n.dir, filepath.Join(n.dir, "home"), banner, args)
	if err != nil {
		return err
	}
	n.cmd, n.exited = cmd, exited
	return nil
}

// kill stops the node like a crashed machine: SIGKILL to the server and
// every plugin process it started, then waits for the server to exit.
func (n *Node) kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd, n.exited = nil, nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	vaulttest.KillGroup(cmd.Process.Pid)
	_ = cmd.Process.Kill()
	<-exited
}

func (n *Node) newClient(token string) error {
	c, err := vaulttest.NewClient(n.Addr, token)
	if err != nil {
		return err
	}
	n.Client = c
	return nil
}

// Health codes of sys/health (with its default query parameters).
const (
	healthActive        = 200
	healthStandby       = 429
	healthUninitialized = 501
	healthSealed        = 503
)

// healthClient is shared by health probes: short timeout, no keep-alive
// surprises across node restarts.
var healthClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// health returns the node's sys/health status code, 0 if it does not answer.
func (n *Node) health(ctx context.Context) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Addr+"/v1/sys/health", nil)
	if err != nil {
		return 0
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode
}

// waitHealth polls sys/health until ok(code) holds, the process exits or
// the context ends.
func (n *Node) waitHealth(ctx context.Context, ok func(code int) bool) error {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	if exited == nil {
		return fmt.Errorf("%s is not running", n.Name)
	}
	last := 0
	for {
		code := n.health(ctx)
		if ok(code) {
			return nil
		}
		last = code
		select {
		case <-exited:
			return fmt.Errorf("%s exited (last sys/health status %d)", n.Name, last)
		case <-ctx.Done():
			return fmt.Errorf("%s: sys/health status %d: %w", n.Name, last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// unseal gives the node the single key share and waits until it serves as
// active or standby.
func (n *Node) unseal(ctx context.Context, key string) error {
	st, err := n.Client.Sys().UnsealWithContext(ctx, key)
	if err != nil {
		return fmt.Errorf("unsealing %s: %w", n.Name, err)
	}
	if st.Sealed {
		// A joining node finishes unsealing once raft has caught up.
		if err := n.waitHealth(ctx, func(code int) bool { return code != healthSealed && code != 0 }); err != nil {
			return err
		}
	}
	return n.waitHealth(ctx, func(code int) bool { return code == healthActive || code == healthStandby })
}
