package vaulttest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServerConfigHCL(t *testing.T) {
	file := ServerConfig{Storage: "file", DataDir: "/d", Port: 20000, PluginDir: "/p"}.HCL()
	require.Contains(t, file, "storage \"file\" {\n  path = \"/d\"\n}\n")
	require.Contains(t, file, `address         = "127.0.0.1:20000"`)
	require.Contains(t, file, `cluster_address = "127.0.0.1:20001"`)
	require.Contains(t, file, `cluster_addr     = "https://127.0.0.1:20001"`)
	require.Contains(t, file, `plugin_directory = "/p"`)
	require.NotContains(t, file, "node_id")

	raft := ServerConfig{Storage: "raft", DataDir: "/d", NodeID: "node2", Port: 20002, PluginDir: "/p", PerformanceMultiplier: 3, FastAutopilot: true}.HCL()
	require.Contains(t, raft, `node_id = "node2"`)
	require.Contains(t, raft, "performance_multiplier = 3")
	require.Contains(t, raft, `autopilot_reconcile_interval = "1s"`)
}

// One node on integrated storage, as the benchmarks run it: the plugin
// serves, a second plugin can be mounted next to it, and a restart keeps
// the data.
func TestIntegratedStorageServer(t *testing.T) {
	s := Start(t, Options{Storage: StorageIntegrated, PluginEnv: []string{"FLOWCRED_VAULTTEST=1"}, DefaultMountConfig: true})
	require.NotEmpty(t, s.UnsealKey)
	_, err := s.Client.Logical().Write("flowcred/bindings/h1", map[string]interface{}{"kind": "api_token", "token": "vaulttest-token-2"})
	require.NoError(t, err)
	sec, err := s.Client.Logical().Read("flowcred/token/h1")
	require.NoError(t, err)
	require.Equal(t, "vaulttest-token-2", sec.Data["access_token"])
	cfg, err := s.Client.Logical().Read("flowcred/config")
	require.NoError(t, err)
	require.NotEqual(t, "0", fmt.Sprint(cfg.Data["min_refresh_interval"]), "DefaultMountConfig leaves the plugin's default")

	// The same binary under another name and mount.
	p := PluginInstall{Name: "flowcred-two", Command: "vault-plugin-flowcred-two", Mount: "two"}
	_, err = s.AddPlugin(t.Context(), s.pluginBin, &p)
	require.NoError(t, err)
	require.NotEmpty(t, p.SHA256)
	_, err = s.Client.Logical().Read("two/config")
	require.NoError(t, err)
	pids, err := s.PluginPIDs()
	require.NoError(t, err)
	require.Len(t, pids, 1, "PluginPIDs counts flowcred's own process only")

	s.Restart(t)
	waitFor(t, "token read after restart", func() error {
		_, err := s.Client.Logical().Read("flowcred/token/h1")
		return err
	})
}
