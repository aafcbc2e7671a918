// Package bench runs flowcred's end-to-end benchmarks against a real Vault
// server (dev mode or integrated storage) with the plugin registered, and a
// real OAuth2 server. The program is cmd/flowcred-bench; scripts/bench.sh
// builds everything and runs it.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// Storage kinds of a benchmark server.
const (
	StorageDev  = "dev"  // vault server -dev: in-memory storage
	StorageRaft = "raft" // one node with integrated storage (storage "raft")
)

// pluginFile is the plugin's file name in the plugin directory.
const pluginFile = "vault-plugin-flowcred"

// baselineEnv makes the plugin serve bench/baseline (path_bench.go).
const baselineEnv = "FLOWCRED_BENCH_BASELINE=1"

// Vault is a running Vault server with flowcred mounted at flowcred/ and
// kv-v2 at secret/.
type Vault struct {
	Storage string
	Addr    string
	Token   string
	Client  *api.Client
	// Dir holds the config, data, plugin directory and log.
	Dir       string
	PluginDir string
	LogPath   string
	// PluginEnv is added to the plugin's registered environment.
	PluginEnv []string

	vaultBin string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// StartVault starts a server of the given storage kind with the plugin
// binary registered (with the bench baseline enabled) and mounted.
func StartVault(ctx context.Context, storage, vaultBin, pluginBin, dir string, pluginEnv ...string) (*Vault, error) {
	v := &Vault{
		PluginEnv: pluginEnv,
		Storage:   storage,
		Dir:       dir,
		PluginDir: filepath.Join(dir, "plugins"),
		LogPath:   filepath.Join(dir, "vault.log"),
		vaultBin:  vaultBin,
	}
	for _, d := range []string{v.PluginDir, filepath.Join(dir, "raft"), filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	sum, err := vaulttest.CopyFile(pluginBin, filepath.Join(v.PluginDir, pluginFile))
	if err != nil {
		return nil, fmt.Errorf("copying the plugin: %w", err)
	}
	port, err := freePortPair()
	if err != nil {
		return nil, err
	}
	v.Addr = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := v.start(port); err != nil {
		return nil, err
	}
	if err := v.setup(ctx, sum); err != nil {
		v.Close()
		return nil, fmt.Errorf("%s server: %w\n--- vault log:\n%s", storage, err, tail(v.LogPath, 30))
	}
	return v, nil
}

func (v *Vault) start(port int) error {
	var args []string
	switch v.Storage {
	case StorageDev:
		args = []string{"server", "-dev", "-dev-root-token-id=root",
			"-dev-listen-address=127.0.0.1:" + strconv.Itoa(port),
			"-dev-plugin-dir=" + v.PluginDir, "-dev-no-store-token"}
	case StorageRaft:
		cfg := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = "bench"
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "https://127.0.0.1:%d"
plugin_directory = %q
disable_mlock    = true
ui               = false
`, filepath.Join(v.Dir, "raft"), port, port+1, port, port+1, v.PluginDir)
		path := filepath.Join(v.Dir, "vault.hcl")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return err
		}
		args = []string{"server", "-config=" + path}
	default:
		return fmt.Errorf("unknown storage %q", v.Storage)
	}
	args = append(args, "-log-level=warn")
	logf, err := os.OpenFile(v.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(v.vaultBin, args...)
	cmd.Dir = v.Dir
	cmd.Env = append(cleanEnv(), "HOME="+filepath.Join(v.Dir, "home"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group (Close reaps plugin processes), and die with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", v.vaultBin, err)
	}
	v.cmd = cmd
	v.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(v.exited) }()
	return nil
}

func (v *Vault) setup(ctx context.Context, sum string) error {
	cfg := api.DefaultConfig()
	cfg.Address = v.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 2 * time.Minute
	c, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	c.ClearNamespace()
	v.Client = c
	if v.Storage == StorageDev {
		v.Token = "root"
		c.SetToken(v.Token)
		if err := v.waitHealth(ctx, 200); err != nil {
			return err
		}
	} else {
		if err := v.waitHealth(ctx, 501); err != nil {
			return err
		}
		init, err := c.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			return fmt.Errorf("operator init: %w", err)
		}
		v.Token = init.RootToken
		c.SetToken(v.Token)
		if _, err := c.Sys().UnsealWithContext(ctx, init.Keys[0]); err != nil {
			return fmt.Errorf("unseal: %w", err)
		}
		if err := v.waitHealth(ctx, 200); err != nil {
			return err
		}
		// The new node is active as soon as it has elected itself; mounts
		// can still fail for a moment while the leader sets up.
		if err := retry(ctx, 30*time.Second, func() error {
			return c.Sys().MountWithContext(ctx, "secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
		}); err != nil {
			return fmt.Errorf("enabling kv-v2: %w", err)
		}
	}
	return v.installPlugin(ctx, sum)
}

// installPlugin registers the plugin as an operator does, with the bench
// baseline enabled in its environment, and mounts it at flowcred/.
func (v *Vault) installPlugin(ctx context.Context, sum string) error {
	c := v.Client
	in := &api.RegisterPluginInput{
		Name: "flowcred", Type: api.PluginTypeSecrets, Command: pluginFile,
		SHA256: sum, Env: append([]string{baselineEnv}, v.PluginEnv...),
	}
	// Registering without a version makes Vault ask the plugin for the
	// version it reports; register that version explicitly then.
	if err := c.Sys().RegisterPluginWithContext(ctx, in); err != nil {
		return fmt.Errorf("registering the plugin: %w", err)
	}
	list, err := c.Sys().ListPluginsWithContext(ctx, &api.ListPluginsInput{Type: api.PluginTypeSecrets})
	if err != nil {
		return err
	}
	version := ""
	for _, p := range list.Details {
		if p.Name == "flowcred" && !p.Builtin {
			version = p.Version
		}
	}
	if version != "" {
		in.Version = version
		if err := c.Sys().RegisterPluginWithContext(ctx, in); err != nil {
			return fmt.Errorf("vault plugin register -version=%s -env %s: %w", version, baselineEnv, err)
		}
	}
	return c.Sys().MountWithContext(ctx, "flowcred", &api.MountInput{
		Type: "flowcred", Config: api.MountConfigInput{PluginVersion: version},
	})
}

func (v *Vault) waitHealth(ctx context.Context, want int) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := hc.Get(v.Addr + "/v1/sys/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = "sys/health " + strconv.Itoa(resp.StatusCode)
		} else {
			last = err.Error()
		}
		select {
		case <-v.exited:
			return fmt.Errorf("vault exited (%s)", last)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("vault at %s: want sys/health %d, got %s", v.Addr, want, last)
}

// PID is the server process.
func (v *Vault) PID() int { return v.cmd.Process.Pid }

// PluginPID is the plugin process: the server's child running from the
// plugin directory.
func (v *Vault) PluginPID() (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var found []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ppid(pid) != v.PID() {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		if filepath.Dir(strings.TrimSuffix(exe, " (deleted)")) == v.PluginDir {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("want one plugin process, found %v", found)
	}
	return found[0], nil
}

// Close stops the server and whatever plugin processes it left.
func (v *Vault) Close() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-v.exited:
	case <-time.After(15 * time.Second):
		_ = v.cmd.Process.Kill()
		<-v.exited
	}
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
}

// cleanEnv is our environment without VAULT_* (which would change the
// server) and without HOME.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// freePortPair finds an even P with P and P+1 free on loopback (Vault's
// cluster port is the API port plus one in dev mode). P is below Linux's
// ephemeral range, where outgoing connections take their ports.
func freePortPair() (int, error) {
	for i := 0; i < 500; i++ {
		p := 20000 + 2*rand.IntN(6000)
		if canListen(p) && canListen(p+1) {
			return p, nil
		}
	}
	return 0, errors.New("no free port pair on 127.0.0.1")
}

func canListen(port int) bool {
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func retry(ctx context.Context, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
