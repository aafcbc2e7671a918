package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// The targets for token reads (issue 14 items 5 and 6): flowcred's
// leased read against the trivial plugin's leased read and its unleased
// read against the trivial unleased read, at every concurrency on both
// storages; and a cached leased read beating the trivial leased read by
// targetBeyond at one client on the dev server.
const (
	targetAB     = 0.95
	targetBeyond = 1.10
)

// setupReadHandles binds APIHandles api_token handles and OAuthHandles
// oauth2.refresh_token handles (each with its own refresh token at the
// OAuth2 server) on the mount and reads each once, so that every token is
// cached. It returns the token paths.
func (e *Env) setupReadHandles(ctx context.Context, mount string) ([]string, error) {
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
			return mount + "/bindings/" + handle(i), map[string]interface{}{
				"kind": "api_token", "token": fmt.Sprintf("bench-api-token-%d-SECRET", i),
				"extra_headers": map[string]string{"x-bench": "1"},
			}
		}
		return mount + "/bindings/" + handle(i), map[string]interface{}{
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
		paths[i] = mount + "/token/" + handle(i)
	}
	// Pre-warm: every oauth2 handle gets its token now, not during the run.
	if err := e.readAll(ctx, 8, paths); err != nil {
		return nil, err
	}
	return paths, nil
}

// readWorkload is one kind of read in the interleaved rounds.
type readWorkload struct {
	key, name string
	op        func(ctx context.Context, seq int) error
}

// readRatio is a ratio reported in the verdict column of row key: num/den,
// against target when target > 0.
type readRatio struct {
	key, num, den string
	target        float64
	note          string
}

// readRatios are the verdicts of the read rows.
var readRatios = []readRatio{
	{key: "a", num: "a", den: "b", target: targetAB},
	{key: "n", num: "n", den: "u", target: targetAB},
	{key: "u", num: "u", den: "b", note: "the trivial read without and with a lease"},
	{key: "p", num: "p", den: "a", note: "through Vault Proxy against direct"},
	{key: "q", num: "q", den: "n", note: "through Vault Proxy against direct"},
	{key: "r", num: "r", den: "b", note: "answered from Proxy's cache"},
}

// Reads measures, with the same server and Go client, at each concurrency,
// in interleaved rounds: (a) cached token reads over many handles of the
// leased mount and (n) of the unleased mount (token_leases=false); the
// trivial plugin (bench/trivial, a plugin written the usual way that does
// nothing but answer) with (b) a leased and (u) an unleased read; (c) a
// kv-v2 read; and through a real Vault Proxy (examples/proxy): (p) the
// leased and (q) the unleased token reads and (r) the trivial plugin's
// renewable lease, the one kind Proxy's cache keeps.
func (e *Env) Reads(ctx context.Context) error {
	cfg := e.Cfg
	leased, err := e.setupReadHandles(ctx, "flowcred")
	if err != nil {
		return err
	}
	unleased, err := e.setupReadHandles(ctx, unleasedMount)
	if err != nil {
		return err
	}
	if err := e.write(ctx, e.Reader.Client, "secret/data/bench", map[string]interface{}{
		"data": map[string]string{"value": "not-a-secret"},
	}); err != nil {
		return err
	}
	px, err := e.proxy(ctx)
	if err != nil {
		return err
	}
	get := func(r *Reader, paths ...string) func(ctx context.Context, seq int) error {
		return func(ctx context.Context, seq int) error { return r.Get(ctx, paths[seq%len(paths)]) }
	}
	nh := len(leased)
	workloads := []readWorkload{
		{"a", fmt.Sprintf("(a) flowcred leased, %d handles", nh), get(e.Reader, leased...)},
		{"n", fmt.Sprintf("(n) flowcred unleased, %d handles", nh), get(e.Reader, unleased...)},
		{"b", "(b) trivial leased", get(e.Reader, trivialMount+"/leased")},
		{"u", "(u) trivial unleased", get(e.Reader, trivialMount+"/unleased")},
		{"c", "(c) kv-v2 read", get(e.Reader, "secret/data/bench")},
		{"p", fmt.Sprintf("(p) flowcred leased via Proxy, %d handles", nh), get(px, leased...)},
		{"q", fmt.Sprintf("(q) flowcred unleased via Proxy, %d handles", nh), get(px, unleased...)},
		{"r", "(r) trivial renewable via Proxy", get(px, trivialMount+"/renewable/bench")},
	}
	// Warm-up: connections, caches, the GC's steady state, Proxy's cache.
	for _, w := range workloads {
		if r := Run(ctx, 8, 2000, 500*time.Millisecond, w.op); r.Errors > 0 {
			return fmt.Errorf("warm-up %s: %w", w.name, r.FirstErr)
		}
	}
	for _, c := range cfg.Concurrency {
		if err := e.readCells(ctx, workloads, c); err != nil {
			return err
		}
	}
	return nil
}

