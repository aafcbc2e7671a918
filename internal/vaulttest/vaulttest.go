// Package vaulttest runs a real Vault server with the flowcred plugin
// registered and enabled, for integration tests, HA tests and benchmarks:
// the one Vault launcher. A Server is a dev server (in-memory storage) or a
// single node on file or integrated (raft) storage; internal/vaultcluster
// runs raft clusters from the same Process and ServerConfig.
//
// The Vault and plugin binaries come from the environment (scripts/test.sh
// sets it):
//
//	FLOWCRED_INTEGRATION=1          run integration tests at all
//	FLOWCRED_VAULT_BIN=/path/vault  a Vault server binary (scripts/get-vault.sh)
//	FLOWCRED_PLUGIN_BIN=/path/...   the plugin (scripts/build-plugin.sh)
//	FLOWCRED_PLUGIN_VERSION=v...    optional: the version the plugin reports;
//	                                probed from the plugin when unset
//
// Servers listen on 127.0.0.1 only. Each server keeps its log in a temp file
// that Start prints with tb.Log when the test failed.
package vaulttest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Environment variables read by this package.
const (
	EnvIntegration   = "FLOWCRED_INTEGRATION"
	EnvVaultBin      = "FLOWCRED_VAULT_BIN"
	EnvPluginBin     = "FLOWCRED_PLUGIN_BIN"
	EnvPluginVersion = "FLOWCRED_PLUGIN_VERSION"
)

// skipMessage is what Require says when integration tests are off.
const skipMessage = "integration tests need a real Vault: run scripts/test.sh, or set FLOWCRED_INTEGRATION=1 with FLOWCRED_VAULT_BIN and FLOWCRED_PLUGIN_BIN"

// Enabled reports whether FLOWCRED_INTEGRATION=1.
func Enabled() bool { return os.Getenv(EnvIntegration) == "1" }

// VaultBin is the Vault server binary named by FLOWCRED_VAULT_BIN.
func VaultBin() string { return os.Getenv(EnvVaultBin) }

// PluginBin is the flowcred plugin binary named by FLOWCRED_PLUGIN_BIN.
func PluginBin() string { return os.Getenv(EnvPluginBin) }

// Check returns nil when integration tests can run: FLOWCRED_INTEGRATION=1
// and both binaries exist and are executable. Use it from TestMain, where
// there is no testing.TB; tests call Require.
func Check() error {
	if !Enabled() {
		return fmt.Errorf("%s", skipMessage)
	}
	return checkBinaries(VaultBin(), PluginBin())
}

// checkBinaries returns nil when both binaries exist and are executable.
func checkBinaries(vaultBin, pluginBin string) error {
	for _, b := range []struct{ env, path string }{{EnvVaultBin, vaultBin}, {EnvPluginBin, pluginBin}} {
		if b.path == "" {
			return fmt.Errorf("%s=1 but %s is not set; %s", EnvIntegration, b.env, skipMessage)
		}
		fi, err := os.Stat(b.path)
		if err != nil {
			return fmt.Errorf("%s=%s: %w", b.env, b.path, err)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s=%s is not an executable file", b.env, b.path)
		}
	}
	return nil
}

// Require skips the test unless FLOWCRED_INTEGRATION=1, and fails it when
// integration tests are on but the binaries are missing.
func Require(tb testing.TB) {
	tb.Helper()
	if !Enabled() {
		tb.Skip(skipMessage)
	}
	if err := Check(); err != nil {
		tb.Fatal(err)
	}
}

// Storage kinds of Options.Storage.
const (
	// StorageInmem is a dev server (`vault server -dev`), in-memory storage.
	StorageInmem = "inmem"
	// StorageFile is a non-dev server with file storage.
	StorageFile = "file"
	// StorageIntegrated is a non-dev single node with integrated storage
	// (storage "raft"), the production storage.
	StorageIntegrated = "integrated"
)

// Options configure a server.
type Options struct {
	// Storage is "" (or "inmem") for a dev server with in-memory storage;
	// "file" for a non-dev server with file storage in a temp dir, or
	// "integrated" for one with integrated storage (storage "raft", one
	// node). Those two are initialised and unsealed and can be restarted
	// with the same data.
	Storage string
	// Mount is where the plugin is enabled; default "flowcred".
	Mount string
	// PluginName is the catalog name; default "flowcred".
	PluginName string
	// LogLevel of the server (trace, debug, info, warn, error); default "info".
	LogLevel string
	// AuditFile enables a file audit device writing to Server.AuditPath.
	AuditFile bool
	// StartTimeout bounds the wait for the server to answer; default 60s.
	StartTimeout time.Duration
	// VaultBin and PluginBin are the binaries; "" means FLOWCRED_VAULT_BIN
	// and FLOWCRED_PLUGIN_BIN. With both set, New does not ask for
	// FLOWCRED_INTEGRATION=1 (programs such as the benchmarks).
	VaultBin, PluginBin string
	// PluginEnv is registered as the plugin's environment (`vault plugin
	// register -env`).
	PluginEnv []string
	// TempDir is where the server's own temp dir is made; "" means the
	// system's.
	TempDir string
	// DefaultMountConfig leaves the mount's config as the plugin starts it,
	// as an operator's mount; test mounts otherwise get
	// min_refresh_interval 0 (see InstallPlugin).
	DefaultMountConfig bool
}

func (o Options) withDefaults() (Options, error) {
	switch o.Storage {
	case "", StorageInmem, "dev":
		o.Storage = StorageInmem
	case StorageFile, StorageIntegrated:
	default:
		return o, fmt.Errorf("vaulttest: unknown Options.Storage %q (want \"\", %q, or %q for integrated storage, storage \"raft\")", o.Storage, StorageFile, StorageIntegrated)
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
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	return o, nil
}

// Start runs a server for the test and stops it (removing its temp dirs)
// when the test ends. The server log is printed if the test failed.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	Require(tb)
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("vault server log (%s):\n%s", s.LogPath, s.LogTail(400))
		}
		s.Close()
	})
	return s
}
