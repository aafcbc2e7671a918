// Command vault-plugin-flowcred-prof is the flowcred plugin with a CPU
// profile: it writes $FLOWCRED_CPUPROFILE for the first
// $FLOWCRED_CPUPROFILE_SECONDS (default 30) seconds of its life. Benchmarks
// register it instead of the plugin to see where the plugin process spends
// its time (Vault gives a plugin no pprof endpoint).
package main

import (
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	flowcred "github.com/flowcred/vault-plugin-flowcred"
)

func main() {
	if path := os.Getenv("FLOWCRED_CPUPROFILE"); path != "" {
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

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
