package vaultcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

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
	proc    *vaulttest.Process
}

func (n *Node) String() string { return n.Name }

// Running reports whether the node's process is running.
func (n *Node) Running() bool { return n.proc.Running() }

// PID is the node's vault server process ID, 0 when it is not running.
func (n *Node) PID() int { return n.proc.PID() }

// LogTail returns the last lines of the node's log.
func (n *Node) LogTail(lines int) string { return n.proc.LogTail(lines) }

func (n *Node) writeConfig(pluginDir string, o Options) error {
	n.proc = &vaulttest.Process{Dir: n.dir, Home: filepath.Join(n.dir, "home"), LogPath: n.LogPath}
	if err := os.MkdirAll(n.proc.Home, 0o700); err != nil {
		return err
	}
	cfg := vaulttest.ServerConfig{
		Storage: "raft", DataDir: filepath.Join(n.dir, "raft"), NodeID: n.Name, Port: n.Port, PluginDir: pluginDir,
		PerformanceMultiplier: o.PerformanceMultiplier, FastAutopilot: true,
	}
	return cfg.Write(filepath.Join(n.dir, "vault.hcl"))
}

// start runs the vault server process, its output appended to LogPath.
func (n *Node) start(logLevel string) error {
	return n.proc.Start("vaultcluster: "+n.Name, "server", "-config="+filepath.Join(n.dir, "vault.hcl"), "-log-level="+logLevel)
}

// kill stops the node like a crashed machine: SIGKILL to the server and
// every plugin process it started, then waits for the server to exit.
func (n *Node) kill() { n.proc.Kill(true) }

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

// health returns the node's sys/health status code, 0 if it does not answer.
func (n *Node) health(ctx context.Context) int { return vaulttest.Health(ctx, n.Addr) }

// waitHealth polls sys/health until ok(code) holds, the process exits or
// the context ends.
func (n *Node) waitHealth(ctx context.Context, ok func(code int) bool) error {
	if err := n.proc.WaitHealth(ctx, n.Addr, ok); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
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
