package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// Config sizes a run. Full and Smoke are the two presets.
type Config struct {
	Smoke    bool
	Storages []string
	// Reads: each (storage, clients, workload) cell runs for CellDuration or
	// CellMax requests, split into Rounds interleaved with the other
	// workloads so that drift hits all of them alike.
	Concurrency  []int
	CellDuration time.Duration
	CellMax      int
	Rounds       int
	APIHandles   int
	OAuthHandles int
	// Churn: consumers read handles whose lease is ChurnTTL for ChurnDuration.
	ChurnDuration time.Duration
	ChurnTTL      time.Duration
	// Expiry: ExpiryLeases leases of ExpiryTTL, then the time to reap them.
	ExpiryLeases int
	ExpiryTTL    time.Duration
	// Refresh: Readers concurrent readers of an expired handle, RefreshRounds
	// times; OverheadSamples forced-refresh reads against direct grants.
	Readers         int
	RefreshRounds   int
	OverheadSamples int
	// Scale: binding counts, cumulative.
	ScaleSizes []int
	ScaleReads int
	// Steps limits the run to these workloads (reads, refresh, expiry,
	// scale, churn); empty runs all.
	Steps []string
}

// Full is the configuration BENCHMARKS.md reports.
func Full() Config {
	return Config{
		Storages:    []string{StorageDev, StorageRaft},
		Concurrency: []int{1, 8, 32}, CellDuration: 10 * time.Second, CellMax: 500000, Rounds: 10,
		APIHandles: 100, OAuthHandles: 100,
		ChurnDuration: 100 * time.Second, ChurnTTL: 30 * time.Second,
		ExpiryLeases: 3000, ExpiryTTL: 45 * time.Second,
		Readers: 200, RefreshRounds: 10, OverheadSamples: 500,
		ScaleSizes: []int{1000, 10000, 100000}, ScaleReads: 2000,
	}
}

// Smoke is tiny sizes for CI: it exercises every workload and prints the
// table, in about a minute with both storages.
func Smoke() Config {
	return Config{
		Smoke:       true,
		Storages:    []string{StorageDev, StorageRaft},
		Concurrency: []int{1, 8, 32}, CellDuration: 400 * time.Millisecond, CellMax: 2000, Rounds: 1,
		APIHandles: 10, OAuthHandles: 10,
		ChurnDuration: 8 * time.Second, ChurnTTL: 3 * time.Second,
		ExpiryLeases: 100, ExpiryTTL: 2 * time.Second,
		Readers: 200, RefreshRounds: 1, OverheadSamples: 30,
		ScaleSizes: []int{100, 1000}, ScaleReads: 100,
	}
}

// Env is one storage's server plus what every workload shares.
type Env struct {
	Cfg    Config
	V      *Vault
	OAuth  *oauthtest.Server
	Table  *Table
	Reader *Reader
	// AgentBin runs `vault agent` and `vault proxy` (the server binary).
	AgentBin string
	// WorkDir is scratch space for this storage.
	WorkDir string

	// ProfileSignals: see Options.
	ProfileSignals bool

	// px is the Vault Proxy of this storage's server, started by the first
	// workload that reads through it (proxy), stopped after the last.
	px       *Proxy
	pxReader *Reader
}

// benchProxyPolicy lets the proxy's token read what the benchmark reads
// through it beyond the example's policy (flowcred/token/*).
const benchProxyPolicy = `
path "` + unleasedMount + `/token/*" {
  capabilities = ["read"]
}
path "` + trivialMount + `/renewable/*" {
  capabilities = ["read"]
}
`

// proxy returns a Reader of the storage's Vault Proxy (examples/proxy/
// proxy.hcl; the reader sends no token, the proxy adds its own), starting
// the proxy on first use.
func (e *Env) proxy(ctx context.Context) (*Reader, error) {
	if e.px != nil {
		return e.pxReader, nil
	}
	if err := e.V.Client.Sys().PutPolicyWithContext(ctx, "bench-proxy", benchProxyPolicy); err != nil {
		return nil, err
	}
	token, err := ProxyToken(ctx, e.V.Client, "bench-proxy")
	if err != nil {
		return nil, err
	}
	dir, err := e.scratch("proxy")
	if err != nil {
		return nil, err
	}
	e.Table.Logf("starting vault proxy (%s) in %s", ProxyExampleConfig, dir)
	px, err := StartProxy(ctx, e.AgentBin, e.V.Addr, token, dir)
	if err != nil {
		return nil, err
	}
	e.px, e.pxReader = px, &Reader{Client: HTTPClient(64), Addr: px.Addr}
	return e.pxReader, nil
}

// closeProxy stops the proxy if one was started.
func (e *Env) closeProxy() {
	if e.px != nil {
		e.px.Close()
		e.px, e.pxReader = nil, nil
	}
}

// Options of a whole run.
type Options struct {
	Cfg       Config
	VaultBin  string
	PluginBin string
	WorkDir   string
	Table     *Table
	// PluginEnv is added to the plugin's registered environment (e.g.
	// FLOWCRED_CPUPROFILE for bench/cmd/vault-plugin-flowcred-prof).
	PluginEnv []string
	// TrivialBin is the trivial plugin (bench/trivial); "" builds it.
	TrivialBin string
	// ProfileSignals sends the plugin SIGUSR1 and SIGUSR2 around the
	// measured phase of the refresh overhead (profileMark), for
	// bench/cmd/vault-plugin-flowcred-prof with FLOWCRED_CPUPROFILE_ON_SIGNAL=1.
	ProfileSignals bool
}

