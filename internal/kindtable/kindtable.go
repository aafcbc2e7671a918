// Package kindtable is the table of flowcred's kinds and their binding
// fields: names, which fields are secret-capable, which are required, and
// what each field means. The plugin builds its kind registry (behaviour:
// validation, grants) on it, and the flowcred CLI checks deployment files
// against it, so both always agree. It imports nothing from Vault.
package kindtable

import "sort"

// Kind names are part of the API (design.md, "Kinds").
const (
	GoogleOAuth2         = "google.oauth2"
	GoogleServiceAccount = "google.service_account"
	OAuth2RefreshToken   = "oauth2.refresh_token"
	OAuth2ClientCreds    = "oauth2.client_credentials"
	OAuth2JWTBearer      = "oauth2.jwt_bearer"
	APIToken             = "api_token"
)

// SecretRefSuffix turns a secret-capable field into its by-reference form:
// client_secret=... is inline, client_secret_secret=<name> names a stored
// secret.
const SecretRefSuffix = "_secret"

// Common are the fields every kind accepts, besides kind itself.
var Common = []string{"description", "extra_headers", "ttl"}

// Kind is one kind's binding fields.
type Kind struct {
	Name string
	// Secret are the secret-capable inputs (S in design.md): given inline
	// (write-only) or as <field>_secret=<stored secret name>.
	Secret []string
	// Plain are the non-secret inputs, echoed by binding reads.
	Plain []string
	// Required lists alternatives: each inner list is a set of fields that
	// together satisfy the kind; one set must be complete.
	Required [][]string
}

// kinds is the table, one entry per kind.
var kinds = []Kind{
	{
		// Without a refresh token the binding needs authorization: the
		// connect flow (bindings/<h>/authorize or /device) obtains one.
		Name:     GoogleOAuth2,
		Secret:   []string{"client_id", "client_secret", "refresh_token"},
		Plain:    []string{"scopes", "token_url", "authorization_url", "device_authorization_url", "redirect_uri", "revoke_on_delete", "revocation_url"},
		Required: [][]string{{"client_id", "client_secret"}},
	},
	{
		Name:     GoogleServiceAccount,
		Secret:   []string{"credentials_json", "private_key"},
		Plain:    []string{"client_email", "private_key_id", "scopes", "subject", "target_audience", "token_url"},
		Required: [][]string{{"credentials_json"}, {"client_email", "private_key"}},
	},
	{
		Name:     OAuth2RefreshToken,
		Secret:   []string{"client_id", "client_secret", "refresh_token"},
		Plain:    []string{"token_url", "scopes", "auth_style", "authorization_url", "device_authorization_url", "redirect_uri", "revoke_on_delete", "revocation_url"},
		Required: [][]string{{"client_id", "token_url"}},
	},
	{
		Name:     OAuth2ClientCreds,
		Secret:   []string{"client_id", "client_secret"},
		Plain:    []string{"token_url", "scopes", "auth_style", "token_params"},
		Required: [][]string{{"client_id", "client_secret", "token_url"}},
	},
	{
		Name:     OAuth2JWTBearer,
		Secret:   []string{"private_key"},
		Plain:    []string{"key_id", "issuer", "subject", "audience", "token_url", "scopes"},
		Required: [][]string{{"private_key", "issuer", "token_url"}},
	},
	{
		Name:     APIToken,
		Secret:   []string{"token"},
		Plain:    []string{"header", "scheme"},
		Required: [][]string{{"token"}},
	},
}

// All returns every kind, sorted by name.
func All() []Kind {
	out := append([]Kind(nil), kinds...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the kind names, sorted.
func Names() []string {
	out := make([]string, 0, len(kinds))
	for _, k := range All() {
		out = append(out, k.Name)
	}
	return out
}

// Lookup returns the kind named name.
func Lookup(name string) (Kind, bool) {
	for _, k := range kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// IsSecret reports whether field is one of the kind's secret-capable inputs.
func (k Kind) IsSecret(field string) bool { return contains(k.Secret, field) }

// Accepts reports whether a request may set field for this kind: a common
// or plain field, a secret-capable field, or its <field>_secret form
// (kind itself is not a field of any kind).
func (k Kind) Accepts(field string) bool {
	if contains(Common, field) || contains(k.Plain, field) || k.IsSecret(field) {
		return true
	}
	n := len(field) - len(SecretRefSuffix)
	return n > 0 && field[n:] == SecretRefSuffix && k.IsSecret(field[:n])
}

// KindsAccepting names the kinds that accept field, sorted, for messages
// ("field subject is not used by kind api_token; it belongs to ...").
func KindsAccepting(field string) []string {
	var out []string
	for _, k := range All() {
		if k.Accepts(field) {
			out = append(out, k.Name)
		}
	}
	return out
}

// IsAnySecret reports whether field is secret-capable in some kind.
func IsAnySecret(field string) bool {
	for _, k := range kinds {
		if k.IsSecret(field) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
