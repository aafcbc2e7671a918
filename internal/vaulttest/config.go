package vaulttest

import (
	"fmt"
	"os"
	"strings"
)

// ServerConfig is a non-dev server's configuration file: one listener on
// 127.0.0.1 without TLS (API port Port, cluster port Port+1), the plugin
// directory, and file or integrated (raft) storage. Server and
// internal/vaultcluster's nodes write theirs with it.
type ServerConfig struct {
	// Storage is "file" or "raft"; DataDir holds its data.
	Storage, DataDir string
	// NodeID is the raft node ID.
	NodeID string
	// Port is the API port.
	Port int
	// PluginDir is the plugin directory.
	PluginDir string
	// PerformanceMultiplier is raft's performance_multiplier (0: Vault's
	// default, 5).
	PerformanceMultiplier int
	// FastAutopilot makes autopilot update every 500 ms and reconcile every
	// second (a test cluster's nodes become voters sooner).
	FastAutopilot bool
}

// HCL renders the configuration.
func (c ServerConfig) HCL() string {
	var storage strings.Builder
	fmt.Fprintf(&storage, "storage %q {\n  path = %q\n", c.Storage, c.DataDir)
	if c.Storage == "raft" {
		fmt.Fprintf(&storage, "  node_id = %q\n", c.NodeID)
		if c.PerformanceMultiplier > 0 {
			fmt.Fprintf(&storage, "  performance_multiplier = %d\n", c.PerformanceMultiplier)
		}
		if c.FastAutopilot {
			storage.WriteString("  autopilot_update_interval    = \"500ms\"\n  autopilot_reconcile_interval = \"1s\"\n")
		}
	}
	storage.WriteString("}\n")
	return storage.String() + fmt.Sprintf(`listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "https://127.0.0.1:%d"
plugin_directory = %q
disable_mlock    = true
ui               = false
`, c.Port, c.Port+1, c.Port, c.Port+1, c.PluginDir)
}

// Write creates the data directory and writes the configuration to path.
func (c ServerConfig) Write(path string) error {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(c.HCL()), 0o600)
}
