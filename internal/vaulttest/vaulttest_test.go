package vaulttest

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLastLines(t *testing.T) {
	require.Equal(t, "a\nb", LastLines("a\nb\n", 5))
	require.Equal(t, "... (2 earlier lines)\nc\nd", LastLines("a\nb\nc\nd\n", 2))
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, Options{Storage: "inmem", Mount: "flowcred", PluginName: "flowcred", LogLevel: "info", StartTimeout: time.Minute}, o)
	_, err = Options{Storage: "raft"}.withDefaults()
	require.Error(t, err)
}

func TestReservePortPair(t *testing.T) {
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Skip("needs Linux")
	}
	seen := map[int]bool{}
	var releases []func()
	for i := 0; i < 5; i++ {
		p, release, err := ReservePortPair()
		require.NoError(t, err)
		require.Zero(t, p%2, "API ports are even so that pairs never overlap")
		require.False(t, seen[p], "port pair %d handed out twice", p)
		seen[p] = true
		releases = append(releases, release)
	}
	for _, r := range releases {
		r()
	}
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The harness itself, on file storage: the plugin is registered and
// enabled, survives a kill -9 of its process and a server restart, and can
// be reloaded; the audit device writes its log.
func TestFileStorageServer(t *testing.T) {
	s := Start(t, Options{Storage: "file", AuditFile: true, Mount: "creds"})
	require.NotEmpty(t, s.UnsealKey)
	require.NotEqual(t, "root", s.Token)
	require.True(t, strings.HasPrefix(s.PluginVersion, "v"), s.PluginVersion)

	_, err := s.Client.Logical().Write("creds/bindings/h1", map[string]interface{}{"kind": "api_token", "token": "vaulttest-token-1"})
	require.NoError(t, err)
	readToken := func() error {
		sec, err := s.Client.Logical().Read("creds/token/h1")
		if err != nil {
			return err
		}
		if sec == nil || sec.Data["access_token"] != "vaulttest-token-1" {
			return os.ErrNotExist
		}
		return nil
	}
	require.NoError(t, readToken())

	// kill -9 the plugin: Vault starts it again on a later request.
	pid, err := s.PluginPID()
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	waitFor(t, "token read after killing the plugin", readToken)
	pid2, err := s.PluginPID()
	require.NoError(t, err)
	require.NotEqual(t, pid, pid2)

	// Restart: same data, unsealed again, plugin mounted again.
	s.Restart(t)
	waitFor(t, "token read after restart", readToken)

	// Reload: a new plugin process serves the mount.
	pid3, err := s.PluginPID()
	require.NoError(t, err)
	require.NoError(t, s.ReloadPlugin())
	waitFor(t, "token read after reload", readToken)
	waitFor(t, "a new plugin process after reload", func() error {
		p, err := s.PluginPID()
		if err == nil && p == pid3 {
			return os.ErrExist
		}
		return err
	})

	out, err := s.CLI("read", "-field=kind", "creds/bindings/h1")
	require.NoError(t, err)
	require.Equal(t, "api_token", strings.TrimSpace(out))

	audit, err := os.ReadFile(s.AuditPath)
	require.NoError(t, err)
	require.Contains(t, string(audit), "creds/token/h1")
	require.NotContains(t, string(audit), "vaulttest-token-1")
}
