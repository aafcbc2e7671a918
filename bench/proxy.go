package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// The Vault Proxy example (examples/proxy), relative to the module root:
// its configuration and the policy of the token it logs in with.
const (
	ProxyExampleConfig = "examples/proxy/proxy.hcl"
	ProxyExamplePolicy = "examples/proxy/flowcred-reader.hcl"
)

// What ProxyConfig rewrites in the example: the Vault address, the token
// file and the listener.
const (
	proxyExampleVault    = `address = "http://127.0.0.1:8200"`
	proxyExampleTokenDir = `token_file_path = "/etc/vault-proxy/vault-token"`
	proxyExampleListen   = `address     = "127.0.0.1:8100"`
)

// ProxyConfig rewrites the example configuration for a proxy of vaultAddr
// listening on listen (host:port), with its token file in dir. It fails
// when the example no longer has exactly one of each thing it rewrites, so
// that the example and its test cannot drift apart.
func ProxyConfig(example, vaultAddr, listen, dir string) (string, error) {
	for _, s := range []string{proxyExampleVault, proxyExampleTokenDir, proxyExampleListen} {
		if n := strings.Count(example, s); n != 1 {
			return "", fmt.Errorf("%s has %q %d times, want once", ProxyExampleConfig, s, n)
		}
	}
	return strings.NewReplacer(
		proxyExampleVault, fmt.Sprintf("address = %q", vaultAddr),
		proxyExampleTokenDir, fmt.Sprintf("token_file_path = %q", filepath.Join(dir, "vault-token")),
		proxyExampleListen, fmt.Sprintf("address     = %q", listen),
	).Replace(example), nil
}

// ReadExample reads a file of the module's examples (path relative to the
// module root).
func ReadExample(path string) (string, error) {
	root, err := oauthtest.ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("the proxy example needs the module's source: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(root, path))
	return string(b), err
}

// ProxyToken writes the example's policy as flowcred-reader and returns a
// periodic token with it and the extra policies, as the example's comment
// says an operator makes one.
func ProxyToken(ctx context.Context, c *api.Client, extraPolicies ...string) (string, error) {
	policy, err := ReadExample(ProxyExamplePolicy)
	if err != nil {
		return "", err
	}
	if err := c.Sys().PutPolicyWithContext(ctx, "flowcred-reader", policy); err != nil {
		return "", err
	}
	s, err := c.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: append([]string{"flowcred-reader"}, extraPolicies...), Period: "24h",
	})
	if err != nil {
		return "", err
	}
	return s.Auth.ClientToken, nil
}

// Proxy is a running `vault proxy` with the example configuration.
type Proxy struct {
	// Addr is the proxy's base URL (http://127.0.0.1:PORT).
	Addr string
	// LogPath is the proxy's output.
	LogPath string

	cmd     *exec.Cmd
	exited  chan struct{}
	release func()
}

// StartProxy runs `vault proxy` (vaultBin) with examples/proxy/proxy.hcl
// rewritten for vaultAddr, a free loopback port and token, in dir, and
// waits until it answers with its auto-auth token.
func StartProxy(ctx context.Context, vaultBin, vaultAddr, token, dir string) (*Proxy, error) {
	example, err := ReadExample(ProxyExampleConfig)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "vault-token"), []byte(token), 0o600); err != nil {
		return nil, err
	}
	// A reserved pair keeps clear of the Vault servers' ports; the proxy
	// uses the first.
	port, release, err := vaulttest.ReservePortPair()
	if err != nil {
		return nil, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	conf, err := ProxyConfig(example, vaultAddr, listen, dir)
	if err != nil {
		release()
		return nil, err
	}
	confPath := filepath.Join(dir, "proxy.hcl")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		release()
		return nil, err
	}
	p := &Proxy{Addr: "http://" + listen, LogPath: filepath.Join(dir, "proxy.log"), release: release, exited: make(chan struct{})}
	logf, err := os.Create(p.LogPath)
	if err != nil {
		release()
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	p.cmd = exec.Command(vaultBin, "proxy", "-config="+confPath, "-log-level=info")
	p.cmd.Env = append(vaulttest.CleanEnv(), "HOME="+dir)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		release()
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	if err := p.waitReady(ctx); err != nil {
		tail := p.LogTail(30)
		p.Close()
		return nil, fmt.Errorf("vault proxy: %w\n--- proxy log:\n%s", err, tail)
	}
	return p, nil
}

// waitReady polls auth/token/lookup-self through the proxy with no token
// of its own: a 200 means the listener is up and auto-auth has a token.
func (p *Proxy) waitReady(ctx context.Context) error {
	r := &Reader{Client: &http.Client{Timeout: 2 * time.Second}, Addr: p.Addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := r.Get(ctx, "auth/token/lookup-self")
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return errors.New("exited before it answered")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 30 s: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// LogTail is the last n lines of the proxy's log.
func (p *Proxy) LogTail(n int) string { return vaulttest.LogTail(p.LogPath, n) }

// Close stops the proxy (SIGTERM, SIGKILL after 10 s) and frees its port.
func (p *Proxy) Close() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if p.release != nil {
		p.release()
		p.release = nil
	}
}
