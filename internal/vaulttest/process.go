package vaulttest

// The one way a `vault server` process is started, stopped, waited for and
// logged: Server (tests, benchmarks) and internal/vaultcluster's nodes each
// run one Process.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Process is one `vault server` process and its log.
type Process struct {
	// Bin is the vault binary; "" means FLOWCRED_VAULT_BIN.
	Bin string
	// Dir is the working directory and Home the process's HOME.
	Dir, Home string
	// LogPath is the log: stdout and stderr of every run, each run after a
	// line "=== " + its banner.
	LogPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	lastPID int           // the last process started, for Reap
}

// Start runs `vault args...` with CleanEnv and HOME=Home, in its own process
// group (SysProcAttr), its output appended to LogPath.
func (p *Process) Start(banner string, args ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return errors.New("vaulttest: the vault process is already running")
	}
	bin := p.Bin
	if bin == "" {
		bin = VaultBin()
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "=== %s %s %s\n", banner, time.Now().UTC().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = p.Dir
	cmd.Env = append(CleanEnv(), "HOME="+p.Home)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = SysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited, p.lastPID = cmd, exited, cmd.Process.Pid
	return nil
}

// Running reports whether the process is running.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// PID is the process ID, 0 when it is not running.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// take forgets the running process and returns it.
func (p *Process) take() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd, exited := p.cmd, p.exited
	p.cmd, p.exited = nil, nil
	return cmd, exited
}

// Stop stops the process gracefully (SIGTERM, SIGKILL after 20 s) and then
// the plugin processes that outlived it.
func (p *Process) Stop() {
	cmd, exited := p.take()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(terminateSignal)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
	}
	<-exited
	KillGroup(cmd.Process.Pid)
}

// Kill stops the server with SIGKILL, like a crashed process; with plugins,
// every plugin process it started too, like a crashed machine. Reap kills
// plugin processes left behind.
func (p *Process) Kill(plugins bool) {
	cmd, exited := p.take()
	if cmd == nil {
		return
	}
	if plugins {
		KillGroup(cmd.Process.Pid)
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Reap kills what is left of the last process started and its process
// group (the plugin processes it started).
func (p *Process) Reap() {
	p.Stop()
	p.mu.Lock()
	pid := p.lastPID
	p.mu.Unlock()
	KillGroup(pid)
}

// Health returns addr's sys/health status code, 0 if it does not answer.
func Health(ctx context.Context, addr string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/v1/sys/health", nil)
	if err != nil {
		return 0
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode
}

// healthClient is shared by health probes: short timeout, no keep-alive
// surprises across restarts.
var healthClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// WaitHealth polls addr's sys/health until ok(status code) holds, the
// process exits or ctx ends.
func (p *Process) WaitHealth(ctx context.Context, addr string, ok func(code int) bool) error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return errors.New("the vault process is not running")
	}
	last := "no answer yet"
	for {
		code := Health(ctx, addr)
		if ok(code) {
			return nil
		}
		if code != 0 {
			last = "sys/health answered " + strconv.Itoa(code)
		}
		select {
		case <-exited:
			return fmt.Errorf("vault at %s exited (%s)", addr, last)
		case <-ctx.Done():
			return fmt.Errorf("vault at %s: %s: %w", addr, last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// LogTail returns the last n lines of the log.
func (p *Process) LogTail(n int) string { return LogTail(p.LogPath, n) }

// LogOnFailure logs, as what, the lines the log gets during the test (the
// last n of them) if the test fails.
func (p *Process) LogOnFailure(tb testing.TB, what string, n int) {
	tb.Helper()
	var start int64
	if fi, err := os.Stat(p.LogPath); err == nil {
		start = fi.Size()
	}
	tb.Cleanup(func() {
		if !tb.Failed() {
			return
		}
		b, err := os.ReadFile(p.LogPath)
		if err != nil || int64(len(b)) < start {
			return
		}
		tb.Logf("%s during this test (%s):\n%s", what, p.LogPath, LastLines(string(b[start:]), n))
	})
}
