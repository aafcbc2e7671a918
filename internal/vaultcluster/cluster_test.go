package vaultcluster_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaultcluster"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// TestCluster_Lifecycle starts a cluster, checks its shape, fails the active
// node over and brings it back. It logs how long each step took (no timed
// assertions: machines are noisy).
func TestCluster_Lifecycle(t *testing.T) {
	vaulttest.Require(t)
	c, err := vaultcluster.New(vaultcluster.Options{})
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if t.Failed() {
			c.LogTails(t, 100)
		}
		if !closed {
			c.Close()
		}
	})
	t.Logf("cluster started in %s (plugin %s %s)", c.StartDuration.Round(time.Millisecond), c.PluginName, c.PluginVersion)

	require.Len(t, c.Nodes, 3)
	active := c.Active()
	require.NotNil(t, active, "an active node")
	require.Equal(t, c.Nodes[0], active, "node1 was initialised and is active")
	require.Len(t, c.Standbys(), 2)

	// The plugin is mounted once, and every node sees the mount.
	for _, n := range c.Nodes {
		mounts, err := n.Client.Sys().ListMounts()
		require.NoError(t, err, n.Name)
		m, ok := mounts[c.Mount+"/"]
		require.True(t, ok, "%s lists %s/", n.Name, c.Mount)
		require.Equal(t, c.PluginName, m.Type)
		require.Equal(t, c.PluginVersion, m.PluginVersion, n.Name)
	}

	// Failover.
	start := time.Now()
	c.Kill(active)
	next, err := c.WaitActive()
	require.NoError(t, err)
	t.Logf("failover: %s active %s after killing %s", next.Name, time.Since(start).Round(time.Millisecond), active.Name)
	require.NotEqual(t, active, next)
	require.Len(t, c.Standbys(), 1)

	// The mount answers on the new active node.
	_, err = next.Client.Logical().List(c.Mount + "/bindings")
	require.NoError(t, err)

	start = time.Now()
	require.NoError(t, c.Restart(active))
	t.Logf("restart: %s back as a healthy voter in %s", active.Name, time.Since(start).Round(time.Millisecond))
	require.Len(t, c.Standbys(), 2)
	require.Equal(t, next, c.Active(), "a restarted node does not take over")

	start = time.Now()
	c.Close()
	closed = true
	t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
}
