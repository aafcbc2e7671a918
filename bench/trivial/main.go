// Command trivial is the benchmarks' baseline: a Vault secrets plugin built
// the usual way (framework paths declared with Operations, served like
// flowcred's cmd) that does nothing but answer. trivial/leased answers a
// fixed token read under a non-renewable lease; trivial/unleased answers the
// same data with ttl and rotation_period and no lease. flowcred-bench builds
// it from this file, registers it next to flowcred and reads both.
package main

import (
	"context"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

// lease is a one-hour token's lease with a five-minute margin.
const lease = 55 * time.Minute

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	}); err != nil {
		fatal(err)
	}
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := &framework.Backend{BackendType: logical.TypeLogical}
	secret := &framework.Secret{Type: "trivial_token", Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
		return nil, nil
	}}
	read := func(leased bool) framework.OperationFunc {
		return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
			expiry := time.Now().Add(time.Hour)
			data := map[string]interface{}{
				"handle": "trivial", "kind": "oauth2.refresh_token", "access_token": "trivial-token", "token_type": "Bearer",
				"expires_at": expiry.UTC().Format(time.RFC3339), "expires_in": int64(time.Hour / time.Second),
				"headers": map[string]string{"Authorization": "Bearer trivial-token"},
			}
			if !leased {
				data["ttl"], data["rotation_period"] = int64(lease/time.Second), int64(time.Hour/time.Second)
				return &logical.Response{Data: data}, nil
			}
			resp := b.Secret(secret.Type).Response(data, map[string]interface{}{"handle": "trivial"})
			resp.Secret.TTL, resp.Secret.MaxTTL = lease, lease
			return resp, nil
		}
	}
	b.Paths = []*framework.Path{
		{Pattern: "leased$", Operations: map[logical.Operation]framework.OperationHandler{logical.ReadOperation: &framework.PathOperation{Callback: read(true)}}},
		{Pattern: "unleased$", Operations: map[logical.Operation]framework.OperationHandler{logical.ReadOperation: &framework.PathOperation{Callback: read(false)}}},
	}
	b.Secrets = []*framework.Secret{secret}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
