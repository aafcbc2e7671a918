package flowcred

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// bindingEntry is a handle's binding, stored seal-wrapped at bindings/<handle>.
type bindingEntry struct {
	// Kind is one of kindSpecs; fixed at creation.
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
	// TTL caps the lease; for api_token it is the lease length. Zero means default.
	TTL time.Duration `json:"ttl,omitempty"`
	// Inline holds secret-capable fields given by value. Never returned.
	Inline map[string]string `json:"inline,omitempty"`
	// Refs maps a secret-capable field to the name of a stored secret.
	Refs map[string]string `json:"refs,omitempty"`
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
	if strings.HasPrefix(e.Kind, "google.") {
		return googleTokenURL
	}
	return ""
}

func getBinding(ctx context.Context, s logical.Storage, handle string) (*bindingEntry, error) {
	entry, err := s.Get(ctx, bindingStoragePrefix+handle)
	if err != nil {
		return nil, fmt.Errorf("reading binding %q: %w", handle, err)
	}
	if entry == nil {
		return nil, nil
	}
	var e bindingEntry
	if err := entry.DecodeJSON(&e); err != nil {
		return nil, fmt.Errorf("decoding binding %q: %w", handle, err)
	}
	return &e, nil
}

func putBinding(ctx context.Context, s logical.Storage, handle string, e *bindingEntry) error {
	entry, err := logical.StorageEntryJSON(bindingStoragePrefix+handle, e)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing binding %q: %w", handle, err)
	}
	return nil
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
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathBindingRefresh,
					Summary:                     "Refresh a handle's token now; returns the status, never the token.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
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
			Fields:         bindingFieldSchemas(),
			ExistenceCheck: b.pathBindingExistenceCheck,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathBindingRead,
					Summary:  "Read a binding: its kind, non-secret fields, secret references and status. Never a secret value.",
				},
				logical.CreateOperation: &framework.PathOperation{
					Callback:                    b.pathBindingWrite,
					Summary:                     "Bind a handle to credential material.",
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "create"},
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathBindingWrite,
					Summary:                     "Update a binding; omitted fields keep their values, the kind cannot change.",
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "update"},
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathBindingDelete,
					Summary:                     "Delete a binding and its cached token.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
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
	st, err := getTokenState(ctx, req.Storage, handle)
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
	lock := locksutil.LockForKey(b.bindingLocks, handle)
	lock.Lock()
	defer lock.Unlock()
	// Unlike a write, a delete waits for a refresh in flight before it
	// deletes the token state, which the refresh could otherwise write back.
	hc := b.handles.get(handle)
	if err := hc.acquire(ctx); err != nil {
		return nil, err
	}
	defer hc.release()
	if err := req.Storage.Delete(ctx, tokenStoragePrefix+handle); err != nil {
		return nil, fmt.Errorf("deleting cached token of %q: %w", handle, err)
	}
	if err := req.Storage.Delete(ctx, bindingStoragePrefix+handle); err != nil {
		return nil, fmt.Errorf("deleting binding %q: %w", handle, err)
	}
	hc.reset()
	b.scheduler.remove(handle)
	return nil, nil
}

func (b *backend) pathBindingWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	handle := d.Get("handle").(string)
	lock := locksutil.LockForKey(b.bindingLocks, handle)
	lock.Lock()
	defer lock.Unlock()
	b.refsLock.RLock()
	defer b.refsLock.RUnlock()

	old, err := getBinding(ctx, req.Storage, handle)
	if err != nil {
		return nil, err
	}
	e, ferr := applyBindingInput(old, d)
	if ferr != nil {
		return ferr.response(), nil
	}
	now := b.now().UTC()
	if old == nil {
		e.CreatedAt = now
	}
	e.UpdatedAt = now
	e.Generation++
	if err := putBinding(ctx, req.Storage, handle, e); err != nil {
		return nil, err
	}
	// The next read reloads the binding; a token obtained under the old
	// generation is not served, but a rotated refresh token is kept.
	b.forgetBinding(ctx, handle)

	missing, err := missingSecrets(ctx, req.Storage, e)
	if err != nil {
		return nil, err
	}
	if len(missing) == 0 {
		return nil, nil
	}
	resp := &logical.Response{}
	for _, m := range missing {
		resp.AddWarning(m + " does not exist yet; write it before reading token/" + handle)
	}
	return resp, nil
}

