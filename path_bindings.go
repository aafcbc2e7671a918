package flowcred

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// bindingEntry is a handle's binding, stored seal-wrapped at bindings/<handle>.
type bindingEntry struct {
	// Kind is a registered kind (kinds.go); fixed at creation.
	Kind string `json:"kind"`
	// Description is free text for operators.
	Description string `json:"description,omitempty"`
	// Plain holds the kind's non-secret string fields (token_url, auth_style,
	// issuer, header, scheme, ...). Presence matters: scheme="" means "send
	// the bare token", an absent scheme means the default.
	Plain map[string]string `json:"plain,omitempty"`
	// Scopes requested upstream.
	Scopes []string `json:"scopes,omitempty"`
	// TokenParams are extra token-request parameters (client credentials).
	TokenParams map[string]string `json:"token_params,omitempty"`
	// ExtraHeaders are non-secret headers added to the material.
	ExtraHeaders map[string]string `json:"extra_headers,omitempty"`
	// TTL caps the lease; for a static token it is the lease length. Zero means default.
	TTL time.Duration `json:"ttl,omitempty"`
	// Inline holds secret-capable fields given by value. Never returned.
	Inline map[string]string `json:"inline,omitempty"`
	// Refs maps a secret-capable field to the name of a stored secret.
	Refs map[string]string `json:"refs,omitempty"`
	// ID is random, set when the binding is created; token state belongs
	// to the binding with its ID (empty for bindings stored before IDs).
	ID string `json:"id,omitempty"`
	// Generation increases on every write; cached tokens obtained under an
	// older generation are not served.
	Generation uint64 `json:"generation"`
	// CreatedAt and UpdatedAt are shown by reads.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// hasInput reports whether a secret-capable or plain field is set.
func (e *bindingEntry) hasInput(field string) bool {
	if _, ok := e.Inline[field]; ok {
		return true
	}
	if _, ok := e.Refs[field]; ok {
		return true
	}
	if field == "scopes" {
		return len(e.Scopes) > 0
	}
	_, ok := e.Plain[field]
	return ok
}

// tokenURL is the effective token endpoint.
func (e *bindingEntry) tokenURL() string {
	if u := e.Plain["token_url"]; u != "" {
		return u
	}
	if k := kindOf(e.Kind); k != nil {
		return k.tokenURL
	}
	return ""
}

func getBinding(ctx context.Context, s logical.Storage, handle string) (*bindingEntry, error) {
	return getJSON[bindingEntry](ctx, s, bindingStoragePrefix+handle, fmt.Sprintf("binding %q", handle))
}

func putBinding(ctx context.Context, s logical.Storage, handle string, e *bindingEntry) error {
	return putJSON(ctx, s, bindingStoragePrefix+handle, fmt.Sprintf("binding %q", handle), e)
}

func pathBindings(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			// Before bindings/<handle>: the refresh action is its own path.
			Pattern: bindingStoragePrefix + framework.GenericNameRegex("handle") + "/refresh$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixFlowcred,
				OperationSuffix: "binding",
				OperationVerb:   "refresh",
			},
			Fields: map[string]*framework.FieldSchema{
				"handle": {Type: framework.TypeString, Description: "The credential handle.", Required: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: mutation(b.pathBindingRefresh, "Refresh a handle's token now; returns the status, never the token.", statusResponse),
			},
			HelpSynopsis:    "Refresh a handle's token now.",
			HelpDescription: "Obtains a new token from the provider even if the cached one is still fresh, and answers the binding's status (health, expiry, last error). The token itself is only ever returned by token/<handle>.",
		},
		{
			Pattern: bindingStoragePrefix + framework.GenericNameRegex("handle") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixFlowcred,
				OperationSuffix: "binding",
			},
			Fields:         bindingWriteFieldSchemas(),
			ExistenceCheck: b.pathBindingExistenceCheck,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathBindingRead,
					Summary:   "Read a binding: its kind, non-secret fields, secret references and status. Never a secret value.",
					Responses: bindingReadResponse(),
				},
				logical.CreateOperation: withVerb(mutation(b.pathBindingWrite, "Bind a handle to credential material.", dryRunResponse(bindingDryRunFields)), "create"),
				logical.UpdateOperation: withVerb(mutation(b.pathBindingWrite, "Update a binding; omitted fields keep their values, the kind cannot change.", dryRunResponse(bindingDryRunFields)), "update"),
				logical.DeleteOperation: mutation(b.pathBindingDelete, "Delete a binding and its cached token (revoking its refresh token first with revoke_on_delete).", noContent),
			},
			HelpSynopsis:    pathBindingsHelpSyn,
			HelpDescription: pathBindingsHelpDesc,
		},
		{
			Pattern: bindingStoragePrefix + "?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixFlowcred,
				OperationSuffix: "bindings",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathBindingList,
					Summary:  "List bound handles.",
				},
			},
			HelpSynopsis:    pathBindingsHelpSyn,
			HelpDescription: pathBindingsHelpDesc,
		},
	}
}

