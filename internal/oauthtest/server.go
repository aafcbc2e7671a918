package oauthtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
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
	// AuthorizationURL is the authorization endpoint (Issuer + "/auth"),
	// DeviceAuthorizationURL the device authorization endpoint (RFC 8628,
	// Issuer + "/device/auth"), DeviceURL the device page a user enters a
	// user code at (the verification_uri, Issuer + "/device").
	AuthorizationURL       string `json:"authorization_url"`
	DeviceAuthorizationURL string `json:"device_authorization_url"`
	DeviceURL              string `json:"device_url"`

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
