package main

import (
	"regexp"
	"sort"
	"strings"
)

// kindFields mirrors the plugin's kinds (design.md, "Kinds"; kinds.go):
// which binding fields each kind takes. The CLI checks a deployment file
// against it before writing anything; TestKindTableMatchesPlugin keeps the
// two in step.
type kindFields struct {
	// secret are the secret-capable fields: a deployment file may only
	// reference them, as <field>_secret: <stored secret name>.
	secret []string
	// plain are the non-secret fields.
	plain []string
}

var kinds = map[string]kindFields{
	"google.oauth2": {
		secret: []string{"client_id", "client_secret", "refresh_token"},
		plain:  []string{"scopes", "token_url"},
	},
	"google.service_account": {
		secret: []string{"credentials_json", "private_key"},
		plain:  []string{"client_email", "private_key_id", "scopes", "subject", "target_audience", "token_url"},
	},
	"oauth2.refresh_token": {
		secret: []string{"client_id", "client_secret", "refresh_token"},
		plain:  []string{"token_url", "scopes", "auth_style"},
	},
	"oauth2.client_credentials": {
		secret: []string{"client_id", "client_secret"},
		plain:  []string{"token_url", "scopes", "auth_style", "token_params"},
	},
	"oauth2.jwt_bearer": {
		secret: []string{"private_key"},
		plain:  []string{"key_id", "issuer", "subject", "audience", "token_url", "scopes"},
	},
	"api_token": {
		secret: []string{"token"},
		plain:  []string{"header", "scheme"},
	},
}

// commonFields are accepted by every kind (kind itself is handled apart).
var commonFields = []string{"description", "extra_headers", "ttl"}

const secretRefSuffix = "_secret"

// namePattern is the plugin's framework.GenericNameRegex, anchored: the
// shape of handles and secret names.
var namePattern = regexp.MustCompile(`^\w(([\w-.]+)?\w)?$`)

func validName(s string) bool { return namePattern.MatchString(s) && len(s) <= 128 }

func kindNames() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// managedFields are the fields a deployment file sets for a kind: common and
// plain fields and the <field>_secret references. Inline secret values are
// not among them: the file never holds one.
func (k kindFields) managedFields() []string {
	out := append([]string(nil), commonFields...)
	out = append(out, k.plain...)
	for _, f := range k.secret {
		out = append(out, f+secretRefSuffix)
	}
	sort.Strings(out)
	return out
}

func (k kindFields) isSecret(field string) bool { return contains(k.secret, field) }

func (k kindFields) accepts(field string) bool {
	return contains(commonFields, field) || contains(k.plain, field) ||
		(strings.HasSuffix(field, secretRefSuffix) && k.isSecret(strings.TrimSuffix(field, secretRefSuffix)))
}

// kindsAccepting names the kinds that take a field, for error messages.
func kindsAccepting(field string) []string {
	var out []string
	for _, name := range kindNames() {
		k := kinds[name]
		if k.accepts(field) || k.isSecret(field) {
			out = append(out, name)
		}
	}
	return out
}

// isAnySecretField reports whether field is secret-capable in some kind.
func isAnySecretField(field string) bool {
	for _, k := range kinds {
		if k.isSecret(field) {
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
