// Command vault-plugin-flowcred serves the flowcred secrets engine to Vault.
package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	flowcred "github.com/flowcred/vault-plugin-flowcred"
)

func main() {
	meta := &api.PluginAPIClientMeta{}
	flags := meta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	tlsConfig := meta.GetTLSConfig()
	tlsProvider := api.VaultPluginTLSProvider(tlsConfig)
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: flowcred.Factory,
		TLSProviderFunc:    tlsProvider,
	}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
