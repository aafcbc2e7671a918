package flowcred

import (
	"context"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// metrics/: the plugin's Prometheus metrics (metrics.go), text format.
func pathMetrics(b *backend) *framework.Path {
	return &framework.Path{
		Pattern:      "metrics$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixFlowcred, OperationVerb: "read", OperationSuffix: "metrics"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathMetricsRead,
				Summary:  "This node's metrics in the Prometheus text format (version 0.0.4). Never a secret.",
			},
		},
		HelpSynopsis:    "Prometheus metrics of the plugin on this node.",
		HelpDescription: "Counters are per node (scrape every node); the bindings gauge is what this node knows of storage. A Prometheus job reads it with a Vault token whose policy allows read on <mount>/metrics (bearer_token_file).",
	}
}

func (b *backend) pathMetricsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	body, err := b.metrics.exposition()
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPContentType: "text/plain; version=0.0.4; charset=utf-8",
		logical.HTTPRawBody:     body,
		logical.HTTPStatusCode:  http.StatusOK,
	}}, nil
}
