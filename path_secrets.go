package flowcred

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// maxSecretBytes bounds a stored secret value (a Google key file is ~2.4 KiB).
const maxSecretBytes = 64 << 10

// secretEntry is a write-only secret value that bindings reference by name,
// stored at secrets/<name>.
type secretEntry struct {
	// Value is the secret itself. It is never returned by any read.
	Value string `json:"value"`
	// CreatedAt and UpdatedAt are shown by reads.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func pathSecrets(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: secretStoragePrefix + framework.GenericNameRegex("name") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixFlowcred,
				OperationSuffix: "secret",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeString,
					Description: "Name of the secret; bindings reference it as <field>_secret=<name>.",
					Required:    true,
				},
				"value": {
					Type:         framework.TypeString,
					Description:  "The secret value (a client secret, refresh token, private key, key file or API token). Write-only.",
					DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
				},
				"dry_run": {
					Type:        framework.TypeBool,
					Description: "Check the write and answer operation (create, update or unchanged) and the value's fingerprint, storing nothing.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathSecretRead,
					Summary:  "Read a secret's metadata (never its value).",
					Responses: map[int][]framework.Response{http.StatusOK: {{
						Description: "OK",
						Fields:      secretResponseFields,
					}}},
				},
				logical.UpdateOperation: withVerb(mutation(b.pathSecretWrite, "Store or replace a secret value.", dryRunResponse(secretDryRunFields)), "write"),
				logical.DeleteOperation: mutation(b.pathSecretDelete, "Delete a secret that no binding (and no webhook config) references.", noContent),
			},
			HelpSynopsis:    pathSecretsHelpSyn,
			HelpDescription: pathSecretsHelpDesc,
		},
		{
			Pattern: secretStoragePrefix + "?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixFlowcred,
				OperationSuffix: "secrets",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathSecretList,
					Summary:  "List stored secret names.",
				},
			},
			HelpSynopsis:    pathSecretsHelpSyn,
			HelpDescription: pathSecretsHelpDesc,
		},
	}
}

var secretResponseFields = map[string]*framework.FieldSchema{
	"name":       {Type: framework.TypeString, Required: true, Description: "The secret's name."},
	"created_at": {Type: framework.TypeString, Required: true, Description: "When the secret was first stored (RFC 3339)."},
	"updated_at": {Type: framework.TypeString, Required: true, Description: "When its value was last written (RFC 3339)."},
	// fingerprint is the HMAC-SHA256 of the value under the mount's key
	// (fingerprint.go): equal values have equal fingerprints.
	"fingerprint": {Type: framework.TypeString, Required: true, Description: "HMAC-SHA256 of the value under the mount's fingerprint key: equal values have equal fingerprints; the value is never shown."},
}

// getSecret returns the stored secret, or nil, nil when there is none.
func getSecret(ctx context.Context, s logical.Storage, name string) (*secretEntry, error) {
	return getJSON[secretEntry](ctx, s, secretStoragePrefix+name, fmt.Sprintf("secret %q", name))
}

func putSecret(ctx context.Context, s logical.Storage, name string, e *secretEntry) error {
	return putJSON(ctx, s, secretStoragePrefix+name, fmt.Sprintf("secret %q", name), e)
}

func (b *backend) pathSecretRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	e, err := getSecret(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, nil
	}
	key, err := fingerprintKey(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"name":        name,
		"created_at":  e.CreatedAt.UTC().Format(time.RFC3339),
		"updated_at":  e.UpdatedAt.UTC().Format(time.RFC3339),
		"fingerprint": fingerprintOf(key, e.Value),
	}}, nil
}

