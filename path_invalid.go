package flowcred

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// pathInvalidNames answers requests whose handle or secret name does not
// match the name pattern with a 400 that names the field, instead of
// Vault's generic "unsupported path". They come after the real paths.
func pathInvalidNames(b *backend) []*framework.Path {
	mk := func(prefix, field string) *framework.Path {
		return &framework.Path{
			Pattern: prefix + "(?P<" + field + ">.+)$",
			Fields: map[string]*framework.FieldSchema{
				field: {Type: framework.TypeString, Description: "An invalid " + field + "."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   &framework.PathOperation{Callback: invalidName(field), Unpublished: true},
				logical.UpdateOperation: &framework.PathOperation{Callback: invalidName(field), Unpublished: true},
				logical.DeleteOperation: &framework.PathOperation{Callback: invalidName(field), Unpublished: true},
			},
			HelpSynopsis: "Invalid " + field + ".",
		}
	}
	return []*framework.Path{
		mk(bindingStoragePrefix, "handle"),
		mk(secretStoragePrefix, "name"),
		mk("token/", "handle"),
	}
}

func invalidName(field string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		v, _ := d.Raw[field].(string)
		if v == "" {
			v = d.Get(field).(string)
		}
		if ferr := validateName(field, v); ferr != nil {
			return ferr.response(), nil
		}
		return logical.ErrorResponse("unsupported path %q", req.Path), nil
	}
}
