package oauthtest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ServerDirEnv overrides the location of the node server directory
// (default: <module root>/testdata/oauth-server).
const ServerDirEnv = "OAUTHTEST_SERVER_DIR"

// RequireNodeEnv makes Start fail instead of skip when node is not on PATH.
const RequireNodeEnv = "OAUTHTEST_REQUIRE_NODE"

// ReadyTimeout bounds how long StartProcess waits for the server's ready line
// (after any npm ci).
const ReadyTimeout = 30 * time.Second

// Server is a running testdata/oauth-server node process.
type Server struct {
	// Issuer is the base URL, e.g. http://127.0.0.1:40123.
	Issuer string `json:"issuer"`
	// TokenURL is the token endpoint (Issuer + "/token").
	TokenURL string `json:"token_url"`
	// AdminURL is the admin API base (Issuer + "/__admin").
	AdminURL string `json:"admin_url"`
	// RevocationURL is the RFC 7009 revocation endpoint.
	RevocationURL string `json:"revocation_url"`
	// JWKSURL serves the public keys the server signs JWTs (id tokens, JWT
	// access tokens) with.
	JWKSURL string `json:"jwks_url"`

	cmd       *exec.Cmd
	stdin     io.WriteCloser
	stderr    *tailBuffer
	http      *http.Client
	done      chan struct{}
	waitErr   error
	closeOnce sync.Once
	closeErr  error
}

// Start starts a server for the test and stops it in tb.Cleanup. It skips the
// test when node is not on PATH (unless OAUTHTEST_REQUIRE_NODE is set, then it
// fails). On test failure the server's stderr is logged.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv(RequireNodeEnv) != "" {
			tb.Fatalf("oauthtest: node not found on PATH (%v) and %s is set", err, RequireNodeEnv)
		}
		tb.Skipf("oauthtest: node not found on PATH (%v); install Node.js >= 20 (and npm) to run the OAuth2 integration tests", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err := StartProcess(ctx, "")
	if err != nil {
		tb.Fatalf("oauthtest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			if tail := s.Stderr(); tail != "" {
				tb.Logf("oauthtest: server stderr:\n%s", tail)
			}
		}
		if err := s.Close(); err != nil {
			tb.Errorf("oauthtest: stopping server: %v", err)
		}
	})
	return s
}

// StartProcess starts the node server from dir (the testdata/oauth-server
// directory; "" locates it from the working directory's module root, or
// OAUTHTEST_SERVER_DIR). It runs `npm ci` first if node_modules is missing or
// stale. ctx bounds the startup only; call Close to stop the server. The
// server also exits by itself when this process dies (stdin EOF).
func StartProcess(ctx context.Context, dir string) (*Server, error) {
	if dir == "" {
		var err error
		if dir, err = ServerDir(); err != nil {
			return nil, err
		}
	}
	if err := EnsureNodeModules(ctx, dir); err != nil {
		return nil, err
	}

	s := &Server{
		stderr: &tailBuffer{max: 64 << 10},
		http: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second},
		},
		done: make(chan struct{}),
	}
	ready := &firstLineWriter{ch: make(chan string, 1)}

	cmd := exec.Command("node", "--no-warnings", "server.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT=0", "EXIT_ON_STDIN_EOF=1")
	cmd.Stdout = ready
	cmd.Stderr = s.stderr
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	s.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting node server.js in %s: %w", dir, err)
	}
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()

	timer := time.NewTimer(ReadyTimeout)
	defer timer.Stop()
	var line string
	select {
	case line = <-ready.ch:
	case <-s.done:
		return nil, fmt.Errorf("oauth server exited before becoming ready (%v); stderr:\n%s", s.waitErr, s.Stderr())
	case <-timer.C:
		_ = s.Close()
		return nil, fmt.Errorf("oauth server not ready after %v; stderr:\n%s", ReadyTimeout, s.Stderr())
	case <-ctx.Done():
		_ = s.Close()
		return nil, fmt.Errorf("waiting for oauth server: %w", ctx.Err())
	}
	if err := json.Unmarshal([]byte(line), s); err != nil || s.TokenURL == "" || s.AdminURL == "" {
		_ = s.Close()
		return nil, fmt.Errorf("oauth server printed an unexpected ready line %q (%v); stderr:\n%s", line, err, s.Stderr())
	}
	return s, nil
}

// Close stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it.
// It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
				s.closeErr = fmt.Errorf("oauth server did not exit on SIGTERM; killed")
			}
		}
		_ = s.stdin.Close()
		if tr, ok := s.http.Transport.(*http.Transport); ok {
			tr.CloseIdleConnections()
		}
	})
	return s.closeErr
}

