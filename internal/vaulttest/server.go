package vaulttest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// EnvKeep, when "1", keeps a server's temp dir (log, audit log, data) after
// Close and prints where it is.
const EnvKeep = "FLOWCRED_VAULTTEST_KEEP"

// Server is a running Vault server with the plugin enabled.
type Server struct {
	// Addr is the API address, http://127.0.0.1:PORT.
	Addr string
	// Port is the API port; the cluster port is Port+1.
	Port int
	// Token is the root token.
	Token string
	// Client talks to Addr with the root token. It does not retry (Vault's
	// client retries 5xx answers by default, which would hide or multiply
	// upstream calls in tests).
	Client *api.Client
	// Mount is where the plugin is enabled, without slashes (flowcred).
	Mount string
	// PluginName is the catalog name, PluginVersion the registered version
	// (as the plugin reports it), PluginSHA256 the binary's checksum.
	PluginName, PluginVersion, PluginSHA256 string
	// LogPath is the server's log (stdout and stderr, all runs).
	LogPath string
	// AuditPath is the file audit device's log, when Options.AuditFile.
	AuditPath string
	// PluginDir is the plugin directory; the plugin is PluginDir/vault-plugin-flowcred.
	PluginDir string
	// UnsealKey is the single unseal key (file storage only).
	UnsealKey string

	opts    Options
	dir     string
	home    string
	release func()

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	closed bool
}

// New starts a server without a testing.TB, for TestMain. The caller must
// Close it. Most tests use Start.
func New(opts Options) (*Server, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "flowcred-vault-")
	if err != nil {
		return nil, err
	}
	// Vault refuses plugin commands whose resolved path leaves the plugin
	// directory, so use the resolved temp path throughout.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	s := &Server{
		opts:       opts,
		dir:        dir,
		home:       filepath.Join(dir, "home"),
		Mount:      opts.Mount,
		PluginName: opts.PluginName,
		LogPath:    filepath.Join(dir, "vault.log"),
		PluginDir:  filepath.Join(dir, "plugins"),
	}
	if opts.AuditFile {
		s.AuditPath = filepath.Join(dir, "audit.log")
	}
	if err := s.boot(); err != nil {
		tail := s.LogTail(60)
		s.Close()
		return nil, fmt.Errorf("%w\n--- last lines of the vault log:\n%s", err, tail)
	}
	return s, nil
}

func (s *Server) boot() error {
	for _, d := range []string{s.home, s.PluginDir, filepath.Join(s.dir, "data")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	// A port pair can be taken between our check and Vault's bind by a
	// process that does not use our reservations; try a few pairs.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		port, release, rerr := ReservePortPair()
		if rerr != nil {
			return rerr
		}
		s.Port, s.release = port, release
		s.Addr = "http://127.0.0.1:" + strconv.Itoa(port)
		if err = s.startFirst(); err == nil {
			return nil
		}
		if !strings.Contains(s.LogTail(40), "address already in use") {
			return err
		}
		s.stopProcess(false)
		release()
		s.release = nil
	}
	return err
}

// startFirst starts the process the first time and sets up everything.
func (s *Server) startFirst() error {
	if s.opts.Storage == "file" {
		if err := s.writeConfig(); err != nil {
			return err
		}
	}
	if err := s.startProcess(); err != nil {
		return err
	}
	if err := s.newClient(); err != nil {
		return err
	}
	if s.opts.Storage == "file" {
		if err := s.waitHealth(func(code int) bool { return code == 501 }); err != nil {
			return fmt.Errorf("waiting for the new server to answer: %w", err)
		}
		init, err := s.Client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			return fmt.Errorf("operator init: %w", err)
		}
		s.UnsealKey, s.Token = init.Keys[0], init.RootToken
		s.Client.SetToken(s.Token)
		if err := s.unsealAndWait(); err != nil {
			return err
		}
	} else {
		s.Token = "root"
		s.Client.SetToken(s.Token)
		if err := s.waitHealth(func(code int) bool { return code == 200 }); err != nil {
			return fmt.Errorf("waiting for the dev server: %w", err)
		}
	}
	if s.AuditPath != "" {
		if err := s.Client.Sys().EnableAuditWithOptions("file", &api.EnableAuditOptions{
			Type:    "file",
			Options: map[string]string{"file_path": s.AuditPath},
		}); err != nil {
			return fmt.Errorf("enabling the file audit device: %w", err)
		}
	}
	return s.installPlugin()
}

func (s *Server) writeConfig() error {
	cfg := fmt.Sprintf(`storage "file" {
  path = %q
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
`, filepath.Join(s.dir, "data"), s.Port, s.Port+1, s.Port, s.Port+1, s.PluginDir)
	return os.WriteFile(filepath.Join(s.dir, "vault.hcl"), []byte(cfg), 0o600)
}

