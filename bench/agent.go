package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// startAgent runs `vault agent` with token_file auto-auth and a template
// reading the handle; it stops when ctx ends.
func (e *Env) startAgent(ctx context.Context, handle string) (<-chan struct{}, error) {
	dir, err := e.scratch("agent")
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(e.V.Token), 0o600); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`vault {
  address = %q
}
auto_auth {
  method "token_file" {
    config = {
      token_file_path = %q
    }
  }
}
template {
  contents    = "{{ with secret \"flowcred/token/%s\" }}{{ .Data.handle }}{{ end }}"
  destination = %q
}
`, e.V.Addr, tokenFile, handle, filepath.Join(dir, "rendered"))
	path := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.AgentBin, "agent", "-config="+path, "-log-level=info")
	cmd.Env = append(vaulttest.CleanEnv(), "HOME="+dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer logf.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
			e.Table.Logf("vault agent exited early; log %s", logf.Name())
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
	}()
	return done, nil
}