// Stderr returns the tail (up to 64 KiB) of what the server wrote to stderr.
func (s *Server) Stderr() string { return s.stderr.String() }

// ---------------------------------------------------------------- admin API

// MintRefreshToken creates a grant and a refresh token for clientID (one of
// the rt-* clients) and account "alice" without any browser interaction. An
// empty scope means "openid offline_access api". The token works with the
// normal refresh_token grant at TokenURL.
func (s *Server) MintRefreshToken(clientID, scope string) (string, error) {
	return s.MintRefreshTokenForAccount(clientID, scope, "")
}

// MintRefreshTokenForAccount is MintRefreshToken for a specific account id
// (the `sub` of issued id tokens); "" means "alice".
func (s *Server) MintRefreshTokenForAccount(clientID, scope, accountID string) (string, error) {
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	in := map[string]string{"client_id": clientID, "scope": scope, "account_id": accountID}
	if err := s.admin(http.MethodPost, "/refresh-tokens", in, &out); err != nil {
		return "", err
	}
	if out.RefreshToken == "" {
		return "", errors.New("oauthtest: server returned no refresh_token")
	}
	return out.RefreshToken, nil
}

// SetTTL sets the lifetime of access tokens and of id tokens issued from now
// on (rounded up to whole seconds). A zero duration leaves that TTL unchanged.
// Defaults are one hour each.
func (s *Server) SetTTL(accessTTL, idTTL time.Duration) error {
	in := map[string]int{}
	if accessTTL > 0 {
		in["access_token_ttl"] = ceilSeconds(accessTTL)
	}
	if idTTL > 0 {
		in["id_token_ttl"] = ceilSeconds(idTTL)
	}
	return s.admin(http.MethodPost, "/config", in, nil)
}

// SetRefreshTokenTTL sets the lifetime of refresh tokens issued from now on
// (default 14 days).
func (s *Server) SetRefreshTokenTTL(ttl time.Duration) error {
	return s.admin(http.MethodPost, "/config", map[string]int{"refresh_token_ttl": ceilSeconds(ttl)}, nil)
}

func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

// RegisterJWTIssuer trusts pub (RSA or ECDSA P-256/P-384; a crypto.Signer
// such as *rsa.PrivateKey is accepted and its public half used) for
// JWT-bearer assertions whose `iss` is issuer. If kid is not empty, assertions
// carrying a kid header are checked against the key with that kid only.
// replace drops the issuer's previously registered keys (key rotation).
func (s *Server) RegisterJWTIssuer(issuer, kid string, pub crypto.PublicKey, replace bool) error {
	if signer, ok := pub.(crypto.Signer); ok {
		pub = signer.Public()
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("oauthtest: marshal public key: %w", err)
	}
	in := map[string]any{
		"issuer":         issuer,
		"public_key_pem": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"replace":        replace,
	}
	if kid != "" {
		in["kid"] = kid
	}
	return s.admin(http.MethodPost, "/jwt-issuers", in, nil)
}

// RemoveJWTIssuer drops the key with kid ("" = all keys) for issuer.
func (s *Server) RemoveJWTIssuer(issuer, kid string) error {
	in := map[string]string{"issuer": issuer}
	if kid != "" {
		in["kid"] = kid
	}
	return s.admin(http.MethodDelete, "/jwt-issuers", in, nil)
}

// Stats are the server's counters since start or the last ResetStats.
type Stats struct {
	// TokenRequests counts token endpoint requests (successful or not) by
	// grant_type ("unknown" if the body had none).
	TokenRequests map[string]int `json:"token_requests"`
	// TokenSuccess counts successful token responses by grant_type.
	TokenSuccess map[string]int `json:"token_success"`
	// ByClient counts token endpoint requests by client_id.
	ByClient map[string]int `json:"by_client"`
	// Errors counts token/revocation endpoint errors by OAuth error code.
	Errors map[string]int `json:"errors"`
	// RefreshTokenReuseDetected counts refreshes with an already rotated
	// refresh token (each revoked its whole grant).
	RefreshTokenReuseDetected int `json:"refresh_token_reuse_detected"`
	GrantsRevoked             int `json:"grants_revoked"`
	RefreshTokensMinted       int `json:"refresh_tokens_minted"`
	RevocationRequests        int `json:"revocation_requests"`
	// StoreSize is the number of entries in the server's in-memory store.
	StoreSize int `json:"store_size"`
}

