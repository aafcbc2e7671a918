package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// Churn counts the leases consumers create: Vault Agent rendering a
// template, the Go resolver called in a tight loop, and, for contrast, a
// client that reads on every request. Each consumer reads its own
// api_token handle whose lease is ChurnTTL. Leases are found by listing
// sys/leases/lookup/flowcred/token/<handle>/ more often than they expire,
// and their issue times come from sys/leases/lookup.
func (e *Env) Churn(ctx context.Context) error {
	ttl := e.Cfg.ChurnTTL
	consumers := []string{"churn_agent", "churn_resolver", "churn_per_request"}
	for _, h := range consumers {
		if err := e.write(ctx, e.Reader.Client, "flowcred/bindings/"+h, map[string]interface{}{
			"kind": "api_token", "token": "bench-churn-token-SECRET", "ttl": int(ttl.Seconds()),
		}); err != nil {
			return err
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	// Vault Agent with a template on the agent's handle.
	agentDone, err := e.startAgent(runCtx, "churn_agent")
	if err != nil {
		return err
	}
	// The Go resolver, asked for material every 10 ms.
	rc, err := e.V.Client.Clone()
	if err != nil {
		return err
	}
	rc.SetToken(e.V.Token)
	p, err := resolver.NewVault(resolver.WithClient(rc))
	if err != nil {
		return err
	}
	var resolves, perRequest atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	loop := func(every time.Duration, fn func() error) {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if err := fn(); err != nil && runCtx.Err() == nil {
				errs <- err
				return
			}
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
		}
	}
	wg.Add(2)
	go loop(10*time.Millisecond, func() error {
		_, err := p.Resolve(runCtx, "churn_resolver")
		resolves.Add(1)
		return err
	})
	go loop(100*time.Millisecond, func() error {
		err := e.Reader.Get(runCtx, "flowcred/token/churn_per_request")
		perRequest.Add(1)
		return err
	})

	// Poll the lease lists; every lease lives ttl, polls come every ttl/5.
	seen := map[string]map[string]time.Time{}
	for _, h := range consumers {
		seen[h] = map[string]time.Time{}
	}
	poll := func() error {
		for _, h := range consumers {
			if err := e.collectLeases(ctx, h, seen[h]); err != nil {
				return err
			}
		}
		return nil
	}
	start := time.Now()
	deadline := start.Add(e.Cfg.ChurnDuration)
	for time.Now().Before(deadline) {
		if err := poll(); err != nil {
			return err
		}
		select {
		case err := <-errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(ttl / 5):
		}
	}
	stop()
	wg.Wait()
	<-agentDone
	elapsed := time.Since(start)
	if err := poll(); err != nil {
		return err
	}
	calls := map[string]string{
		"churn_agent":       "Vault Agent template",
		"churn_resolver":    fmt.Sprintf("Go resolver, %s Resolve calls", thousands(resolves.Load())),
		"churn_per_request": fmt.Sprintf("read per request, %s reads", thousands(perRequest.Load())),
	}
	perLease := time.Hour / ttl
	for _, h := range consumers {
		n, perHour, interval := leaseRate(seen[h], elapsed)
		row := Row{
			Area: "churn", Storage: e.V.Storage,
			Case:   fmt.Sprintf("%s, lease %s", calls[h], ttl),
			Result: fmt.Sprintf("%d leases in %s: one per %s, %s per consumer per hour", n, elapsed.Round(time.Second), interval.Round(100*time.Millisecond), thousands(int64(perHour))),
		}
		if h != "churn_per_request" {
			// About one lease per lease lifetime: between one per lease and
			// one per half lease (Agent and the resolver re-read at ~90%).
			ok := perHour >= 0.9*float64(perLease) && perHour <= 2*float64(perLease)
			row.Verdict = fmt.Sprintf("%.2f leases per lease lifetime (target about 1: %s)", perHour/float64(perLease), verdict(ok))
		} else {
			row.Verdict = fmt.Sprintf("%.0f leases per lease lifetime (the pattern to avoid)", perHour/float64(perLease))
		}
		e.Table.Add(row)
	}
	return nil
}

// collectLeases adds the handle's current leases, with their issue times,
// to seen.
func (e *Env) collectLeases(ctx context.Context, handle string, seen map[string]time.Time) error {
	prefix := "flowcred/token/" + handle + "/"
	ids, err := listLeases(ctx, e.V.Client, prefix)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, ok := seen[id]; ok {
			continue
		}
		s, err := e.V.Client.Logical().WriteWithContext(ctx, "sys/leases/lookup", map[string]interface{}{"lease_id": prefix + id})
		if err != nil || s == nil {
			// Expired between the list and the lookup: count it, time unknown.
			seen[id] = time.Time{}
			continue
		}
		it, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(s.Data["issue_time"]))
		seen[id] = it
	}
	return nil
}

func listLeases(ctx context.Context, c *api.Client, prefix string) ([]string, error) {
	s, err := c.Logical().ListWithContext(ctx, "sys/leases/lookup/"+prefix)
	if err != nil {
		return nil, fmt.Errorf("listing leases under %s: %w", prefix, err)
	}
	if s == nil {
		return nil, nil
	}
	raw, _ := s.Data["keys"].([]interface{})
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		out = append(out, fmt.Sprint(k))
	}
	return out, nil
}

// leaseRate turns lease issue times into a steady-state rate: the mean
// interval between consecutive leases (no fencepost error from a short
// run), or the count over the run when fewer than two have times.
func leaseRate(seen map[string]time.Time, elapsed time.Duration) (n int, perHour float64, interval time.Duration) {
	var times []time.Time
	for _, t := range seen {
		if !t.IsZero() {
			times = append(times, t)
		}
	}
	n = len(seen)
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	if len(times) >= 2 {
		interval = times[len(times)-1].Sub(times[0]) / time.Duration(len(times)-1)
	} else if n > 0 {
		interval = elapsed / time.Duration(n)
	}
	if interval > 0 {
		perHour = float64(time.Hour) / float64(interval)
	}
	return n, perHour, interval
}

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
