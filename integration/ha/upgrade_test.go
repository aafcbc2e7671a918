package ha

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaultcluster"
)

// upgradeVersion is what the second build of the plugin reports.
const upgradeVersion = "99.0.0-ha.upgrade"

// The upgrade procedure of docs/operations.md on a cluster: put the new
// binary (under a new file name) in the plugin directory, register it as a
// new version, tune the mount to it and reload the plugin through a standby.
// The active node then runs the new version, serves the cached token with no
// upstream request, and so does the node that takes over after a failover:
// the mount's version lives in the replicated mount table.
//
// It runs last on the shared cluster: the mount stays on the new version.
func testPluginUpgrade(t *testing.T, e *env) {
	bin := buildPlugin(t, "v"+upgradeVersion)
	file := "vault-plugin-flowcred-" + upgradeVersion
	sum, err := e.c.AddPluginBinary(bin, file)
	require.NoError(t, err)

	e.bindRotating(e.standby(), "upgrade", e.idp.TokenURL)
	before := e.mustToken(e.standby(), "upgrade", 0)
	require.Equal(t, 1, e.refreshes())

	via := e.standby()
	require.NoError(t, via.Client.Sys().RegisterPlugin(&api.RegisterPluginInput{
		Name: e.c.PluginName, Type: api.PluginTypeSecrets, Command: file, SHA256: sum, Version: "v" + upgradeVersion,
	}), "vault plugin register -version")
	require.NoError(t, via.Client.Sys().TuneMount(e.c.Mount, api.MountConfigInput{PluginVersion: "v" + upgradeVersion}),
		"vault secrets tune -plugin-version")
	_, err = via.Client.Sys().ReloadPlugin(&api.ReloadPluginInput{Plugin: e.c.PluginName})
	require.NoError(t, err, "vault plugin reload -plugin")

	requireRunning(t, e, e.active(), "v"+upgradeVersion)
	sameToken(t, before, e.mustToken(e.standby(), "upgrade", 0), "read after the upgrade")

	_, next := e.failover()
	requireRunning(t, e, next, "v"+upgradeVersion)
	sameToken(t, before, e.mustToken(next, "upgrade", 0), "read after the upgrade and a failover")
	require.Equal(t, 1, e.refreshes(), "neither the upgrade nor the failover forced a refresh")
	e.mustToken(next, "upgrade", longMinTTL)
	e.requireNoReuse()
}

// requireRunning checks the version the mount runs on node n (its active
// node answers; the mount table says what was configured).
func requireRunning(t *testing.T, e *env, n *vaultcluster.Node, version string) {
	t.Helper()
	m, err := n.Client.Sys().GetMount(e.c.Mount)
	require.NoError(t, err)
	require.Equal(t, version, m.PluginVersion, "configured version")
	require.Equal(t, version, m.RunningVersion, "running version on %s", n)
}

// buildPlugin builds the plugin reporting version (with a leading v) into a
// temp dir, as scripts/build-plugin.sh does.
func buildPlugin(t *testing.T, version string) string {
	t.Helper()
	root, err := oauthtest.ModuleRoot()
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "vault-plugin-flowcred")
	cmd := exec.Command("go", "build", "-trimpath",
		"-ldflags", "-X github.com/flowcred/vault-plugin-flowcred.Version="+version[1:],
		"-o", out, "./cmd/vault-plugin-flowcred")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", b)
	return out
}
