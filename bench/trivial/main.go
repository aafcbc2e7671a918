// Command trivial is the benchmarks' baseline: a Vault secrets plugin built
// the usual way (framework paths declared with Operations, served like
// flowcred's cmd) that does nothing but answer. trivial/leased answers a
// fixed token read under a non-renewable lease; trivial/unleased answers the
// same data with ttl and rotation_period and no lease; trivial/renewable/<name>
// answers it under a renewable lease of ?ttl= seconds (default the same) whose
// renewals never move its end, the shape Vault Proxy's cache keeps (it
// passes non-renewable leases through). flowcred-bench builds it from this
// file, registers it next to flowcred and reads all three.
package main

import (
	"context"
	"fmt"
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
	}, Renew: renew}
	read := func(leased, renewable bool) framework.OperationFunc {
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
			ttl := lease
			if t, ok := d.GetOk("ttl"); ok && renewable && t.(int) > 0 {
				ttl = time.Duration(t.(int)) * time.Second
			}
			internal := map[string]interface{}{"handle": "trivial"}
			if renewable {
				internal["end"] = time.Now().Add(ttl).Format(time.RFC3339Nano)
			}
			resp := b.Secret(secret.Type).Response(data, internal)
			resp.Secret.TTL, resp.Secret.MaxTTL = ttl, ttl
			resp.Secret.Renewable = renewable
			return resp, nil
		}
	}
	b.Paths = []*framework.Path{
		{Pattern: "leased$", Operations: map[logical.Operation]framework.OperationHandler{logical.ReadOperation: &framework.PathOperation{Callback: read(true, false)}}},
		{Pattern: "unleased$", Operations: map[logical.Operation]framework.OperationHandler{logical.ReadOperation: &framework.PathOperation{Callback: read(false, false)}}},
		{
			Pattern:    "renewable/" + framework.GenericNameRegex("name"),
			Fields:     map[string]*framework.FieldSchema{"name": {Type: framework.TypeString}, "ttl": {Type: framework.TypeInt}},
			Operations: map[logical.Operation]framework.OperationHandler{logical.ReadOperation: &framework.PathOperation{Callback: read(true, true)}},
		},
	}
	b.Secrets = []*framework.Secret{secret}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// renew grants what is left of the lease and never more: the data (a
// token) ends when the first answer said, so a renewal must not outlive it.
// Vault counts MaxTTL from the lease's issue time.
func renew(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	end, err := time.Parse(time.RFC3339Nano, fmt.Sprint(req.Secret.InternalData["end"]))
	left := time.Until(end)
	if err != nil || left <= 0 {
		return logical.ErrorResponse("the lease has ended"), nil
	}
	resp := &logical.Response{Secret: req.Secret}
	resp.Secret.TTL, resp.Secret.MaxTTL = left, end.Sub(req.Secret.IssueTime)
	return resp, nil
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