// Stats fetches the server's counters.
func (s *Server) Stats() (Stats, error) {
	var st Stats
	err := s.admin(http.MethodGet, "/stats", nil, &st)
	return st, err
}

// ResetStats zeroes the counters and forgets the last assertion.
func (s *Server) ResetStats() error {
	return s.admin(http.MethodPost, "/stats/reset", nil, nil)
}

// LastAssertion returns the claims of the last successfully verified
// JWT-bearer assertion (iss, sub, aud, scope, iat, exp, kid, alg,
// target_audience, form_scope; absent ones omitted); empty if none.
func (s *Server) LastAssertion() (map[string]any, error) {
	out := map[string]any{}
	err := s.admin(http.MethodGet, "/last-assertion", nil, &out)
	return out, err
}

// Revoke revokes refreshToken's whole grant (all its refresh and access
// tokens). The standard RFC 7009 endpoint is also available at RevocationURL.
func (s *Server) Revoke(refreshToken string) error {
	return s.admin(http.MethodPost, "/revoke", map[string]string{"refresh_token": refreshToken}, nil)
}

func (s *Server) admin(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.AdminURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("oauthtest: admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("oauthtest: admin %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("oauthtest: admin %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("oauthtest: admin %s %s: decoding %q: %w", method, path, b, err)
		}
	}
	return nil
}

// ---------------------------------------------------------------- locating and installing

// ModuleRoot walks up from the working directory to the directory holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("oauthtest: go.mod not found in the working directory or any parent")
		}
		dir = parent
	}
}

// ServerDir returns the testdata/oauth-server directory (or $OAUTHTEST_SERVER_DIR).
func ServerDir() (string, error) {
	if d := os.Getenv(ServerDirEnv); d != "" {
		return filepath.Abs(d)
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "testdata", "oauth-server")
	if _, err := os.Stat(filepath.Join(dir, "server.js")); err != nil {
		return "", fmt.Errorf("oauthtest: %s/server.js not found: %w", dir, err)
	}
	return dir, nil
}

// EnsureNodeModules runs `npm ci --no-audit --no-fund` in dir unless its
// node_modules already holds the exact dependency versions package.json
// pins. A file lock serializes concurrent callers (parallel test packages).
func EnsureNodeModules(ctx context.Context, dir string) error {
	if nodeModulesCurrent(dir) {
		return nil
	}
	unlock, err := lockFile(ctx, filepath.Join(os.TempDir(), "flowcred-oauthtest-"+shortHash(dir)+".lock"))
	if err != nil {
		return fmt.Errorf("oauthtest: locking for npm ci: %w", err)
	}
	defer unlock()
	if nodeModulesCurrent(dir) { // someone else installed while we waited
		return nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return fmt.Errorf("oauthtest: %s/node_modules needs installing but npm is not on PATH: %w", dir, err)
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("oauthtest: npm ci in %s: %w\n%s", dir, err, out)
	}
	if !nodeModulesCurrent(dir) {
		return fmt.Errorf("oauthtest: npm ci in %s succeeded but dependencies still look missing\n%s", dir, out)
	}
	return nil
}

// nodeModulesCurrent reports whether every dependency in dir/package.json is
// installed, at the exact version when package.json pins one.
func nodeModulesCurrent(dir string) bool {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return false
	}
	for name, want := range pkg.Dependencies {
		var dep struct {
			Version string `json:"version"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "node_modules", filepath.FromSlash(name), "package.json"))
		if err != nil || json.Unmarshal(b, &dep) != nil {
			return false
		}
		if isExactVersion(want) && dep.Version != want {
			return false
		}
	}
	return true
}

func isExactVersion(v string) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if !(r == '.' || r == '-' || r == '+' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return v[0] >= '0' && v[0] <= '9'
}

func shortHash(s string) string {
	// FNV-1a; only needs to separate checkouts on one machine.
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return fmt.Sprintf("%016x", h)
}

// ---------------------------------------------------------------- process I/O

// firstLineWriter hands the first complete line to ch and discards the rest.
type firstLineWriter struct {
	mu   sync.Mutex
	buf  []byte
	sent bool
	ch   chan string
}

func (w *firstLineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
		w.sent = true
		w.ch <- string(bytes.TrimSpace(w.buf[:i]))
		w.buf = nil
	} else if len(w.buf) > 1<<20 {
		w.sent = true
		w.ch <- string(w.buf[:256])
		w.buf = nil
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