// forgetBinding drops what readers cached of a handle's binding after it was
// written. Only a handle that was read has an entry: writing bindings leaves
// no per-handle state behind. Called after the storage write, so a reader
// that creates its entry later loads the new binding, and one that loaded
// the old binding finishes (its refresh holds the handle's lock) before the
// reset.
func (b *backend) forgetBinding(ctx context.Context, handle string) {
	hc := b.handles.peek(handle)
	if hc == nil {
		return
	}
	// Wait even if the request is cancelled: the write is done, and a
	// snapshot of the old binding must not outlive it.
	_ = hc.acquire(context.WithoutCancel(ctx))
	defer hc.release()
	hc.reset()
	hc.lastFailure = nil
}

// applyBindingInput merges a write request into a copy of the stored binding
// (nil on create) and checks the result. Nothing is stored on error.
func applyBindingInput(old *bindingEntry, d *framework.FieldData) (*bindingEntry, *fieldError) {
	e := &bindingEntry{}
	if old != nil {
		cp := *old
		e = &cp
		e.Plain = copyMap(old.Plain)
		e.TokenParams = copyMap(old.TokenParams)
		e.ExtraHeaders = copyMap(old.ExtraHeaders)
		e.Inline = copyMap(old.Inline)
		e.Refs = copyMap(old.Refs)
		e.Scopes = append([]string(nil), old.Scopes...)
	}

	kindRaw, kindGiven := d.Raw["kind"]
	kind, _ := kindRaw.(string)
	switch {
	case old == nil && !kindGiven:
		return nil, fieldErr("kind", "required when creating a binding; one of %s", joinKinds(allKinds()))
	case old != nil && kindGiven && kind != old.Kind:
		return nil, fieldErr("kind", "is %q and cannot be changed to %q; delete the binding and create it again", old.Kind, truncateForMessage(kind))
	case old == nil:
		if _, ok := kindSpecs[kind]; !ok {
			return nil, fieldErr("kind", "unknown kind %q; one of %s", truncateForMessage(kind), joinKinds(allKinds()))
		}
		e.Kind = kind
	}
	spec := kindSpecs[e.Kind]

	// Every given field must belong to this kind.
	allowed := spec.allowedFields()
	given := make([]string, 0, len(d.Raw))
	for k := range d.Raw {
		given = append(given, k)
	}
	sort.Strings(given)
	for _, k := range given {
		if k == "handle" || allowed[k] {
			continue
		}
		if owners := kindsAccepting(k); len(owners) > 0 {
			return nil, fieldErr(k, "not used by kind %s (it belongs to %s)", e.Kind, joinKinds(owners))
		}
		return nil, fieldErr(k, "unknown field for kind %s", e.Kind)
	}

	if e.Plain == nil {
		e.Plain = map[string]string{}
	}
	if e.Inline == nil {
		e.Inline = map[string]string{}
	}
	if e.Refs == nil {
		e.Refs = map[string]string{}
	}

	for _, k := range given {
		if ferr := applyField(e, spec, k, d); ferr != nil {
			return nil, ferr
		}
	}
	if ferr := checkBinding(e, spec); ferr != nil {
		return nil, ferr
	}
	return e, nil
}

