package vaulttest

// Helpers shared with internal/vaultcluster, which runs the same vault
// binary and plugin as a raft cluster: how a client is made and how a
// plugin is registered and mounted (the process itself is process.go's).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// PluginFile is the plugin's file name in a plugin directory, i.e. the
// catalog's command.
const PluginFile = "vault-plugin-flowcred"

// CopyFile copies src to dst (mode 0755) and returns dst's sha256 in hex,
// for `vault plugin register -sha256`.
func CopyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PluginInstall says how InstallPlugin registers and mounts a plugin.
type PluginInstall struct {
	// Name is the catalog name, Command the file in the plugin directory
	// and SHA256 its checksum.
	Name, Command, SHA256 string
	// Mount is the path to enable the plugin at, Description the mount's.
	Mount, Description string
	// Version is registered with a "v" prefix; "" registers the version the
	// plugin reports (read by registering it without a version first).
	// flowcred's callers pass FLOWCRED_PLUGIN_VERSION.
	Version string
	// Env is the plugin's environment (`vault plugin register -env`).
	Env []string
	// Config, when not nil, is written to Mount/config once mounted.
	Config map[string]interface{}
}

// FlowcredTestConfig is what test mounts of flowcred write to their config:
// the suites force a refresh with a min_ttl beyond the issued life, so test
// mounts allow back-to-back min_ttl refreshes; the default bound
// (min_refresh_interval 10s) has its own test (TestCustody_MinTTLBounded).
func FlowcredTestConfig() map[string]interface{} {
	return map[string]interface{}{"min_refresh_interval": 0}
}

// InstallPlugin registers the plugin with its sha256, version and
// environment and enables it at p.Mount, as an operator does, then writes
// p.Config. It returns the version it registered, with any error after the
// version is known.
func InstallPlugin(ctx context.Context, client *api.Client, p PluginInstall) (string, error) {
	version := p.Version
	if version == "" {
		var err error
		if version, err = probeVersion(ctx, client, p); err != nil {
			return "", err
		}
	}
	if version != "" && !strings.HasPrefix(version, "v") {
		version = "v" + version
	}
	if err := client.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name:    p.Name,
		Type:    api.PluginTypeSecrets,
		Command: p.Command,
		SHA256:  p.SHA256,
		Version: version,
		Env:     p.Env,
	}); err != nil {
		return version, fmt.Errorf("vault plugin register -sha256=%s -version=%s secret %s: %w", p.SHA256, version, p.Name, err)
	}
	if err := client.Sys().MountWithContext(ctx, p.Mount, &api.MountInput{
		Type:        p.Name,
		Description: p.Description,
		Config:      api.MountConfigInput{PluginVersion: version},
	}); err != nil {
		return version, fmt.Errorf("vault secrets enable -path=%s -plugin-version=%s %s: %w", p.Mount, version, p.Name, err)
	}
	if p.Config != nil {
		if _, err := client.Logical().WriteWithContext(ctx, p.Mount+"/config", p.Config); err != nil {
			return version, fmt.Errorf("vault write %s/config %v: %w", p.Mount, p.Config, err)
		}
	}
	return version, nil
}

// probeVersion registers the plugin without a version, which makes Vault
// ask the plugin for the version it reports and store it, and reads it back.
func probeVersion(ctx context.Context, client *api.Client, p PluginInstall) (string, error) {
	if err := client.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name:    p.Name,
		Type:    api.PluginTypeSecrets,
		Command: p.Command,
		SHA256:  p.SHA256,
		Env:     p.Env,
	}); err != nil {
		return "", fmt.Errorf("registering the plugin to read its version: %w", err)
	}
	list, err := client.Sys().ListPluginsWithContext(ctx, &api.ListPluginsInput{Type: api.PluginTypeSecrets})
	if err != nil {
		return "", fmt.Errorf("listing the plugin catalog: %w", err)
	}
	for _, d := range list.Details {
		if d.Name == p.Name && !d.Builtin {
			return d.Version, nil
		}
	}
	return "", fmt.Errorf("plugin %q not in the catalog after registering it", p.Name)
}

// CleanEnv is the test's environment without VAULT_* variables, which
// would change how a server, the CLI or Vault Agent behaves, and without
// HOME (callers set their own).
func CleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// NewClient returns a client for addr with token that does not retry
// (Vault's client retries 5xx answers by default, which would hide or
// multiply upstream calls in tests) and has no namespace.
func NewClient(addr, token string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = addr
	cfg.MaxRetries = 0
	cfg.Timeout = 60 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.ClearNamespace()
	c.SetToken(token)
	return c, nil
}

// ReadToken reads mount/token/<handle> with c, with min_ttl (seconds) when
// minTTL > 0; an answer without data is an error.
func ReadToken(c *api.Client, mount, handle string, minTTL int) (*api.Secret, error) {
	var q map[string][]string
	if minTTL > 0 {
		q = map[string][]string{"min_ttl": {strconv.Itoa(minTTL)}}
	}
	sec, err := c.Logical().ReadWithData(mount+"/token/"+handle, q)
	if err == nil && (sec == nil || sec.Data == nil) {
		err = fmt.Errorf("token/%s: no data (404)", handle)
	}
	return sec, err
}

// LogTail returns the last n lines of the log file at path, or why there
// is none.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return LastLines(string(b), n)
}

// LastLines returns the last n lines of s, after a line saying how many
// came before them.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
