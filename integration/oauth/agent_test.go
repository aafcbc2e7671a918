package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// Agent test timing: tokens live agentTokenTTL, the mount's refresh margin
// is agentMargin, so a token read is leased for about TTL - margin; Agent
// re-reads at 85-95% of the lease, and the plugin refreshes once less than
// the margin is left. A new token is therefore rendered roughly
// agentTokenTTL - agentMargin after the first, well before the old expires.
const (
	agentTokenTTL = 30 * time.Second
	agentMargin   = 10 * time.Second
	// agentDeadline bounds the wait for the first render and for a change.
	agentDeadline = 60 * time.Second
)

// rendered is what the Agent template writes.
type rendered struct {
	AccessToken string `json:"access_token"`
	ExpiresAt   string `json:"expires_at"`
	Lease       int    `json:"lease"`
	// TTL is the data's ttl (token_leases=false), 0 when leased.
	TTL int `json:"ttl"`
	// written is the file's modification time (consul-template writes a
	// temp file and renames it, so this is when the content was written).
	written time.Time
	expires time.Time
}

// TestVaultAgentRendersNewToken: Vault Agent renders token/<handle> into a
// file and, with short-lived tokens, renders a new token before the old one
// expires. It waits about agentTokenTTL, so it runs in parallel with the
// serial tests, on its own mount and its own OAuth2 server (whose token
// lifetime it shortens).
func TestVaultAgentRendersNewToken(t *testing.T) {
	t.Parallel()
	agentRendersNewToken(t, "flowcred-agent", true)
}

// TestVaultAgentRendersUnleasedToken: the same with token_leases=false: no
// lease, and Agent re-reads after the data's ttl (consul-template treats
// data with ttl and rotation_period as a rotating secret), before the
// refresh margin is reached.
func TestVaultAgentRendersUnleasedToken(t *testing.T) {
	t.Parallel()
	agentRendersNewToken(t, "flowcred-agent-unleased", false)
}

func agentRendersNewToken(t *testing.T, mount string, leased bool) {
	v, _ := env(t)
	o := oauthtest.Start(t)
	if err := o.SetTTL(agentTokenTTL, 0); err != nil {
		t.Fatal(err)
	}

	// Any mount path works; this one has its own config (and background
	// refresh on, the default).
	if err := v.Client.Sys().Mount(mount, &api.MountInput{
		Type:   v.PluginName,
		Config: api.MountConfigInput{PluginVersion: v.PluginVersion},
	}); err != nil {
		t.Fatalf("enabling the plugin at %s: %v", mount, err)
	}
	t.Cleanup(func() {
		if err := v.Client.Sys().Unmount(mount); err != nil {
			t.Errorf("disabling %s: %v", mount, err)
		}
	})
	if _, err := v.Client.Logical().Write(mount+"/config", map[string]interface{}{
		"refresh_margin": int(agentMargin / time.Second),
		"token_leases":   leased,
	}); err != nil {
		t.Fatal(err)
	}
	const handle = "agent_rendered"
	rt, err := o.MintRefreshToken(oauthtest.ClientRTBasic, "")
	if err != nil {
		t.Fatal(err)
	}
	writeBinding(t, v.Client, mount, handle, map[string]interface{}{
		"kind":          "oauth2.refresh_token",
		"token_url":     o.TokenURL,
		"client_id":     oauthtest.ClientRTBasic,
		"client_secret": oauthtest.SecretRTBasic,
		"refresh_token": rt,
		"auth_style":    "header",
	})

	dir := t.TempDir()
	out := filepath.Join(dir, "rendered.json")
	exited := startAgent(t, v, dir, mount+"/token/"+handle, out)

	first := waitRender(t, exited, out, "", time.Now().Add(agentDeadline))
	t.Logf("first render: token %s, expires_at %s, lease %ds", fingerprint(first.AccessToken), first.ExpiresAt, first.Lease)
	if !first.expires.After(first.written) {
		t.Errorf("first render written at %s with a token that expired at %s", first.written.Format(time.RFC3339Nano), first.ExpiresAt)
	}
	life := first.Lease
	if !leased {
		if first.Lease != 0 {
			t.Errorf("first render has a lease of %ds with token_leases=false", first.Lease)
		}
		life = first.TTL
	}
	if life <= 0 || time.Duration(life)*time.Second > agentTokenTTL {
		t.Errorf("first render lease %ds, ttl %ds: want one in (0, %s]", first.Lease, first.TTL, agentTokenTTL)
	}

	second := waitRender(t, exited, out, first.AccessToken, first.expires.Add(agentDeadline))
	t.Logf("second render %s after the first: token %s, expires_at %s, lease %ds",
		second.written.Sub(first.written).Round(100*time.Millisecond), fingerprint(second.AccessToken), second.ExpiresAt, second.Lease)
	// expires_at is whole seconds, truncated: the true expiry is up to 1 s
	// later, so these checks are on the safe side.
	if !second.written.Before(first.expires) {
		t.Errorf("the new token was rendered at %s, not before the old one expired at %s",
			second.written.Format(time.RFC3339Nano), first.ExpiresAt)
	}
	if !leased && !second.written.Before(first.expires.Add(-agentMargin/2)) {
		t.Errorf("unleased: the new token was rendered at %s, not well inside the refresh margin before %s",
			second.written.Format(time.RFC3339Nano), first.ExpiresAt)
	}
	if !second.expires.After(second.written) {
		t.Errorf("second render written at %s with a token that expired at %s", second.written.Format(time.RFC3339Nano), second.ExpiresAt)
	}
	if !second.expires.After(first.expires) {
		t.Errorf("the new token expires at %s, not after the old one (%s)", second.ExpiresAt, first.ExpiresAt)
	}
	st, err := o.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if n := st.TokenSuccess[oauthtest.GrantRefreshToken]; n < 2 {
		t.Errorf("the server issued %d tokens, want at least 2", n)
	}
}