// readCells runs every workload at c clients in Rounds interleaved rounds
// and adds their rows.
func (e *Env) readCells(ctx context.Context, workloads []readWorkload, c int) error {
	cfg := e.Cfg
	results := map[string]*Result{}
	// Ratios of each round: the workloads ran close together, so a ratio
	// per round is less exposed to the machine's drift than the totals.
	perRound := map[string][]float64{}
	for round := 0; round < cfg.Rounds; round++ {
		tput := map[string]float64{}
		// Rotate the order each round so no workload always goes first.
		for k := range workloads {
			w := workloads[(k+round)%len(workloads)]
			r := Run(ctx, c, cfg.CellMax/cfg.Rounds, cfg.CellDuration/time.Duration(cfg.Rounds), w.op)
			if r.Errors > 0 {
				return fmt.Errorf("%s at %d clients: %d errors: %w", w.name, c, r.Errors, r.FirstErr)
			}
			tput[w.key] = r.Throughput()
			if results[w.key] == nil {
				results[w.key] = &Result{}
			}
			results[w.key].Merge(r)
		}
		for _, q := range readRatios {
			perRound[q.key] = append(perRound[q.key], tput[q.num]/tput[q.den])
		}
	}
	total := func(key string) float64 { return results[key].Throughput() }
	for _, w := range workloads {
		r := results[w.key]
		row := Row{
			Area: "reads", Storage: e.V.Storage,
			Case:   fmt.Sprintf("%s, %s", w.name, plural(c, "client")),
			Result: fmt.Sprintf("%s req/s, p50 %s, p99 %s (n=%s)", thousands(int64(r.Throughput())), ms(r.Quantile(0.5)), ms(r.Quantile(0.99)), thousands(int64(r.Requests))),
		}
		var parts []string
		for _, q := range readRatios {
			if q.key != w.key {
				continue
			}
			ratio := total(q.num) / total(q.den)
			rounds := append([]float64(nil), perRound[q.key]...)
			sort.Float64s(rounds)
			spread := fmt.Sprintf("per-round median %.2f, range %.2f–%.2f", rounds[len(rounds)/2], rounds[0], rounds[len(rounds)-1])
			switch {
			case q.target > 0:
				parts = append(parts, fmt.Sprintf("%s/%s %.2f (target ≥ %.2f: %s; %s)", q.num, q.den, ratio, q.target, verdict(ratio >= q.target), spread))
			default:
				parts = append(parts, fmt.Sprintf("%s/%s %.2f (%s; %s)", q.num, q.den, ratio, q.note, spread))
			}
			if w.key == "a" && c == 1 && e.V.Storage == StorageDev {
				parts = append(parts, fmt.Sprintf("item 6: a/b ≥ %.2f: %s", targetBeyond, verdict(ratio >= targetBeyond)))
			}
		}
		switch w.key {
		case "a":
			parts = append(parts, fmt.Sprintf("a/c %.2f", total("a")/total("c")))
		case "n":
			parts = append(parts, fmt.Sprintf("n/a %.2f", total("n")/total("a")))
		}
		row.Verdict = strings.Join(parts, "; ")
		e.Table.Add(row)
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
