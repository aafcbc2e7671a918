package flowcred

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	defaultHealthLimit = 100
	maxHealthLimit     = 1000
)

// health/: counts by health and the bindings that are not ok (health.go).
func pathHealth(b *backend) *framework.Path {
	return &framework.Path{
		Pattern:      "health$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixFlowcred, OperationVerb: "read", OperationSuffix: "health"},
		Fields: map[string]*framework.FieldSchema{
			"after": {Type: framework.TypeString, Query: true, Description: "List bindings after this handle (the previous page's next)."},
			"limit": {Type: framework.TypeInt, Query: true, Description: "Bindings per page, at most 1000. Default 100.", Default: defaultHealthLimit},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathHealthRead,
				Summary:  "Counts of bindings by health, the bindings that are not ok (paginated), and the webhook delivery log.",
				Responses: map[int][]framework.Response{200: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
					"counts":   {Type: framework.TypeMap, Required: true, Description: "health -> number of bindings"},
					"bindings": {Type: framework.TypeSlice, Required: true, Description: "{handle, kind, health, last_error_code, last_error_at, reauth_due_at}"},
					"next":     {Type: framework.TypeString, Description: "Pass as after for the next page; absent at the end."},
					"webhook":  {Type: framework.TypeMap, Required: true, Description: "last_success_at, last_failure_at, last_failure, pending"},
				}}}},
			},
		},
		HelpSynopsis:    "The mount's bindings by health.",
		HelpDescription: "Reads the health index, which changes only when a binding's health does: the cost is that of the entries listed, not of the number of bindings.",
	}
}

func (b *backend) pathHealthRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	limit := d.Get("limit").(int)
	if limit < 1 || limit > maxHealthLimit {
		return logical.ErrorResponse("invalid limit %d: must be between 1 and %d", limit, maxHealthLimit), nil
	}
	after := d.Get("after").(string)
	rows, next, err := b.healthPage(ctx, req.Storage, after, limit)
	if err != nil {
		return nil, err
	}
	counts := map[string]interface{}{}
	for h, n := range b.health.countsNow() {
		counts[h] = n
	}
	data := map[string]interface{}{"counts": counts, "bindings": rows, "webhook": b.webhookStatusNow(ctx, req.Storage)}
	if next != "" {
		data["next"] = next
	}
	return &logical.Response{Data: data}, nil
}
