package flowcred

import (
	"context"
	"os"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// benchBaselineEnv enables bench/baseline, a read that does nothing beyond
// Vault's routing, the plugin hop and a lease of the same shape as a
// token read. Benchmarks compare token reads against it. Register the
// plugin with -env FLOWCRED_BENCH_BASELINE=1 to enable it.
const benchBaselineEnv = "FLOWCRED_BENCH_BASELINE"

func pathBench(b *backend) []*framework.Path {
	if os.Getenv(benchBaselineEnv) != "1" {
		return nil
	}
	headers := map[string]string{"Authorization": "Bearer baseline-token"}
	return []*framework.Path{{
		Pattern: "bench/baseline$",
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
					now := b.now()
					m := &material{
						handle: "baseline", kind: "oauth2.refresh_token",
						accessToken: "baseline-token", tokenType: "Bearer",
						obtainedAt: now, expiry: now.Add(time.Hour), headers: headers,
					}
					return b.tokenResponse(m, defaultConfig(), 0, now), nil
				},
				Unpublished: true,
			},
		},
		HelpSynopsis: "Benchmark baseline: a fixed leased response (enabled by " + benchBaselineEnv + "=1).",
	}}
}
