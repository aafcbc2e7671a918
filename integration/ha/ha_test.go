package ha

import (
	"testing"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaultcluster"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// TestHA runs two groups in parallel: the background-refresh test, which
// waits through two of Vault's one-minute periodic ticks on a cluster of its
// own, and the other tests one after another on a shared cluster, each
// starting with every node running (Heal) and its own OAuth2 server.
//
// scripts/ha-failover.sh runs TestHA/Cluster/Failover... in a loop.
func TestHA(t *testing.T) {
	vaulttest.Require(t)
	t.Run("BackgroundRefreshOnlyOnActive", func(t *testing.T) {
		t.Parallel()
		testBackgroundRefreshOnlyOnActive(t, newEnv(t))
	})
	t.Run("Cluster", func(t *testing.T) {
		t.Parallel()
		c := vaultcluster.Start(t, vaultcluster.Options{})
		t.Logf("shared cluster up in %s", c.StartDuration.Round(time.Millisecond))
		for _, tc := range []struct {
			name string
			fn   func(*testing.T, *env)
		}{
			{"StandbyReadsReachActive", testStandbyReadsReachActive},
			{"NewActiveServesNewStorageState", testNewActiveServesNewStorageState},
			{"FailoverKeepsCachedTokenAndRotation", testFailoverKeepsCachedTokenAndRotation},
			{"FailoverRefreshInFlight", testFailoverRefreshInFlight},
			{"FailoverAfterProviderRotatedLosesGrant", testFailoverAfterProviderRotatedLosesGrant},
			{"StepDownDrainsRefresh", testStepDownDrainsRefresh},
			{"PluginUpgrade", testPluginUpgrade}, // last: the mount stays on the new version
		} {
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, onCluster(t, c)) })
		}
	})
}
