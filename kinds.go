package flowcred

import (
	"github.com/hashicorp/vault/sdk/framework"
	"sort"
	"strings"
)

// Kind names are part of the API (design.md, "Kinds").
const (
	kindGoogleOAuth2         = "google.oauth2"
	kindGoogleServiceAccount = "google.service_account"
	kindOAuth2RefreshToken   = "oauth2.refresh_token"
	kindOAuth2ClientCreds    = "oauth2.client_credentials"
	kindOAuth2JWTBearer      = "oauth2.jwt_bearer"
	kindAPIToken             = "api_token"

	// googleTokenURL is the token endpoint the google.* kinds use unless a binding says otherwise.
	googleTokenURL = "https://oauth2.googleapis.com/token"

	// secretRefSuffix turns a secret-capable field into its by-reference form:
	// client_secret=... is inline, client_secret_secret=<name> names a stored secret.
	secretRefSuffix = "_secret"
)

// kindSpec describes which binding fields a kind accepts and which it needs.
// Binding writes are checked against it so that a binding that could never
// issue material is refused at write time.
type kindSpec struct {
	// secretFields are the secret-capable inputs (S in design.md): given
	// inline (write-only) or as <field>_secret=<stored secret name>.
	secretFields []string
	// plainFields are non-secret inputs, echoed by binding reads.
	plainFields []string
	// required lists alternatives: each inner list is a set of fields that
	// together satisfy the kind; one set must be complete.
	required [][]string
	// upstream is true when material comes from a token endpoint.
	upstream bool
}

// commonFields are accepted by every kind.
var commonFields = []string{"kind", "description", "extra_headers", "ttl"}

var kindSpecs = map[string]kindSpec{
	kindGoogleOAuth2: {
		secretFields: []string{"client_id", "client_secret", "refresh_token"},
		plainFields:  []string{"scopes", "token_url"},
		required:     [][]string{{"client_id", "client_secret", "refresh_token"}},
		upstream:     true,
	},
	kindGoogleServiceAccount: {
		secretFields: []string{"credentials_json", "private_key"},
		plainFields:  []string{"client_email", "private_key_id", "scopes", "subject", "target_audience", "token_url"},
		required:     [][]string{{"credentials_json"}, {"client_email", "private_key"}},
		upstream:     true,
	},
	kindOAuth2RefreshToken: {
		secretFields: []string{"client_id", "client_secret", "refresh_token"},
		plainFields:  []string{"token_url", "scopes", "auth_style"},
		required:     [][]string{{"client_id", "refresh_token", "token_url"}},
		upstream:     true,
	},
	kindOAuth2ClientCreds: {
		secretFields: []string{"client_id", "client_secret"},
		plainFields:  []string{"token_url", "scopes", "auth_style", "token_params"},
		required:     [][]string{{"client_id", "client_secret", "token_url"}},
		upstream:     true,
	},
	kindOAuth2JWTBearer: {
		secretFields: []string{"private_key"},
		plainFields:  []string{"key_id", "issuer", "subject", "audience", "token_url", "scopes"},
		required:     [][]string{{"private_key", "issuer", "token_url"}},
		upstream:     true,
	},
	kindAPIToken: {
		secretFields: []string{"token"},
		plainFields:  []string{"header", "scheme"},
		required:     [][]string{{"token"}},
	},
}

