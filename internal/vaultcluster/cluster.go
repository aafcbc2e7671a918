// Package vaultcluster runs a real high-availability Vault cluster for
// integration tests: three `vault server` processes (Vault v1.14.8, from
// FLOWCRED_VAULT_BIN) on loopback with integrated storage (raft), initialised
// with one key share, unsealed, joined, all voters, and the flowcred plugin
// (FLOWCRED_PLUGIN_BIN) registered with its sha256 and version and mounted
// once at flowcred/.
//
// Every node has its own API and cluster ports, raft directory and log; all
// nodes share one plugin directory, as nodes built from one image do. Kill
// stops a node like a crashed machine (SIGKILL to the server and its plugin
// processes); Restart starts it again on the same data and unseals it.
//
// Tests are gated like internal/vaulttest: Start skips unless
// FLOWCRED_INTEGRATION=1.
package vaultcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// EnvKeep, when "1", keeps the cluster's temp dir (logs, raft data) after
// Close and prints where it is.
const EnvKeep = vaulttest.EnvKeep

// Options configure a cluster. The zero value is a three-node cluster.
type Options struct {
	// Nodes is the number of servers; default 3.
	Nodes int
	// Mount is where the plugin is enabled; default "flowcred".
	Mount string
	// PluginName is the catalog name; default "flowcred".
	PluginName string
	// LogLevel of the servers; default "info".
	LogLevel string
	// PerformanceMultiplier is raft's performance_multiplier: heartbeat and
	// election timeouts are this many seconds, the leader lease half that.
	// Vault's default is 5 (a standby takes over in about 5 s). The harness
	// defaults to 3: with 1, a loaded two-core machine missed leader leases
	// and the leader stepped down in the middle of tests.
	PerformanceMultiplier int
	// StabilizationTime is autopilot's server_stabilization_time: how long a
	// joined node must be healthy before it is promoted to voter. Vault's
	// default is 10 s; the harness defaults to 1 s.
	StabilizationTime time.Duration
	// Timeout bounds each wait (start, election, promotion); default 90 s.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.Mount == "" {
		o.Mount = "flowcred"
	}
	o.Mount = strings.Trim(o.Mount, "/")
	if o.PluginName == "" {
		o.PluginName = "flowcred"
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.PerformanceMultiplier <= 0 {
		o.PerformanceMultiplier = 3
	}
	if o.StabilizationTime <= 0 {
		o.StabilizationTime = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 90 * time.Second
	}
	return o
}

// Cluster is a running Vault cluster with the plugin mounted.
type Cluster struct {
	// Nodes are the servers, node1 first (the one that was initialised).
	Nodes []*Node
	// Token is the root token, UnsealKey the single key share.
	Token, UnsealKey string
	// Mount is where the plugin is enabled, without slashes.
	Mount string
	// PluginName, PluginVersion and PluginSHA256 are what the plugin was
	// registered with.
	PluginName, PluginVersion, PluginSHA256 string
	// PluginDir is the plugin directory every node uses.
	PluginDir string
	// StartDuration is how long New took, from the first process start to
	// the mounted plugin with three voters.
	StartDuration time.Duration

	opts      Options
	dir       string
	closeOnce sync.Once
}

// Start runs a cluster for the test and stops it when the test ends. The
// nodes' logs are printed if the test failed.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	vaulttest.Require(tb)
	c, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			c.LogTails(tb, 150)
		}
		c.Close()
	})
	return c
}

