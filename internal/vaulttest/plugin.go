package vaulttest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// installPlugin copies the plugin into the plugin directory, registers it
// with its sha256, version and environment, and enables it at Mount, as an
// operator does.
func (s *Server) installPlugin() error {
	p := PluginInstall{
		Name:        s.PluginName,
		Command:     PluginFile,
		Mount:       s.Mount,
		Description: "flowcred (vaulttest)",
		Version:     os.Getenv(EnvPluginVersion),
		Env:         s.opts.PluginEnv,
	}
	if !s.opts.DefaultMountConfig {
		p.Config = FlowcredTestConfig()
	}
	var err error
	s.PluginVersion, err = s.AddPlugin(context.Background(), s.pluginBin, &p)
	s.PluginSHA256 = p.SHA256
	return err
}

// AddPlugin copies the executable bin into the plugin directory as
// p.Command, registers it as secrets plugin p.Name with its sha256 and
// enables it at p.Mount (InstallPlugin), and returns the version it
// registered; p.SHA256 is set to the copy's. The benchmarks mount their trivial plugin next to flowcred
// this way.
func (s *Server) AddPlugin(ctx context.Context, bin string, p *PluginInstall) (string, error) {
	if p.Command != filepath.Base(p.Command) {
		return "", fmt.Errorf("vaulttest: plugin command %q has a directory part", p.Command)
	}
	sum, err := CopyFile(bin, filepath.Join(s.PluginDir, p.Command))
	if err != nil {
		return "", fmt.Errorf("copying the plugin %s: %w", p.Name, err)
	}
	p.SHA256 = sum
	return InstallPlugin(ctx, s.Client, *p)
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
	cmd := exec.CommandContext(ctx, s.vaultBin, args...)
	cmd.Env = append(append(CleanEnv(), "HOME="+s.home), s.Env()...)
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

// PluginPIDs lists the running flowcred plugin processes of this server.
func (s *Server) PluginPIDs() ([]int, error) {
	return PluginPIDs(s.PID(), s.PluginDir, PluginFile)
}
