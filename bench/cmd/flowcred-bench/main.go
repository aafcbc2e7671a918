// Command flowcred-bench runs flowcred's end-to-end benchmarks: a real Vault
// (dev server and one node with integrated storage) with the plugin and, as
// the baseline, a trivial plugin it builds from bench/trivial, and a real
// OAuth2 server, all on loopback. It prints one Markdown table.
//
//	flowcred-bench -vault $(scripts/get-vault.sh) -plugin DIR/vault-plugin-flowcred [-smoke] [-gobench FILE]
//
// scripts/bench.sh builds the binaries and runs it; see BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/bench"
)

func main() {
	var (
		vaultBin  = flag.String("vault", os.Getenv("FLOWCRED_VAULT_BIN"), "Vault v1.14.8 server binary")
		pluginBin = flag.String("plugin", os.Getenv("FLOWCRED_PLUGIN_BIN"), "the flowcred plugin binary")
		smoke     = flag.Bool("smoke", false, "tiny sizes and durations (CI)")
		storages  = flag.String("storages", "dev,raft", "comma-separated: dev, raft")
		goBench   = flag.String("gobench", "", "output of `go test -bench -benchmem` to fold into the table")
		workDir   = flag.String("workdir", "", "scratch directory (default: a new temp dir, removed at exit)")
		out       = flag.String("out", "", "also write the table to this file")
		steps     = flag.String("steps", "", "comma-separated workloads to run (reads, refresh, expiry, scale, churn); default all")
		cell      = flag.Duration("cell", 0, "override the duration of each read cell")
		trivial   = flag.String("trivial", "", "the trivial baseline plugin (go build ./bench/trivial); default: built into the work dir")
		pluginEnv = flag.String("plugin-env", "", "comma-separated KEY=VALUE added to the plugin's environment (e.g. FLOWCRED_CPUPROFILE=/tmp/plugin.prof with vault-plugin-flowcred-prof)")
		profSig   = flag.Bool("profile-signals", false, "profile the plugin only while the refresh overhead is measured: adds FLOWCRED_CPUPROFILE_ON_SIGNAL=1 to the plugin's environment and sends it SIGUSR1/SIGUSR2 (with -plugin vault-plugin-flowcred-prof and -plugin-env FLOWCRED_CPUPROFILE=FILE)")
	)
	flag.Parse()
	if *vaultBin == "" || *pluginBin == "" {
		fmt.Fprintln(os.Stderr, "flowcred-bench: -vault and -plugin are required")
		flag.Usage()
		os.Exit(2)
	}
	cfg := bench.Full()
	if *smoke {
		cfg = bench.Smoke()
	}
	cfg.Storages = strings.Split(*storages, ",")
	if *steps != "" {
		cfg.Steps = strings.Split(*steps, ",")
	}
	if *cell > 0 {
		cfg.CellDuration = *cell
	}

	dir := *workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "flowcred-bench-")
		if err != nil {
			fatal(err)
		}
		dir = d
		defer os.RemoveAll(d)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	t := &bench.Table{}
	if *goBench != "" {
		f, err := os.Open(*goBench)
		if err != nil {
			fatal(err)
		}
		gbs, err := bench.ParseGoBench(f)
		f.Close()
		if err != nil {
			fatal(err)
		}
		for _, g := range gbs {
			t.Add(g.Row())
		}
	}
	m := bench.DescribeMachine()
	start := time.Now()
	load0 := bench.LoadAvg()
	opts := bench.Options{Cfg: cfg, VaultBin: *vaultBin, PluginBin: *pluginBin, TrivialBin: *trivial, WorkDir: dir, Table: t}
	if *pluginEnv != "" {
		opts.PluginEnv = strings.Split(*pluginEnv, ",")
	}
	if *profSig {
		opts.ProfileSignals = true
		opts.PluginEnv = append(opts.PluginEnv, "FLOWCRED_CPUPROFILE_ON_SIGNAL=1")
	}
	err := bench.RunAll(ctx, opts)

	var sb strings.Builder
	mode := "full"
	if *smoke {
		mode = "smoke"
	}
	fmt.Fprintf(&sb, "flowcred benchmarks (%s), %s, %s\n", mode, start.UTC().Format(time.RFC3339), time.Since(start).Round(time.Second))
	fmt.Fprintf(&sb, "machine: %d CPUs (%s), %s memory, Linux %s, %s; load average %s at start, %s at end\n\n",
		m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, m.GoVer, load0, bench.LoadAvg())
	t.Print(&sb)
	fmt.Print(sb.String())
	if *out != "" {
		if werr := os.WriteFile(*out, []byte(sb.String()), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "flowcred-bench:", werr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowcred-bench:", err)
		if *workDir == "" {
			os.RemoveAll(dir) // os.Exit skips the deferred removal
		}
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "flowcred-bench:", err)
	os.Exit(1)
}
