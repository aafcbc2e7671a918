// Command vault-plugin-flowcred-prof is the flowcred plugin with a CPU
// profile written to $FLOWCRED_CPUPROFILE (Vault gives a plugin no pprof
// endpoint). Benchmarks register it instead of the plugin to see where the
// plugin process spends its time. The profile covers either
//   - the first $FLOWCRED_CPUPROFILE_SECONDS (default 30) seconds of the
//     plugin's life, or,
//   - with FLOWCRED_CPUPROFILE_ON_SIGNAL=1, the time from a SIGUSR1 to the
//     next SIGUSR2 (flowcred-bench -profile-signals sends them around the
//     measured phase of a workload); each SIGUSR1 starts the file afresh.
package main

import (
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	flowcred "github.com/flowcred/vault-plugin-flowcred"
)

func main() {
	if path := os.Getenv("FLOWCRED_CPUPROFILE"); path != "" {
		if os.Getenv("FLOWCRED_CPUPROFILE_ON_SIGNAL") == "1" {
			go profileOnSignal(path)
		} else {
			profileFirstSeconds(path)
		}
	}
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: flowcred.Factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	}); err != nil {
		fatal(err)
	}
}

func profileFirstSeconds(path string) {
	secs, err := strconv.Atoi(os.Getenv("FLOWCRED_CPUPROFILE_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 30
	}
	if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
		time.AfterFunc(time.Duration(secs)*time.Second, func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}
}

func profileOnSignal(path string) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	var f *os.File
	for s := range sigs {
		if f != nil { // either signal ends a running profile
			pprof.StopCPUProfile()
			f.Close()
			f = nil
		}
		if s == syscall.SIGUSR1 {
			var err error
			if f, err = os.Create(path); err != nil || pprof.StartCPUProfile(f) != nil {
				f = nil
			}
		}
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