// RunAll runs every workload on every storage, filling the table.
func RunAll(ctx context.Context, o Options) error {
	t := o.Table
	t.Logf("starting the OAuth2 server (oidc-provider)")
	oa, err := oauthtest.StartProcess(ctx, "")
	if err != nil {
		return err
	}
	defer oa.Close()
	trivial := o.TrivialBin
	if trivial == "" {
		t.Logf("building the trivial plugin (bench/trivial)")
		if trivial, err = BuildTrivial(ctx, filepath.Join(o.WorkDir, "bin")); err != nil {
			return err
		}
	}
	for i, storage := range o.Cfg.Storages {
		dir := filepath.Join(o.WorkDir, storage)
		t.Logf("starting vault (%s storage) in %s", storage, dir)
		v, err := StartVault(ctx, VaultOptions{
			Storage: storage, VaultBin: o.VaultBin, PluginBin: o.PluginBin, TrivialBin: trivial,
			Dir: dir, PluginEnv: o.PluginEnv,
		})
		if err != nil {
			return err
		}
		env := &Env{
			Cfg: o.Cfg, V: v, OAuth: oa, Table: t, AgentBin: o.VaultBin, WorkDir: dir, ProfileSignals: o.ProfileSignals,
			Reader: &Reader{Client: HTTPClient(64), Addr: v.Addr, Token: v.Token},
		}
		err = env.runStorage(ctx, i == 0)
		if err != nil {
			err = fmt.Errorf("%s: %w\n--- last lines of the vault log:\n%s", storage, err, v.LogTail(30))
			if env.px != nil {
				err = fmt.Errorf("%w\n--- last lines of the proxy log:\n%s", err, env.px.LogTail(20))
			}
		}
		env.closeProxy()
		v.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *Env) runStorage(ctx context.Context, first bool) error {
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"reads", e.Reads},
		{"refresh", e.Refresh},
		{"expiry", e.Expiry},
		{"scale", e.Scale},
	}
	if first {
		// Lease counts do not depend on the storage: measure them once.
		steps = append(steps, struct {
			name string
			fn   func(context.Context) error
		}{"churn", e.Churn})
	}
	for _, s := range steps {
		if len(e.Cfg.Steps) > 0 && !slices.Contains(e.Cfg.Steps, s.name) {
			continue
		}
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		e.Table.Logf("%s/%s done in %s", e.V.Storage, s.name, time.Since(start).Round(time.Second))
	}
	return nil
}

// write PUTs JSON data to /v1/<path> and requires a 2xx.
func (e *Env) write(ctx context.Context, client *http.Client, path string, data map[string]interface{}) error {
	if data == nil {
		data = map[string]interface{}{}
	}
	body, err := json.Marshal(data)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, e.V.Addr+"/v1/"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", e.V.Token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		// Vault echoes errors, never the request body: no secret leaks here.
		return fmt.Errorf("PUT %s: %s: %.300s", path, resp.Status, msg)
	}
	return nil
}

// writeMany runs n writes from `workers` goroutines; it returns the elapsed time.
func (e *Env) writeMany(ctx context.Context, workers, from, to int, pathData func(i int) (string, map[string]interface{})) (time.Duration, error) {
	client := e.Reader.Client
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, workers)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p, d := pathData(i)
				if err := e.write(ctx, client, p, d); err != nil {
					errs <- err
					for range work {
					}
					return
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	el := time.Since(start)
	select {
	case err := <-errs:
		return el, err
	default:
	}
	return el, nil
}

// readAll reads each path once from `workers` goroutines.
func (e *Env) readAll(ctx context.Context, workers int, paths []string) error {
	res := Run(ctx, workers, len(paths), 30*time.Minute, func(ctx context.Context, seq int) error {
		return e.Reader.Get(ctx, paths[seq])
	})
	if res.Errors > 0 {
		return fmt.Errorf("%d of %d reads failed: %w", res.Errors, len(paths), res.FirstErr)
	}
	return nil
}

// pluginPID is the plugin process (started by the first use of the mount).
func (e *Env) pluginPID() int {
	pid, err := e.V.PluginPID()
	if err != nil {
		e.Table.Logf("plugin pid: %v", err)
		return 0
	}
	return pid
}

// profileMark sends sig to the plugin process when the run profiles by
// signals: SIGUSR1 starts the profile, SIGUSR2 ends it.
func (e *Env) profileMark(sig syscall.Signal) {
	if !e.ProfileSignals {
		return
	}
	if pid := e.pluginPID(); pid > 0 {
		if err := syscall.Kill(pid, sig); err != nil {
			e.Table.Logf("profile signal %v to the plugin: %v", sig, err)
		}
	}
}

// scratch returns a fresh directory under the storage's work dir.
func (e *Env) scratch(name string) (string, error) {
	d := filepath.Join(e.WorkDir, name)
	return d, os.MkdirAll(d, 0o700)
}
