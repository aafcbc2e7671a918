package flowcred

import (
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
)

// Response schemas of the OpenAPI document (Vault's
// sys/internal/specs/openapi), shared by the paths that answer them.

// statusField is a binding's status object.
var statusField = &framework.FieldSchema{
	Type: framework.TypeMap, Required: true,
	Description: "The binding's status: health (ok, degraded, needs_reauth, needs_authorization, pending_authorization, unknown), " +
		"last_refresh_at, expires_at, last_error, last_error_code, last_error_at, consecutive_failures, " +
		"missing_secrets, granted_scopes, reauth_due_at. Never a token.",
}

// statusResponse answers the status of one binding.
var statusResponse = map[int][]framework.Response{http.StatusOK: {{
	Description: "OK",
	Fields: map[string]*framework.FieldSchema{
		"handle": {Type: framework.TypeString, Required: true, Description: "The credential handle."},
		"kind":   {Type: framework.TypeString, Required: true, Description: "The binding's kind."},
		"status": statusField,
	},
}}}

// noContent is the answer of a write that returns nothing.
var noContent = map[int][]framework.Response{http.StatusNoContent: {{Description: "No Content"}}}

// bindingReadResponse is a binding read: its non-secret fields, which
// secret-capable fields are inline, the secrets it references, and status.
func bindingReadResponse() map[int][]framework.Response {
	fields := map[string]*framework.FieldSchema{
		"handle":        {Type: framework.TypeString, Required: true, Description: "The credential handle."},
		"kind":          {Type: framework.TypeString, Required: true, Description: kindtable.FieldDescriptions["kind"]},
		"description":   {Type: framework.TypeString, Description: kindtable.FieldDescriptions["description"]},
		"ttl":           {Type: framework.TypeInt64, Description: "The binding's ttl in seconds (0: none)."},
		"created_at":    {Type: framework.TypeString, Required: true, Description: "When the binding was created (RFC 3339)."},
		"updated_at":    {Type: framework.TypeString, Required: true, Description: "When the binding was last written (RFC 3339)."},
		"inline_fields": {Type: framework.TypeStringSlice, Required: true, Description: "The secret-capable fields given inline (their values are never shown)."},
		"extra_headers": {Type: framework.TypeKVPairs, Description: kindtable.FieldDescriptions["extra_headers"]},
		"status":        statusField,
	}
	for _, k := range kindtable.All() {
		for _, f := range k.Plain {
			t := framework.TypeString
			switch f {
			case "scopes":
				t = framework.TypeStringSlice
			case "token_params":
				t = framework.TypeKVPairs
			}
			fields[f] = &framework.FieldSchema{Type: t, Description: kindtable.FieldDescriptions[f]}
		}
		for _, f := range k.Secret {
			fields[f+secretRefSuffix] = &framework.FieldSchema{Type: framework.TypeString, Description: "The stored secret (secrets/<name>) the binding reads " + f + " from."}
		}
	}
	return map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: fields}}}
}

// dryRunResponse is a write's answer: nothing, or with dry_run what it
// would change.
func dryRunResponse(fields map[string]*framework.FieldSchema) map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusOK:        {{Description: "With dry_run=true: what the write would do; nothing is stored.", Fields: fields}},
		http.StatusNoContent: {{Description: "Written."}},
	}
}

var bindingDryRunFields = map[string]*framework.FieldSchema{
	"handle":         {Type: framework.TypeString, Description: "The credential handle."},
	"kind":           {Type: framework.TypeString, Description: "The binding's kind."},
	"operation":      {Type: framework.TypeString, Description: "create, update or unchanged."},
	"changed_fields": {Type: framework.TypeStringSlice, Description: "The fields the write changes."},
	"changes":        {Type: framework.TypeSlice, Description: "{field, change, secret, old, new} per changed field; a secret value is named, never shown."},
}

var secretDryRunFields = map[string]*framework.FieldSchema{
	"name":        {Type: framework.TypeString, Description: "The secret's name."},
	"operation":   {Type: framework.TypeString, Description: "create, update or unchanged."},
	"fingerprint": {Type: framework.TypeString, Description: "HMAC-SHA256 of the value the write carries, under the mount's fingerprint key."},
}
