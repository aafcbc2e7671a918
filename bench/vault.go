// Package bench runs flowcred's end-to-end benchmarks against a real Vault
// server (dev mode or integrated storage) with the plugin registered, and a
// real OAuth2 server. The program is cmd/flowcred-bench; scripts/bench.sh
// builds everything and runs it.
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// Storage kinds of a benchmark server.
const (
	StorageDev  = "dev"  // vault server -dev: in-memory storage
	StorageRaft = "raft" // one node with integrated storage (storage "raft")
)

// The trivial plugin (bench/trivial): its file in the plugin directory, its
// catalog name and its mount.
const (
	trivialFile  = "vault-plugin-trivial"
	trivialName  = "trivial"
	trivialMount = "trivial"
)

// unleasedMount is a second mount of flowcred, with token_leases=false.
const unleasedMount = "flowcred-unleased"

// Vault is a running Vault server (internal/vaulttest, the launcher the
// tests use) with flowcred mounted at flowcred/ (token_leases=true, the
// default) and at flowcred-unleased/ (token_leases=false), the trivial
// plugin at trivial/ and kv-v2 at secret/.
type Vault struct {
	*vaulttest.Server
	// Storage is StorageDev or StorageRaft.
	Storage string
}

// VaultOptions say what StartVault runs.
type VaultOptions struct {
	Storage string
	// VaultBin, PluginBin (flowcred) and TrivialBin are the binaries.
	VaultBin, PluginBin, TrivialBin string
	// Dir is where the server's directory is made.
	Dir string
	// PluginEnv is added to flowcred's registered environment.
	PluginEnv []string
}

// StartVault starts a server of the given storage kind with flowcred
// registered as an operator does (sha256, version, -env) and mounted with
// its default config, and the trivial plugin next to it.
func StartVault(ctx context.Context, o VaultOptions) (*Vault, error) {
	storage := vaulttest.StorageInmem
	switch o.Storage {
	case StorageDev:
	case StorageRaft:
		storage = vaulttest.StorageIntegrated
	default:
		return nil, fmt.Errorf("unknown storage %q", o.Storage)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	s, err := vaulttest.New(vaulttest.Options{
		Storage: storage, LogLevel: "warn", StartTimeout: 90 * time.Second,
		VaultBin: o.VaultBin, PluginBin: o.PluginBin, PluginEnv: o.PluginEnv,
		TempDir: o.Dir, DefaultMountConfig: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%s server: %w", o.Storage, err)
	}
	v := &Vault{Server: s, Storage: o.Storage}
	if err := v.setup(ctx, o.TrivialBin); err != nil {
		tail := v.LogTail(30)
		v.Close()
		return nil, fmt.Errorf("%s server: %w\n--- vault log:\n%s", o.Storage, err, tail)
	}
	return v, nil
}

func (v *Vault) setup(ctx context.Context, trivialBin string) error {
	// A dev server has kv-v2 at secret/; give the raft node the same.
	if v.Storage == StorageRaft {
		if err := v.Client.Sys().MountWithContext(ctx, "secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			return fmt.Errorf("enabling kv-v2: %w", err)
		}
	}
	// The same plugin process serves both flowcred mounts (it is
	// multiplexed), so a read of either costs the same hop.
	if err := v.Client.Sys().MountWithContext(ctx, unleasedMount, &api.MountInput{
		Type: v.PluginName, Description: "flowcred, token_leases=false",
		Config: api.MountConfigInput{PluginVersion: v.PluginVersion},
	}); err != nil {
		return fmt.Errorf("enabling %s: %w", unleasedMount, err)
	}
	if _, err := v.Client.Logical().WriteWithContext(ctx, unleasedMount+"/config", map[string]interface{}{"token_leases": false}); err != nil {
		return fmt.Errorf("%s/config token_leases=false: %w", unleasedMount, err)
	}
	p := &vaulttest.PluginInstall{Name: trivialName, Command: trivialFile, Mount: trivialMount, Description: "the benchmarks' trivial plugin"}
	if _, err := v.AddPlugin(ctx, trivialBin, p); err != nil {
		return fmt.Errorf("installing the trivial plugin: %w", err)
	}
	return nil
}

// BuildTrivial builds the trivial plugin (bench/trivial) into dir with the
// go command, from the module in the working directory (scripts/bench.sh
// runs from its root), and returns the binary's path.
func BuildTrivial(ctx context.Context, dir string) (string, error) {
	root, err := oauthtest.ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("building the trivial plugin needs the module's source (or -trivial): %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	out := filepath.Join(dir, trivialFile)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./bench/trivial")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./bench/trivial: %w\n%s", err, b)
	}
	return out, nil
}