// applyField sets one request field on the binding.
func applyField(e *bindingEntry, spec kindSpec, k string, d *framework.FieldData) *fieldError {
	if k == "handle" || k == "kind" {
		return nil
	}
	raw, err := getField(d, k)
	if err != nil {
		return fieldErr(k, "%s", err)
	}
	switch {
	case k == "description":
		v := raw.(string)
		if len(v) > maxDescriptionBytes {
			return fieldErr(k, "longer than %d bytes", maxDescriptionBytes)
		}
		e.Description = v
	case k == "ttl":
		v := raw.(int)
		if v < 0 {
			return fieldErr(k, "must not be negative")
		}
		e.TTL = time.Duration(v) * time.Second
	case k == "scopes":
		v := raw.([]string)
		if len(v) > maxScopes {
			return fieldErr(k, "more than %d scopes", maxScopes)
		}
		for _, s := range v {
			if ferr := validateScope(k, s); ferr != nil {
				return ferr
			}
		}
		e.Scopes = v
	case k == "extra_headers":
		v := raw.(map[string]string)
		if len(v) > maxExtraHeaders {
			return fieldErr(k, "more than %d headers", maxExtraHeaders)
		}
		for name, val := range v {
			if ferr := validateHeaderName(k, name); ferr != nil {
				return ferr
			}
			if reservedHeaders[strings.ToLower(name)] {
				return fieldErr(k, "header %q is set by the HTTP client and cannot be added", name)
			}
			if ferr := validateHeaderValue(k, name, val); ferr != nil {
				return ferr
			}
		}
		e.ExtraHeaders = v
	case k == "token_params":
		v := raw.(map[string]string)
		if len(v) > maxTokenParams {
			return fieldErr(k, "more than %d parameters", maxTokenParams)
		}
		for name, val := range v {
			if name == "" {
				return fieldErr(k, "empty parameter name")
			}
			if reservedTokenParams[name] {
				return fieldErr(k, "parameter %q is set by the grant itself; use the binding's own field", name)
			}
			if ferr := validatePlainText(k, name); ferr != nil {
				return ferr
			}
			if ferr := validatePlainText(k, val); ferr != nil {
				return fieldErr(k, "value of parameter %q has a control character or is too long", name)
			}
		}
		e.TokenParams = v
	case strings.HasSuffix(k, secretRefSuffix) && isSecretField(spec, strings.TrimSuffix(k, secretRefSuffix)):
		f := strings.TrimSuffix(k, secretRefSuffix)
		if _, both := d.Raw[f]; both {
			return fieldErr(k, "give either %s (inline) or %s (a stored secret's name), not both", f, k)
		}
		name := raw.(string)
		delete(e.Inline, f)
		if name == "" {
			delete(e.Refs, f)
			return nil
		}
		if ferr := validateName(k, name); ferr != nil {
			return ferr
		}
		e.Refs[f] = name
	case isSecretField(spec, k):
		v := raw.(string)
		delete(e.Refs, k)
		if v == "" {
			delete(e.Inline, k)
			return nil
		}
		if len(v) > maxInlineSecretBytes {
			return fieldErr(k, "%d bytes is more than the limit of %d", len(v), maxInlineSecretBytes)
		}
		if strings.ContainsRune(v, 0) {
			return fieldErr(k, "contains a NUL byte")
		}
		e.Inline[k] = v
	default:
		return applyPlainField(e, k, raw.(string))
	}
	return nil
}

func applyPlainField(e *bindingEntry, k, v string) *fieldError {
	// An empty value clears the field, except scheme where "" means a bare token.
	if v == "" && k != "scheme" {
		delete(e.Plain, k)
		return nil
	}
	switch k {
	case "token_url":
		if ferr := validateTokenURL(k, v); ferr != nil {
			return ferr
		}
	case "auth_style":
		if v != "auto" && v != "header" && v != "params" {
			return fieldErr(k, "%q: one of auto, header, params", truncateForMessage(v))
		}
	case "header":
		if ferr := validateHeaderName(k, v); ferr != nil {
			return ferr
		}
		if reservedHeaders[strings.ToLower(v)] {
			return fieldErr(k, "header %q is set by the HTTP client", v)
		}
	case "scheme":
		if v != "" && !isHTTPToken(v) {
			return fieldErr(k, "%q is not a valid authentication scheme (an HTTP token, e.g. Bearer, token, Basic)", truncateForMessage(v))
		}
	default:
		if ferr := validatePlainText(k, v); ferr != nil {
			return ferr
		}
	}
	e.Plain[k] = v
	return nil
}