func (b *backend) pathSecretWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d, map[string]bool{"name": true}); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	// The path's pattern has no length limit; a longer name could be
	// written but never referenced.
	if ferr := validateName("name", name); ferr != nil {
		return ferr.response(), nil
	}
	raw, ok := d.Raw["value"]
	if !ok {
		return logical.ErrorResponse("missing value: a secret needs a non-empty value"), nil
	}
	value, isString := raw.(string)
	if !isString {
		return logical.ErrorResponse("invalid value: must be a string"), nil
	}
	if value == "" {
		return logical.ErrorResponse("missing value: a secret needs a non-empty value"), nil
	}
	if len(value) > maxSecretBytes {
		return logical.ErrorResponse("invalid value: %d bytes is more than the limit of %d", len(value), maxSecretBytes), nil
	}
	dryRun := false
	if _, ok := d.Raw["dry_run"]; ok {
		dryRun = d.Get("dry_run").(bool)
	}

	// Hold refsLock for reading so a concurrent delete cannot interleave.
	b.refsLock.RLock()
	defer b.refsLock.RUnlock()
	now := b.now().UTC()
	e, err := getSecret(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	op := "create"
	if e != nil {
		op = "update"
		if subtle.ConstantTimeCompare([]byte(e.Value), []byte(value)) == 1 {
			op = "unchanged"
		}
	}
	if dryRun {
		key, err := fingerprintKey(ctx, req.Storage)
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: map[string]interface{}{
			"dry_run":     true,
			"name":        name,
			"operation":   op,
			"fingerprint": fingerprintOf(key, value),
		}}, nil
	}
	if op == "unchanged" {
		// The stored value is the same: nothing to store, and nothing
		// cached from it to reload.
		return nil, nil
	}
	if e == nil {
		e = &secretEntry{CreatedAt: now}
	}
	e.Value = value
	e.UpdatedAt = now
	if err := putSecret(ctx, req.Storage, name, e); err != nil {
		return nil, err
	}
	b.secretsEpoch.Add(1)
	return nil, nil
}

func (b *backend) pathSecretDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.refsLock.Lock()
	defer b.refsLock.Unlock()
	users, err := bindingsReferencing(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return logical.ErrorResponse("secret %q is referenced by bindings %s; change or delete them first",
			name, strings.Join(users, ", ")), nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg.WebhookSecretRef == name {
		return logical.ErrorResponse("secret %q signs the webhooks (config webhook_secret_secret); change the config first", name), nil
	}
	if err := req.Storage.Delete(ctx, secretStoragePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting secret %q: %w", name, err)
	}
	b.secretsEpoch.Add(1)
	return nil, nil
}

func (b *backend) pathSecretList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	keys, err := req.Storage.List(ctx, secretStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing secrets: %w", err)
	}
	// A secret name has no "/": an entry with one is the plugin's own
	// (the fingerprint key, fingerprint.go).
	names := keys[:0]
	for _, k := range keys {
		if !strings.Contains(k, "/") {
			names = append(names, k)
		}
	}
	return logical.ListResponse(names), nil
}

// bindingsReferencing lists the handles whose binding references a secret.
// It reads every binding; deleting a secret is rare.
func bindingsReferencing(ctx context.Context, s logical.Storage, name string) ([]string, error) {
	handles, err := s.List(ctx, bindingStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing bindings: %w", err)
	}
	var users []string
	for _, h := range handles {
		be, err := getBinding(ctx, s, h)
		if err != nil {
			return nil, err
		}
		if be == nil {
			continue
		}
		for _, ref := range be.Refs {
			if ref == name {
				users = append(users, h)
				break
			}
		}
	}
	sort.Strings(users)
	return users, nil
}

const pathSecretsHelpSyn = "Write-only secret values that bindings reference by name."

const pathSecretsHelpDesc = `
A stored secret holds one value (a client secret, a refresh token, a private
key, a Google key file, an API token). Bindings reference it as
<field>_secret=<name>, for example client_secret_secret=gcp_client_secret.
Reads return only the name, timestamps and the value's fingerprint (an
HMAC-SHA256 under a key of this mount that never leaves storage), never the
value. A write with dry_run=true answers operation (create, update or
unchanged) and the fingerprint of the value it carries, and stores nothing;
a write of the value already stored stores nothing. A secret that a
binding references cannot be deleted; the error lists those bindings.
`
