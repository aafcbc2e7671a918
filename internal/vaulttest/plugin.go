package vaulttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// installPlugin copies the plugin into the plugin directory, registers it
// with its sha256 and version, and enables it at Mount, as an operator does.
func (s *Server) installPlugin() error {
	dst := filepath.Join(s.PluginDir, pluginFile)
	sum, err := copyFile(PluginBin(), dst)
	if err != nil {
		return fmt.Errorf("copying the plugin: %w", err)
	}
	s.PluginSHA256 = sum
	version := os.Getenv(EnvPluginVersion)
	if version == "" {
		if version, err = s.probeVersion(); err != nil {
			return err
		}
	}
	if version != "" && !strings.HasPrefix(version, "v") {
		version = "v" + version
	}
	s.PluginVersion = version
	if err := s.Client.Sys().RegisterPlugin(&api.RegisterPluginInput{
		Name:    s.PluginName,
		Type:    api.PluginTypeSecrets,
		Command: pluginFile,
		SHA256:  s.PluginSHA256,
		Version: version,
	}); err != nil {
		return fmt.Errorf("vault plugin register -sha256=%s -version=%s secret %s: %w", s.PluginSHA256, version, s.PluginName, err)
	}
	if err := s.Client.Sys().Mount(s.Mount, &api.MountInput{
		Type:        s.PluginName,
		Description: "flowcred (vaulttest)",
		Config:      api.MountConfigInput{PluginVersion: version},
	}); err != nil {
		return fmt.Errorf("vault secrets enable -path=%s -plugin-version=%s %s: %w", s.Mount, version, s.PluginName, err)
	}
	return nil
}

// probeVersion registers the plugin without a version, which makes Vault
// ask the plugin for the version it reports and store it, and reads it back.
func (s *Server) probeVersion() (string, error) {
	if err := s.Client.Sys().RegisterPlugin(&api.RegisterPluginInput{
		Name:    s.PluginName,
		Type:    api.PluginTypeSecrets,
		Command: pluginFile,
		SHA256:  s.PluginSHA256,
	}); err != nil {
		return "", fmt.Errorf("registering the plugin to read its version: %w", err)
	}
	list, err := s.Client.Sys().ListPlugins(&api.ListPluginsInput{Type: api.PluginTypeSecrets})
	if err != nil {
		return "", fmt.Errorf("listing the plugin catalog: %w", err)
	}
	for _, p := range list.Details {
		if p.Name == s.PluginName && !p.Builtin {
			return p.Version, nil
		}
	}
	return "", fmt.Errorf("plugin %q not in the catalog after registering it", s.PluginName)
}

func copyFile(src, dst string) (string, error) {
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

// Env is the environment for running the vault CLI against this server.
func (s *Server) Env() []string {
	return []string{"VAULT_ADDR=" + s.Addr, "VAULT_TOKEN=" + s.Token}
}

// CLI runs the vault binary with args against this server and returns its
// stdout; on failure the error includes stderr.
func (s *Server) CLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, VaultBin(), args...)
	cmd.Env = append(append(cleanEnv(), "HOME="+s.home), s.Env()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("vault %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ReloadPlugin reloads every mount of the plugin (sys/plugins/reload/backend).
func (s *Server) ReloadPlugin() error {
	_, err := s.Client.Sys().ReloadPlugin(&api.ReloadPluginInput{Plugin: s.PluginName})
	return err
}

// PluginPID returns the process ID of the running plugin: a child of this
// server whose executable is in PluginDir. The plugin starts when the mount
// is first used; PluginPID waits up to 10 s for exactly one such process.
func (s *Server) PluginPID() (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := s.PluginPIDs()
		if err != nil {
			return 0, err
		}
		if len(pids) == 1 {
			return pids[0], nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("want one plugin process under %s, found %v", s.PluginDir, pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PluginPIDs lists the running plugin processes of this server.
func (s *Server) PluginPIDs() ([]int, error) {
	return pluginPIDs(s.PID(), s.PluginDir)
}