// checkBinding verifies a merged binding is complete and consistent.
func checkBinding(e *bindingEntry, spec kindSpec) *fieldError {
	complete := false
	var firstMissing []string
	for _, group := range spec.required {
		var missing []string
		for _, f := range group {
			if f == "token_url" && e.tokenURL() != "" {
				continue
			}
			if !e.hasInput(f) {
				missing = append(missing, f)
			}
		}
		if len(missing) == 0 {
			complete = true
			break
		}
		if firstMissing == nil {
			firstMissing = missing
		}
	}
	if !complete {
		alts := make([]string, len(spec.required))
		for i, g := range spec.required {
			alts[i] = strings.Join(g, " + ")
		}
		return fieldErr(firstMissing[0], "required by kind %s (give %s; secret fields inline or as <field>_secret)", e.Kind, strings.Join(alts, ", or "))
	}
	// The credential header cannot be overridden by extra_headers.
	credHeader := "Authorization"
	if e.Kind == kindAPIToken && e.Plain["header"] != "" {
		credHeader = e.Plain["header"]
	}
	for name := range e.ExtraHeaders {
		if strings.EqualFold(name, credHeader) {
			return fieldErr("extra_headers", "header %q carries the credential and cannot be set in extra_headers", name)
		}
	}
	return validateKindInputs(e)
}

func isHTTPToken(s string) bool {
	return s != "" && validateHeaderName("", s) == nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// getField reads a declared field, reporting a type error instead of panicking.
func getField(d *framework.FieldData, k string) (interface{}, error) {
	v, _, err := d.GetOkErr(k)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("no value")
	}
	return v, nil
}

// missingSecrets lists "secret <name> (field <f>)" for each reference whose
// secret is not stored.
func missingSecrets(ctx context.Context, s logical.Storage, e *bindingEntry) ([]string, error) {
	fields := make([]string, 0, len(e.Refs))
	for f := range e.Refs {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	var out []string
	for _, f := range fields {
		sec, err := getSecret(ctx, s, e.Refs[f])
		if err != nil {
			return nil, err
		}
		if sec == nil {
			out = append(out, fmt.Sprintf("secret %q (field %s)", e.Refs[f], f+secretRefSuffix))
		}
	}
	return out, nil
}

func (b *backend) pathBindingRefresh(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	handle := d.Get("handle").(string)
	_, resp, err := b.material(ctx, req.Storage, handle, readOpts{force: true})
	if err != nil || (resp != nil && resp.IsError()) {
		// The status below is still the most useful answer for an operator,
		// but a failed refresh must look failed.
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
	e, err := getBinding(ctx, req.Storage, handle)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return logical.ErrorResponse("no binding for handle %q", handle), nil
	}
	st, err := getTokenState(ctx, req.Storage, handle)
	if err != nil {
		return nil, err
	}
	out := &logical.Response{Data: map[string]interface{}{
		"handle": handle,
		"kind":   e.Kind,
		"status": statusData(e, st, nil),
	}}
	if resp != nil {
		out.Warnings = resp.Warnings
	}
	return out, nil
}

const pathBindingsHelpSyn = "Bind a credential handle to credential material."

const pathBindingsHelpDesc = `
A binding says how a handle (e.g. google_sales) becomes credential material.
kind is required on create and cannot change. Secret-capable fields
(client_id, client_secret, refresh_token, private_key, credentials_json,
token) are given inline, which makes them write-only, or as
<field>_secret=<name> referencing a value stored at secrets/<name>. Reads show
which fields are inline and which secret each references, never a value, plus
the binding's status (health, last refresh, expiry, last error).

Kinds and their fields:
  google.oauth2              client_id, client_secret, refresh_token, scopes, token_url
  google.service_account     credentials_json | client_email + private_key (+ private_key_id),
                             scopes, subject, target_audience, token_url
  oauth2.refresh_token       client_id, client_secret, refresh_token, token_url, scopes, auth_style
  oauth2.client_credentials  client_id, client_secret, token_url, scopes, auth_style, token_params
  oauth2.jwt_bearer          private_key, key_id, issuer, subject, audience, token_url, scopes
  api_token                  token, header (Authorization), scheme (Bearer; empty = bare token)
Every kind: description, extra_headers, ttl.
`
