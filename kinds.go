package flowcred

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"golang.org/x/oauth2"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
)

// The kind registry: one entry per kind, built in the file of its grant
// family (grant_*.go) on the kind's fields from internal/kindtable, which
// the CLI shares. The token lifecycle (lifecycle.go, refresh.go) and the
// binding paths know kinds only through this type.

// secretRefSuffix turns a secret-capable field into its by-reference form.
const secretRefSuffix = kindtable.SecretRefSuffix

// kind is a kind's fields and behaviour.
type kind struct {
	kindtable.Kind
	// tokenURL is the default token_url (empty: the binding must give one).
	tokenURL string
	// authorizationURL and deviceURL are the default authorization_url and
	// device_authorization_url of a kind that can be connected (rotates).
	authorizationURL, deviceURL string
	// revocationURL is the default revocation_url (revoke_on_delete).
	revocationURL string
	// authParams are added to the authorization request of a connect
	// (Google: offline access, consent, incremental scopes).
	authParams map[string]string
	// authStyle is how client credentials are sent when auth_style is auto
	// or absent.
	authStyle oauth2.AuthStyle
	// rotates: the grant sends a refresh token, which the provider may
	// replace in its answer (the lifecycle keeps the newest).
	rotates bool
	// grant obtains a token from the token endpoint; nil for a kind whose
	// material is configured (serve).
	grant func(ctx context.Context, b *backend, g *grantCall) (*upstreamToken, error)
	// serve builds the material of a kind without an upstream from the
	// resolved inputs; a *fieldError names the input that cannot be served.
	serve func(handle string, e *bindingEntry, in map[string]string, now time.Time) (*material, *fieldError)
	// cleanSecret checks (and may normalise) an inline secret input at
	// write time; nil accepts any value.
	cleanSecret func(field, v string) (string, *fieldError)
	// validate checks the kind's own rules on a merged binding at write
	// time, after the field and completeness checks; nil: none.
	validate func(e *bindingEntry) *fieldError
	// credentialHeader is the header the material's credential goes in
	// (extra_headers may not set it); nil: Authorization.
	credentialHeader func(e *bindingEntry) string
}

// grantCall is one grant's inputs.
type grantCall struct {
	handle  string
	binding *bindingEntry
	// inputs are the resolved secret-capable inputs, by field.
	inputs map[string]string
	// refreshToken is the refresh token to send (rotating kinds): the
	// newest the provider issued, or the configured one.
	refreshToken string
}

// refreshTokenField is the input of rotating kinds that the provider may
// replace.
const refreshTokenField = "refresh_token"

// registry holds every kind by name. It is filled by init, not by its
// initializer: the grants look kinds up, which a package-level initializer
// would make a cycle.
var registry map[string]*kind

func init() { registry = newRegistry() }

func newRegistry() map[string]*kind {
	m := map[string]*kind{}
	for _, k := range []*kind{
		apiTokenKind, googleOAuth2Kind, refreshTokenKind, clientCredentialsKind,
		jwtBearerKind, googleServiceAccountKind,
	} {
		if _, ok := kindtable.Lookup(k.Name); !ok || m[k.Name] != nil || (k.grant == nil) == (k.serve == nil) {
			panic("flowcred: kind " + k.Name + " is not in internal/kindtable, is registered twice, or has not exactly one of grant and serve")
		}
		m[k.Name] = k
	}
	if len(m) != len(kindtable.Names()) {
		panic("flowcred: a kind of internal/kindtable has no registry entry")
	}
	return m
}

// mustKind returns a kind's fields from internal/kindtable.
func mustKind(name string) kindtable.Kind {
	k, ok := kindtable.Lookup(name)
	if !ok {
		panic("flowcred: kind " + name + " is not in internal/kindtable")
	}
	return k
}

// kindOf returns the registered kind (nil for an unknown name).
func kindOf(name string) *kind { return registry[name] }

// upstream reports whether the kind's material comes from a token endpoint.
func (k *kind) upstream() bool { return k.grant != nil }

// header is the header that carries the kind's credential.
func (k *kind) header(e *bindingEntry) string {
	if k.credentialHeader != nil {
		if h := k.credentialHeader(e); h != "" {
			return h
		}
	}
	return "Authorization"
}

// authStyleOf is the auth style a binding's token requests use.
func (k *kind) authStyleOf(e *bindingEntry) oauth2.AuthStyle {
	switch e.Plain["auth_style"] {
	case "header":
		return oauth2.AuthStyleInHeader
	case "params":
		return oauth2.AuthStyleInParams
	}
	return k.authStyle
}

// allKinds returns the kind names, sorted, for help text and AllowedValues.
func allKinds() []string { return kindtable.Names() }

// joinKinds renders a list of kinds for messages.
func joinKinds(kinds []string) string { return strings.Join(kinds, ", ") }

// bindingFieldSchemas declares the fields of all kinds on bindings/<handle>.
func bindingFieldSchemas() map[string]*framework.FieldSchema {
	fields := map[string]*framework.FieldSchema{}
	add := func(name string, t framework.FieldType, sensitive bool) {
		fs := &framework.FieldSchema{Type: t, Description: kindtable.FieldDescriptions[name]}
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
	for _, k := range kindtable.All() {
		for _, f := range k.Secret {
			add(f, framework.TypeString, true)
			fields[f+secretRefSuffix] = &framework.FieldSchema{
				Type:        framework.TypeString,
				Description: "Name of a stored secret (secrets/<name>) holding " + f + ", instead of giving it inline.",
			}
		}
		for _, f := range k.Plain {
			switch f {
			case "scopes":
				add(f, framework.TypeCommaStringSlice, false)
			case "token_params":
				add(f, framework.TypeKVPairs, false)
			case "revoke_on_delete":
				add(f, framework.TypeBool, false)
			default:
				add(f, framework.TypeString, false)
			}
		}
	}
	return fields
}

// kindsHelp is the table of kinds and their fields in the bindings help.
func kindsHelp() string {
	var sb strings.Builder
	sb.WriteString("Kinds and their fields (secret-capable fields marked *):\n")
	for _, k := range kindtable.All() {
		fs := make([]string, 0, len(k.Secret)+len(k.Plain))
		for _, f := range k.Secret {
			fs = append(fs, f+"*")
		}
		fs = append(fs, k.Plain...)
		sb.WriteString("  " + k.Name + strings.Repeat(" ", max(1, 27-len(k.Name))) + strings.Join(fs, ", ") + "\n")
	}
	sb.WriteString("Every kind: " + strings.Join(kindtable.Common, ", ") + ".\n")
	return sb.String()
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
// reach the plugin as strings (see input_guard.go).
var secretInputFields = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range kindtable.All() {
		for _, f := range k.Secret {
			m[f] = true
			m[f+secretRefSuffix] = true
		}
	}
	return m
}()