// New starts a cluster without a testing.TB (TestMain, programs). The caller
// must Close it.
func New(opts Options) (*Cluster, error) {
	if err := vaulttest.Check(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	var err error
	// A port can be taken between our check and Vault's bind by a process
	// that does not use our reservations; then start over on other ports.
	for attempt := 0; attempt < 3; attempt++ {
		var c *Cluster
		c, err = newOnce(opts)
		if err == nil {
			return c, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

func newOnce(opts Options) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "flowcred-vaultcluster-")
	if err != nil {
		return nil, err
	}
	// Vault refuses plugin commands whose resolved path leaves the plugin
	// directory, so use the resolved temp path throughout.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	c := &Cluster{opts: opts, dir: dir, Mount: opts.Mount, PluginName: opts.PluginName, PluginDir: filepath.Join(dir, "plugins")}
	if err := c.boot(); err != nil {
		err = fmt.Errorf("vaultcluster: %w%s", err, c.logTailsText(40))
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) boot() error {
	start := time.Now()
	if err := os.MkdirAll(c.PluginDir, 0o700); err != nil {
		return err
	}
	sum, err := vaulttest.CopyFile(vaulttest.PluginBin(), filepath.Join(c.PluginDir, vaulttest.PluginFile))
	if err != nil {
		return fmt.Errorf("copying the plugin: %w", err)
	}
	c.PluginSHA256 = sum
	for i := 1; i <= c.opts.Nodes; i++ {
		port, release, err := vaulttest.ReservePortPair()
		if err != nil {
			return err
		}
		n := &Node{
			Name:        "node" + strconv.Itoa(i),
			Port:        port,
			Addr:        "http://127.0.0.1:" + strconv.Itoa(port),
			ClusterAddr: "https://127.0.0.1:" + strconv.Itoa(port+1),
			dir:         filepath.Join(c.dir, "node"+strconv.Itoa(i)),
			release:     release,
		}
		n.LogPath = filepath.Join(n.dir, "vault.log")
		c.Nodes = append(c.Nodes, n)
		if err := n.writeConfig(c.PluginDir, c.opts); err != nil {
			return err
		}
		if err := n.start(c.opts.LogLevel); err != nil {
			return err
		}
		if err := n.newClient(""); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()

	// node1: initialise, unseal, wait until it is the active node.
	first := c.Nodes[0]
	for _, n := range c.Nodes {
		if err := n.waitHealth(ctx, func(code int) bool { return code == healthUninitialized }); err != nil {
			return fmt.Errorf("waiting for %s to answer: %w", n.Name, err)
		}
	}
	init, err := first.Client.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return fmt.Errorf("operator init on %s: %w", first.Name, err)
	}
	c.UnsealKey, c.Token = init.Keys[0], init.RootToken
	for _, n := range c.Nodes {
		n.Client.SetToken(c.Token)
	}
	if err := first.unseal(ctx, c.UnsealKey); err != nil {
		return err
	}
	if err := first.waitHealth(ctx, func(code int) bool { return code == healthActive }); err != nil {
		return fmt.Errorf("waiting for %s to become active: %w", first.Name, err)
	}
	// Promote joined nodes to voters quickly (the default needs them
	// healthy for 10 s, and stopping the leader before that loses quorum).
	// (Not Sys().PutRaftAutopilotConfiguration: it always sends
	// disable_upgrade_migration, which Vault's community edition refuses.)
	if _, err := first.Client.Logical().WriteWithContext(ctx, "sys/storage/raft/autopilot/configuration", map[string]any{
		"server_stabilization_time": c.opts.StabilizationTime.String(),
	}); err != nil {
		return fmt.Errorf("vault operator raft autopilot set-config: %w", err)
	}

	// The others: join node1, unseal (which completes the join). Meanwhile
	// install the plugin through node1.
	errs := make(chan error, len(c.Nodes))
	go func() { errs <- c.installPlugin(ctx, first.Client) }()
	for _, n := range c.Nodes[1:] {
		go func(n *Node) {
			if _, err := n.Client.Sys().RaftJoinWithContext(ctx, &api.RaftJoinRequest{LeaderAPIAddr: first.Addr}); err != nil {
				errs <- fmt.Errorf("vault operator raft join on %s: %w", n.Name, err)
				return
			}
			errs <- n.unseal(ctx, c.UnsealKey)
		}(n)
	}
	for range c.Nodes {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return err
	}
	if err := c.waitVoters(ctx); err != nil {
		return err
	}
	c.StartDuration = time.Since(start)
	return nil
}

// installPlugin registers the plugin with its sha256 and version and enables
// it at Mount, as an operator does, through the active node.
func (c *Cluster) installPlugin(ctx context.Context, client *api.Client) error {
	var err error
	c.PluginVersion, err = vaulttest.InstallPlugin(ctx, client, vaulttest.PluginInstall{
		Name:        c.PluginName,
		Command:     vaulttest.PluginFile,
		SHA256:      c.PluginSHA256,
		Mount:       c.Mount,
		Description: "flowcred (vaultcluster)",
		Version:     os.Getenv(vaulttest.EnvPluginVersion),
		Config:      vaulttest.FlowcredTestConfig(),
	})
	return err
}

// Close stops every node (SIGKILL: the data is thrown away), releases the
// ports and removes the temp dir (unless FLOWCRED_VAULTTEST_KEEP=1).
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		for _, n := range c.Nodes {
			n.kill()
			if n.release != nil {
				n.release()
				n.release = nil
			}
		}
		if os.Getenv(EnvKeep) == "1" {
			fmt.Fprintf(os.Stderr, "vaultcluster: kept %s\n", c.dir)
			return
		}
		_ = os.RemoveAll(c.dir)
	})
}

// LogTails logs the last lines of every node's log.
func (c *Cluster) LogTails(tb testing.TB, lines int) {
	tb.Helper()
	for _, n := range c.Nodes {
		tb.Logf("--- %s log (%s):\n%s", n.Name, n.LogPath, n.LogTail(lines))
	}
}

// LogOnFailure prints what the nodes logged during the test if it fails.
// Use it in each test of a cluster shared by several.
func (c *Cluster) LogOnFailure(tb testing.TB) {
	tb.Helper()
	// Cleanups run last-in first-out: register node1's last.
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		c.Nodes[i].proc.LogOnFailure(tb, "--- "+c.Nodes[i].Name+" log", 150)
	}
}

func (c *Cluster) logTailsText(lines int) string {
	var b strings.Builder
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "\n--- last lines of %s's log:\n%s", n.Name, n.LogTail(lines))
	}
	return b.String()
}

// AddPluginBinary copies the executable src into the plugin directory as
// name (what every node's plugin directory would get from a rollout) and
// returns its sha256, for `vault plugin register -sha256`.
func (c *Cluster) AddPluginBinary(src, name string) (string, error) {
	if name != filepath.Base(name) {
		return "", fmt.Errorf("vaultcluster: plugin file name %q has a directory part", name)
	}
	return vaulttest.CopyFile(src, filepath.Join(c.PluginDir, name))
}