// startAgent runs `vault agent` with token_file auto-auth (the root token)
// and one template rendering secretPath into out. It is stopped when the
// test ends; its log is printed if the test failed. The returned channel is
// closed when the agent exits.
func startAgent(t *testing.T, v *vaulttest.Server, dir, secretPath, out string) (exited <-chan struct{}) {
	t.Helper()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(v.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl := fmt.Sprintf(`{{ with secret %q }}{"access_token":"{{ .Data.access_token }}","expires_at":"{{ .Data.expires_at }}","lease":{{ .LeaseDuration }},"ttl":{{ with .Data.ttl }}{{ . }}{{ else }}0{{ end }}}{{ end }}`, secretPath)
	cfg := fmt.Sprintf(`pid_file = %q

vault {
  address = %q
}

auto_auth {
  method "token_file" {
    config = {
      token_file_path = %q
    }
  }
}

template_config {
  exit_on_retry_failure = true
}

template {
  destination = %q
  perms       = "0600"
  contents    = <<EOT
%s
EOT
}
`, filepath.Join(dir, "agent.pid"), v.Addr, tokenFile, out, tmpl)
	cfgPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, vaulttest.VaultBin(), "agent", "-config="+cfgPath, "-log-level=debug")
	cmd.Dir = dir
	cmd.Env = append(vaulttest.CleanEnv(), "HOME="+dir) // no VAULT_* variables overriding the agent's configuration
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting vault agent: %v", err)
	}
	ch := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(ch)
	}()
	t.Cleanup(func() {
		cancel()
		<-ch
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("vault agent (exit: %v) log:\n%s", waitErr, lastLines(string(b), 400))
		}
	})
	return ch
}

// waitRender polls out until it holds a rendered token other than notToken,
// and returns it; it fails the test at deadline or when the agent exits.
func waitRender(t *testing.T, exited <-chan struct{}, out, notToken string, deadline time.Time) rendered {
	t.Helper()
	var lastErr error
	for time.Now().Before(deadline) {
		r, err := readRendered(out)
		switch {
		case err != nil:
			lastErr = err
		case r.AccessToken != notToken:
			return r
		}
		select {
		case <-exited:
			t.Fatal("vault agent exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
	if notToken == "" {
		t.Fatalf("vault agent rendered nothing usable into %s by %s (last: %v)", out, deadline.Format(time.RFC3339), lastErr)
	}
	t.Fatalf("vault agent did not render a new token by %s", deadline.Format(time.RFC3339))
	return rendered{}
}

func readRendered(path string) (rendered, error) {
	var r rendered
	fi, err := os.Stat(path)
	if err != nil {
		return r, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("rendered file is not the expected JSON: %w", err)
	}
	if r.AccessToken == "" {
		return r, fmt.Errorf("rendered file has no access_token")
	}
	if r.expires, err = time.Parse(time.RFC3339, r.ExpiresAt); err != nil {
		return r, fmt.Errorf("rendered expires_at: %w", err)
	}
	r.written = fi.ModTime()
	return r, nil
}