// allKinds returns the kind names, sorted, for help text and AllowedValues.
func allKinds() []string {
	out := make([]string, 0, len(kindSpecs))
	for k := range kindSpecs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// allowedFields returns every request field a kind accepts, including the
// <field>_secret reference forms.
func (k kindSpec) allowedFields() map[string]bool {
	m := map[string]bool{}
	for _, f := range commonFields {
		m[f] = true
	}
	for _, f := range k.plainFields {
		m[f] = true
	}
	for _, f := range k.secretFields {
		m[f] = true
		m[f+secretRefSuffix] = true
	}
	return m
}

// kindsAccepting lists the kinds that accept a field, for error messages
// ("field subject is not used by kind api_token; it belongs to ...").
func kindsAccepting(field string) []string {
	var out []string
	for _, name := range allKinds() {
		if kindSpecs[name].allowedFields()[field] {
			out = append(out, name)
		}
	}
	return out
}

func isSecretField(spec kindSpec, field string) bool {
	for _, f := range spec.secretFields {
		if f == field {
			return true
		}
	}
	return false
}

// joinKinds renders a list of kinds for messages.
func joinKinds(kinds []string) string {
	return strings.Join(kinds, ", ")
}

// fieldDescriptions documents every binding field (vault path-help shows them).
var fieldDescriptions = map[string]string{
	"handle":           "The credential handle, e.g. google_sales.",
	"kind":             "The kind of credential; required on create, immutable. One of: " + joinKinds(allKinds()) + ".",
	"description":      "Free text for operators.",
	"extra_headers":    "Non-secret headers added to the material, e.g. x-goog-user-project=my-project. Names must be HTTP tokens; values may not contain CR or LF.",
	"ttl":              "Cap on the token lease. For api_token, the lease length (default 1h).",
	"client_id":        "OAuth2 client ID (secret-capable).",
	"client_secret":    "OAuth2 client secret (secret-capable, write-only).",
	"refresh_token":    "OAuth2 refresh token (secret-capable, write-only). A token rotated by the provider is stored by flowcred.",
	"credentials_json": "Google service-account key file, JSON (secret-capable, write-only). Its token_uri is ignored: token_url decides where assertions go.",
	"private_key":      "PEM private key, PKCS#8, PKCS#1 or SEC1: RSA (at least 2048 bits) for google.service_account; RSA or EC P-256/P-384/P-521 (signing RS256/ES256/ES384/ES512) for oauth2.jwt_bearer (secret-capable, write-only).",
	"token":            "The static API token (secret-capable, write-only).",
	"scopes":           "Scopes to request, comma-separated. google.service_account needs scopes or target_audience.",
	"token_url":        "Token endpoint. https, or http on a loopback host. Defaults to Google's for the google.* kinds.",
	"auth_style":       "How client credentials are sent: auto (try header, then params), header (HTTP Basic), params (form body). Default auto.",
	"token_params":     "Extra token request parameters for client credentials, e.g. audience=https://api.example.com or resource=...",
	"client_email":     "Service account email (with private_key, instead of credentials_json).",
	"private_key_id":   "Key ID of the service account key (the kid header).",
	"subject":          "Subject of the assertion: the user to impersonate (Google domain-wide delegation) or the sub claim (oauth2.jwt_bearer; default: issuer).",
	"target_audience":  "Issue a Google ID token for this audience instead of an access token (e.g. a Cloud Run URL). Not combined with scopes.",
	"key_id":           "kid header of the JWT assertion.",
	"issuer":           "iss claim of the JWT assertion.",
	"audience":         "aud claim of the JWT assertion (default: token_url).",
	"header":           "Header that carries an api_token. Default Authorization.",
	"scheme":           "Scheme before an api_token, e.g. Bearer or token. Default Bearer; empty sends the bare token.",
}

// bindingFieldSchemas declares the fields of all kinds on bindings/<handle>.
func bindingFieldSchemas() map[string]*framework.FieldSchema {
	fields := map[string]*framework.FieldSchema{}
	add := func(name string, t framework.FieldType, sensitive bool) {
		fs := &framework.FieldSchema{Type: t, Description: fieldDescriptions[name]}
		if sensitive {
			fs.DisplayAttrs = &framework.DisplayAttributes{Sensitive: true}
		}
		fields[name] = fs
	}
	add("handle", framework.TypeString, false)
	fields["handle"].Required = true
	add("kind", framework.TypeString, false)
	fields["kind"].AllowedValues = stringsToIfaces(allKinds())
	add("description", framework.TypeString, false)
	add("extra_headers", framework.TypeKVPairs, false)
	add("ttl", framework.TypeDurationSecond, false)
	for _, spec := range kindSpecs {
		for _, f := range spec.secretFields {
			add(f, framework.TypeString, true)
			fields[f+secretRefSuffix] = &framework.FieldSchema{
				Type:        framework.TypeString,
				Description: "Name of a stored secret (secrets/<name>) holding " + f + ", instead of giving it inline.",
			}
		}
		for _, f := range spec.plainFields {
			switch f {
			case "scopes":
				add(f, framework.TypeCommaStringSlice, false)
			case "token_params":
				add(f, framework.TypeKVPairs, false)
			default:
				add(f, framework.TypeString, false)
			}
		}
	}
	return fields
}

func stringsToIfaces(in []string) []interface{} {
	out := make([]interface{}, len(in))
	for i, s := range in {
		out[i] = s
	}
	return out
}

// secretInputFields is every secret-capable binding field of any kind, and
// its <field>_secret reference form: the request fields whose values must
// reach the plugin as strings (see input_guard.go). Built from kindSpecs.
var secretInputFields = func() map[string]bool {
	m := map[string]bool{}
	for _, spec := range kindSpecs {
		for _, f := range spec.secretFields {
			m[f] = true
			m[f+secretRefSuffix] = true
		}
	}
	return m
}()
