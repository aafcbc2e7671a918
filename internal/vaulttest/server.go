package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	// UnsealKey is the single unseal key (file and integrated storage only).
	UnsealKey string

	opts      Options
	vaultBin  string
	pluginBin string
	dir       string
	home      string
	release   func()
	proc      *Process

	mu     sync.Mutex
	closed bool
}

// New starts a server without a testing.TB, for TestMain and programs. The
// caller must Close it. Most tests use Start.
func New(opts Options) (*Server, error) {
	vaultBin, pluginBin := opts.VaultBin, opts.PluginBin
	if vaultBin == "" || pluginBin == "" {
		if err := Check(); err != nil {
			return nil, err
		}
		vaultBin, pluginBin = cmpOr(vaultBin, VaultBin()), cmpOr(pluginBin, PluginBin())
	}
	if err := checkBinaries(vaultBin, pluginBin); err != nil {
		return nil, err
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.TempDir, "flowcred-vault-")
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
		vaultBin:   vaultBin,
		pluginBin:  pluginBin,
		dir:        dir,
		home:       filepath.Join(dir, "home"),
		Mount:      opts.Mount,
		PluginName: opts.PluginName,
		LogPath:    filepath.Join(dir, "vault.log"),
		PluginDir:  filepath.Join(dir, "plugins"),
	}
	s.proc = &Process{Bin: vaultBin, Dir: dir, Home: s.home, LogPath: s.LogPath}
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

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// persistent reports whether the server keeps its data across restarts.
func (s *Server) persistent() bool { return s.opts.Storage != StorageInmem }

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
		s.proc.Stop()
		release()
		s.release = nil
	}
	return err
}

// startFirst starts the process the first time and sets up everything.
func (s *Server) startFirst() error {
	if s.persistent() {
		storage := "file"
		if s.opts.Storage == StorageIntegrated {
			storage = "raft"
		}
		cfg := ServerConfig{Storage: storage, DataDir: filepath.Join(s.dir, "data"), NodeID: "vaulttest", Port: s.Port, PluginDir: s.PluginDir}
		if err := cfg.Write(filepath.Join(s.dir, "vault.hcl")); err != nil {
			return err
		}
	}
	if err := s.startProcess(); err != nil {
		return err
	}
	if err := s.newClient(); err != nil {
		return err
	}
	if s.persistent() {
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

// startProcess runs the vault server process, its output appended to LogPath.
func (s *Server) startProcess() error {
	var args []string
	if s.persistent() {
		args = []string{"server", "-config=" + filepath.Join(s.dir, "vault.hcl")}
	} else {
		args = []string{"server", "-dev",
			"-dev-root-token-id=root",
			"-dev-listen-address=127.0.0.1:" + strconv.Itoa(s.Port),
			"-dev-plugin-dir=" + s.PluginDir,
			"-dev-no-store-token",
		}
	}
	return s.proc.Start("vaulttest:", append(args, "-log-level="+s.opts.LogLevel)...)
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
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.StartTimeout)
	defer cancel()
	return s.proc.WaitHealth(ctx, s.Addr, ok)
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
	if s.opts.Storage == StorageIntegrated {
		return s.waitWritable()
	}
	return nil
}

// waitWritable waits until a write succeeds: a node on integrated storage
// is active as soon as it has elected itself, and writes can still fail for
// a moment while it sets up as leader.
func (s *Server) waitWritable() error {
	deadline := time.Now().Add(s.opts.StartTimeout)
	for {
		err := s.Client.Sys().PutPolicy("vaulttest-ready", `path "vaulttest-ready" { capabilities = ["read"] }`)
		if err == nil {
			return s.Client.Sys().DeletePolicy("vaulttest-ready")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the active node takes no writes: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
