package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// churnConsumer is one consumer of the churn workload: what it reads, how,
// and what its lease count should be.
type churnConsumer struct {
	// prefix is where its leases are listed (sys/leases/lookup/<prefix>).
	prefix string
	// label names the consumer in the table, after the run.
	label func() string
	// want is "one" (about one lease per lease lifetime), "none" (no lease
	// at all) or "avoid" (the pattern to avoid, no target).
	want string
}

// proxyReaders is how many per-request readers share the Vault Proxy in
// the churn workload, each reading every 100 ms.
const proxyReaders = 4

// Churn counts the leases consumers create: Vault Agent rendering a
// template, the Go resolver called in a tight loop, a client that reads on
// every request, and per-request readers sharing one Vault Proxy
// (examples/proxy) of a leased handle, of an unleased one
// (token_leases=false) and, to show what Proxy's cache does with a lease it
// keeps, of the trivial plugin's renewable lease. Each consumer reads its
// own handle whose lease is ChurnTTL. Leases are found by listing
// sys/leases/lookup/<prefix> more often than they expire, and their issue
// times come from sys/leases/lookup.
func (e *Env) Churn(ctx context.Context) error {
	ttl := e.Cfg.ChurnTTL
	bind := func(mount, h string) error {
		return e.write(ctx, e.Reader.Client, mount+"/bindings/"+h, map[string]interface{}{
			"kind": "api_token", "token": "bench-churn-token-SECRET", "ttl": int(ttl.Seconds()),
		})
	}
	for _, h := range []string{"churn_agent", "churn_resolver", "churn_per_request", "churn_proxy"} {
		if err := bind("flowcred", h); err != nil {
			return err
		}
	}
	if err := bind(unleasedMount, "churn_proxy"); err != nil {
		return err
	}
	px, err := e.proxy(ctx)
	if err != nil {
		return err
	}
	renewable, err := e.leaseRenewable(ctx, "flowcred/token/churn_proxy")
	if err != nil {
		return err
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
	var resolves, perRequest, proxied atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 3+3*proxyReaders)
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
	trivialPath := fmt.Sprintf("%s/renewable/churn?ttl=%d", trivialMount, int(ttl.Seconds()))
	for _, path := range []string{"flowcred/token/churn_proxy", unleasedMount + "/token/churn_proxy", trivialPath} {
		for r := 0; r < proxyReaders; r++ {
			wg.Add(1)
			go loop(100*time.Millisecond, func() error {
				proxied.Add(1)
				return px.Get(runCtx, path)
			})
		}
	}

	viaProxy := func(what string) func() string {
		return func() string {
			return fmt.Sprintf("Vault Proxy, %d per-request readers, %s", proxyReaders, what)
		}
	}
	consumers := []churnConsumer{
		{"flowcred/token/churn_agent/", func() string { return "Vault Agent template" }, "one"},
		{"flowcred/token/churn_resolver/", func() string { return fmt.Sprintf("Go resolver, %s Resolve calls", thousands(resolves.Load())) }, "one"},
		{"flowcred/token/churn_per_request/", func() string { return fmt.Sprintf("read per request, %s reads", thousands(perRequest.Load())) }, "avoid"},
		{"flowcred/token/churn_proxy/", viaProxy("flowcred leased"), "one"},
		{unleasedMount + "/token/churn_proxy/", viaProxy("flowcred unleased"), "none"},
		{trivialMount + "/renewable/churn/", viaProxy("trivial renewable"), "one"},
	}

	// Poll the lease lists; every lease lives ttl, polls come every ttl/5.
	seen := make([]map[string]time.Time, len(consumers))
	for i := range seen {
		seen[i] = map[string]time.Time{}
	}
	poll := func() error {
		for i, c := range consumers {
			if err := e.collectLeases(ctx, c.prefix, seen[i]); err != nil {
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
	e.Table.Logf("churn: %s reads through Vault Proxy", thousands(proxied.Load()))
	perLease := float64(time.Hour / ttl)
	for i, c := range consumers {
		n, perHour, interval := leaseRate(seen[i], elapsed)
		row := Row{
			Area: "churn", Storage: e.V.Storage,
			Case:   fmt.Sprintf("%s, lease %s", c.label(), ttl),
			Result: fmt.Sprintf("%d leases in %s: one per %s, %s per consumer per hour", n, elapsed.Round(time.Second), roundInterval(interval), thousands(int64(perHour))),
		}
		switch c.want {
		case "one":
			// About one lease per lease lifetime: between one per lease and
			// one per half lease (Agent, the resolver and Proxy's cache
			// re-read at 67-90%).
			ok := perHour >= 0.9*perLease && perHour <= 2*perLease
			row.Verdict = fmt.Sprintf("%.2f leases per lease lifetime (target about 1: %s)", perHour/perLease, verdict(ok))
			if !ok && c.prefix == "flowcred/token/churn_proxy/" && !renewable {
				row.Verdict += "; the lease is not renewable, and Vault Proxy 1.14.8 caches only renewable leases"
			}
		case "none":
			row.Result = fmt.Sprintf("%d leases in %s", n, elapsed.Round(time.Second))
			row.Verdict = fmt.Sprintf("token_leases=false: no lease (target 0: %s)", verdict(n == 0))
		default:
			row.Verdict = fmt.Sprintf("%.0f leases per lease lifetime (the pattern to avoid)", perHour/perLease)
		}
		e.Table.Add(row)
	}
	return nil
}

// leaseRenewable reads path directly and says whether its lease is
// renewable.
func (e *Env) leaseRenewable(ctx context.Context, path string) (bool, error) {
	s, err := e.V.Client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return false, err
	}
	if s == nil {
		return false, fmt.Errorf("%s: no answer", path)
	}
	return s.Renewable, nil
}

// collectLeases adds the current leases under prefix, with their issue times,
// to seen.
func (e *Env) collectLeases(ctx context.Context, prefix string, seen map[string]time.Time) error {
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

// roundInterval keeps two or three significant digits of an interval.
func roundInterval(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
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
