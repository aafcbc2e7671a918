package vaulttest

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// PID is the vault server's process ID, or 0 when it is not running.
func (s *Server) PID() int { return s.proc.PID() }

// Stop stops the server: SIGTERM, then SIGKILL after 20 s. File and
// integrated storage keep their data for Restart.
func (s *Server) Stop() { s.proc.Stop() }

// Kill stops the server with SIGKILL, like a crash. Plugin processes it
// leaves behind are killed by Close.
func (s *Server) Kill() { s.proc.Kill(false) }

// Restart stops a file- or integrated-storage server and starts it again on
// the same ports with the same data, unseals it and waits until it is
// active.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.restart(); err != nil {
		tb.Fatalf("restarting vault: %v\n--- last lines of the vault log:\n%s", err, s.LogTail(60))
	}
}

func (s *Server) restart() error {
	if !s.persistent() {
		return errors.New("Restart needs Options.Storage \"file\" or \"integrated\"; a dev server loses its data")
	}
	s.proc.Stop()
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
	s.proc.Reap()
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
func (s *Server) LogTail(n int) string { return s.proc.LogTail(n) }

// LogOnFailure prints the server log written during the test if the test
// fails. Use it with a server shared by several tests.
func (s *Server) LogOnFailure(tb testing.TB) {
	tb.Helper()
	s.proc.LogOnFailure(tb, "vault server log", 400)
}