func (b *backend) pathBindingExistenceCheck(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	e, err := getBinding(ctx, req.Storage, d.Get("handle").(string))
	if err != nil {
		return false, err
	}
	return e != nil, nil
}

func (b *backend) pathBindingList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	keys, err := req.Storage.List(ctx, bindingStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing bindings: %w", err)
	}
	return logical.ListResponse(keys), nil
}

func (b *backend) pathBindingRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	handle := d.Get("handle").(string)
	e, err := getBinding(ctx, req.Storage, handle)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, nil
	}
	st, err := b.currentTokenState(ctx, req.Storage, handle, e)
	if err != nil {
		return nil, err
	}
	missing, err := missingSecrets(ctx, req.Storage, e)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: bindingResponseData(handle, e, st, missing)}, nil
}

// bindingResponseData renders a binding for reads. It never includes a
// secret value: inline secret fields are listed by name only.
func bindingResponseData(handle string, e *bindingEntry, st *tokenState, missing []string) map[string]interface{} {
	data := map[string]interface{}{
		"handle":      handle,
		"kind":        e.Kind,
		"description": e.Description,
		"ttl":         int64(e.TTL.Seconds()),
		"created_at":  e.CreatedAt.UTC().Format(time.RFC3339),
		"updated_at":  e.UpdatedAt.UTC().Format(time.RFC3339),
	}
	for k, v := range e.Plain {
		data[k] = v
	}
	if u := e.tokenURL(); u != "" {
		data["token_url"] = u
	}
	if len(e.Scopes) > 0 {
		data["scopes"] = e.Scopes
	}
	if len(e.TokenParams) > 0 {
		data["token_params"] = e.TokenParams
	}
	if len(e.ExtraHeaders) > 0 {
		data["extra_headers"] = e.ExtraHeaders
	}
	inline := make([]string, 0, len(e.Inline))
	for f := range e.Inline {
		inline = append(inline, f)
	}
	sort.Strings(inline)
	data["inline_fields"] = inline
	for f, ref := range e.Refs {
		data[f+secretRefSuffix] = ref
	}
	data["status"] = statusData(e, st, missing)
	return data
}

func (b *backend) pathBindingDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	handle := d.Get("handle").(string)
	// Unlike a write, a delete waits for a refresh in flight before it
	// deletes the token state, which the refresh could otherwise write back.
	// The handle's lock comes first (see the lock order in backend.go), so no
	// binding stripe is held while waiting on the handle.
	hc, err := b.handles.lock(ctx, handle)
	if err != nil {
		return nil, err
	}
	defer b.handles.unlock(handle, hc)
	lock := locksutil.LockForKey(b.bindingLocks, handle)
	lock.Lock()
	defer lock.Unlock()
	existing, err := getBinding(ctx, req.Storage, handle)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		force, _ := d.GetOk("force")
		f, _ := force.(bool)
		if err := b.revokeForDelete(ctx, req.Storage, handle, existing, hc.pending, f); err != nil {
			return readAnswer(err)
		}
	}
	if err := req.Storage.Delete(ctx, tokenStoragePrefix+handle); err != nil {
		return nil, fmt.Errorf("deleting cached token of %q: %w", handle, err)
	}
	if err := req.Storage.Delete(ctx, bindingStoragePrefix+handle); err != nil {
		return nil, fmt.Errorf("deleting binding %q: %w", handle, err)
	}
	// A state whose write failed belongs to the deleted binding: gone too.
	hc.pending = nil
	hc.lastFailure = nil
	hc.reset()
	b.scheduler.remove(handle)
	if existing != nil {
		b.bindingDeleted(ctx, req.Storage, handle)
	}
	_ = req.Storage.Delete(ctx, devicePrefix+handle) // a pending device grant of the binding
	return nil, nil
}

func (b *backend) pathBindingRefresh(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	handle := d.Get("handle").(string)
	// A failed refresh must look failed, even though the status below would
	// be the most useful answer for an operator.
	if _, err := b.material(ctx, req.Storage, handle, readOpts{force: true}); err != nil {
		return readAnswer(err)
	}
	e, err := getBinding(ctx, req.Storage, handle)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return readAnswer(errNotBound(handle))
	}
	st, err := b.currentTokenState(ctx, req.Storage, handle, e)
	if err != nil {
		return nil, err
	}
	out := &logical.Response{Data: map[string]interface{}{
		"handle": handle,
		"kind":   e.Kind,
		"status": statusData(e, st, nil),
	}}
	return out, nil
}

const pathBindingsHelpSyn = "Bind a credential handle to credential material."

var pathBindingsHelpDesc = `
A binding says how a handle (e.g. google_sales) becomes credential material.
kind is required on create and cannot change. Secret-capable fields
(client_id, client_secret, refresh_token, private_key, credentials_json,
token) are given inline, which makes them write-only, or as
<field>_secret=<name> referencing a value stored at secrets/<name>. Reads show
which fields are inline and which secret each references, never a value, plus
the binding's status (health, last refresh, expiry, last error).

` + kindsHelp()