// startProcess runs the vault server process, its output appended to LogPath.
func (s *Server) startProcess() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("vaulttest: server is already running")
	}
	var args []string
	if s.opts.Storage == "file" {
		args = []string{"server", "-config=" + filepath.Join(s.dir, "vault.hcl")}
	} else {
		args = []string{"server", "-dev",
			"-dev-root-token-id=root",
			"-dev-listen-address=127.0.0.1:" + strconv.Itoa(s.Port),
			"-dev-plugin-dir=" + s.PluginDir,
			"-dev-no-store-token",
		}
	}
	args = append(args, "-log-level="+s.opts.LogLevel)
	banner := fmt.Sprintf("vaulttest: %s %s", time.Now().UTC().Format(time.RFC3339), strings.Join(args, " "))
	cmd, exited, err := StartLogged(s.LogPath, s.dir, s.home, banner, args)
	if err != nil {
		return err
	}
	s.cmd, s.exited = cmd, exited
	return nil
}

func (s *Server) newClient() error {
	c, err := NewClient(s.Addr, s.Token)
	if err != nil {
		return err
	}
	s.Client = c
	return nil
}

// ClientWithToken returns a new client for Addr using token.
func (s *Server) ClientWithToken(token string) (*api.Client, error) {
	c, err := s.Client.Clone()
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	return c, nil
}

// waitHealth polls sys/health until ok(status code) holds, the process
// exits, or the start timeout passes.
func (s *Server) waitHealth(ok func(code int) bool) error {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(s.opts.StartTimeout)
	last := "no answer yet"
	for {
		resp, err := hc.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if ok(resp.StatusCode) {
				return nil
			}
			last = "sys/health answered " + strconv.Itoa(resp.StatusCode)
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			return fmt.Errorf("vault server exited before it was ready (%s)", last)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault server at %s not ready after %s (%s)", s.Addr, s.opts.StartTimeout, last)
		}
	}
}

func (s *Server) unsealAndWait() error {
	st, err := s.Client.Sys().Unseal(s.UnsealKey)
	if err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	if st.Sealed {
		return errors.New("unseal: still sealed after the only key share")
	}
	if err := s.waitHealth(func(code int) bool { return code == 200 }); err != nil {
		return fmt.Errorf("waiting for the unsealed server to become active: %w", err)
	}
	return nil
}

// PID is the vault server's process ID, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop stops the server: SIGTERM, then SIGKILL after 20 s. File storage
// keeps its data for Restart.
func (s *Server) Stop() {
	s.stopProcess(false)
}

// Kill stops the server with SIGKILL, like a crash. Plugin processes it
// leaves behind are killed by Close.
func (s *Server) Kill() {
	s.stopProcess(true)
}

func (s *Server) stopProcess(hard bool) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if hard {
		_ = cmd.Process.Kill()
	} else {
		_ = cmd.Process.Signal(terminateSignal)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
	<-exited
	if !hard {
		// Reap any plugin process that outlived a graceful stop.
		KillGroup(cmd.Process.Pid)
	}
}

// Restart stops a file-storage server and starts it again on the same
// ports with the same data, unseals it and waits until it is active.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.restart(); err != nil {
		tb.Fatalf("restarting vault: %v\n--- last lines of the vault log:\n%s", err, s.LogTail(60))
	}
}

func (s *Server) restart() error {
	if s.opts.Storage != "file" {
		return errors.New("Restart needs Options.Storage \"file\"; a dev server loses its data")
	}
	s.stopProcess(false)
	if err := s.startProcess(); err != nil {
		return err
	}
	if err := s.waitHealth(func(code int) bool { return code == 503 || code == 200 }); err != nil {
		return err
	}
	return s.unsealAndWait()
}

// Close stops the server, kills leftover plugin processes, releases the
// ports and removes the temp dir (unless FLOWCRED_VAULTTEST_KEEP=1).
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	pid := s.PID()
	s.stopProcess(false)
	if pid != 0 {
		KillGroup(pid)
	}
	if s.release != nil {
		s.release()
		s.release = nil
	}
	if os.Getenv(EnvKeep) == "1" {
		fmt.Fprintf(os.Stderr, "vaulttest: kept %s (log %s)\n", s.dir, s.LogPath)
		return
	}
	_ = os.RemoveAll(s.dir)
}

// LogTail returns the last n lines of the server log.
func (s *Server) LogTail(n int) string {
	return LogTail(s.LogPath, n)
}

// LogOnFailure prints the server log written during the test if the test
// fails. Use it with a server shared by several tests.
func (s *Server) LogOnFailure(tb testing.TB) {
	tb.Helper()
	var start int64
	if fi, err := os.Stat(s.LogPath); err == nil {
		start = fi.Size()
	}
	tb.Cleanup(func() {
		if !tb.Failed() {
			return
		}
		b, err := os.ReadFile(s.LogPath)
		if err != nil || int64(len(b)) < start {
			return
		}
		tb.Logf("vault server log during this test (%s):\n%s", s.LogPath, LastLines(string(b[start:]), 400))
	})
}
