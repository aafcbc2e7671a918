package bench

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// targetAB is the target for token reads against the baseline, the
// trivial plugin's leased read.
const targetAB = 0.95

// setupReadHandles binds APIHandles api_token handles and OAuthHandles
// oauth2.refresh_token handles (each with its own refresh token at the
// OAuth2 server) and reads each once, so that every token is cached.
func (e *Env) setupReadHandles(ctx context.Context) ([]string, error) {
	cfg := e.Cfg
	n := cfg.APIHandles + cfg.OAuthHandles
	rts := make([]string, cfg.OAuthHandles)
	for i := range rts {
		rt, err := e.OAuth.MintRefreshToken(oauthtest.ClientRTBasic, "")
		if err != nil {
			return nil, err
		}
		rts[i] = rt
	}
	handle := func(i int) string {
		if i < cfg.APIHandles {
			return fmt.Sprintf("api%04d", i)
		}
		return fmt.Sprintf("oauth%04d", i-cfg.APIHandles)
	}
	_, err := e.writeMany(ctx, 8, 0, n, func(i int) (string, map[string]interface{}) {
		if i < cfg.APIHandles {
			return "flowcred/bindings/" + handle(i), map[string]interface{}{
				"kind": "api_token", "token": fmt.Sprintf("bench-api-token-%d-SECRET", i),
				"extra_headers": map[string]string{"x-bench": "1"},
			}
		}
		return "flowcred/bindings/" + handle(i), map[string]interface{}{
			"kind": "oauth2.refresh_token", "client_id": oauthtest.ClientRTBasic,
			"client_secret": oauthtest.SecretRTBasic, "refresh_token": rts[i-cfg.APIHandles],
			"token_url": e.OAuth.TokenURL, "auth_style": "header",
		}
	})
	if err != nil {
		return nil, err
	}
	paths := make([]string, n)
	for i := range paths {
		paths[i] = "flowcred/token/" + handle(i)
	}
	// Pre-warm: every oauth2 handle gets its token now, not during the run.
	if err := e.readAll(ctx, 8, paths); err != nil {
		return nil, err
	}
	return paths, nil
}

// Reads measures (a) cached token reads over many handles, (b) the trivial
// plugin's leased read (the baseline: a plugin written the usual way that
// does nothing but answer, bench/trivial), (c) a kv-v2 read and (u) the
// trivial plugin's unleased read, with the same server and client, at each
// concurrency.
func (e *Env) Reads(ctx context.Context) error {
	cfg := e.Cfg
	paths, err := e.setupReadHandles(ctx)
	if err != nil {
		return err
	}
	if err := e.write(ctx, e.Reader.Client, "secret/data/bench", map[string]interface{}{
		"data": map[string]string{"value": "not-a-secret"},
	}); err != nil {
		return err
	}
	workloads := []struct {
		name string
		op   func(ctx context.Context, seq int) error
	}{
		{fmt.Sprintf("(a) token/<h>, %d handles", len(paths)), func(ctx context.Context, seq int) error {
			return e.Reader.Get(ctx, paths[seq%len(paths)])
		}},
		{"(b) trivial leased", func(ctx context.Context, seq int) error {
			return e.Reader.Get(ctx, trivialMount+"/leased")
		}},
		{"(c) kv-v2 read", func(ctx context.Context, seq int) error {
			return e.Reader.Get(ctx, "secret/data/bench")
		}},
		{"(u) trivial unleased", func(ctx context.Context, seq int) error {
			return e.Reader.Get(ctx, trivialMount+"/unleased")
		}},
	}
	// Warm-up: connections, caches, the JIT-free but GC-full steady state.
	for _, w := range workloads {
		if r := Run(ctx, 8, 2000, 500*time.Millisecond, w.op); r.Errors > 0 {
			return fmt.Errorf("warm-up %s: %w", w.name, r.FirstErr)
		}
	}
	for _, c := range cfg.Concurrency {
		results := make([]Result, len(workloads))
		// a/b of each round: the two ran back to back, so a ratio per round
		// is less exposed to the machine's drift than the totals.
		var roundAB []float64
		for round := 0; round < cfg.Rounds; round++ {
			tput := make([]float64, len(workloads))
			// Rotate the order each round so no workload always goes first.
			for k := range workloads {
				i := (k + round) % len(workloads)
				r := Run(ctx, c, cfg.CellMax/cfg.Rounds, cfg.CellDuration/time.Duration(cfg.Rounds), workloads[i].op)
				if r.Errors > 0 {
					return fmt.Errorf("%s at %d clients: %d errors: %w", workloads[i].name, c, r.Errors, r.FirstErr)
				}
				tput[i] = r.Throughput()
				results[i].Merge(r)
			}
			roundAB = append(roundAB, tput[0]/tput[1])
		}
		a, b, kv, u := results[0].Throughput(), results[1].Throughput(), results[2].Throughput(), results[3].Throughput()
		sort.Float64s(roundAB)
		medAB := roundAB[len(roundAB)/2]
		for i, w := range workloads {
			r := results[i]
			row := Row{
				Area: "reads", Storage: e.V.Storage,
				Case:   fmt.Sprintf("%s, %s", w.name, plural(c, "client")),
				Result: fmt.Sprintf("%s req/s, p50 %s, p99 %s (n=%s)", thousands(int64(r.Throughput())), ms(r.Quantile(0.5)), ms(r.Quantile(0.99)), thousands(int64(r.Requests))),
			}
			switch i {
			case 0:
				row.Verdict = fmt.Sprintf("a/b %.2f (target ≥ %.2f: %s; per-round median %.2f, range %.2f–%.2f), a/c %.2f",
					a/b, targetAB, verdict(a/b >= targetAB), medAB, roundAB[0], roundAB[len(roundAB)-1], a/kv)
			case 3:
				row.Verdict = fmt.Sprintf("u/b %.2f (the trivial read without and with a lease)", u/b)
			}
			e.Table.Add(row)
		}
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
