package flowcred

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Problem names of the validate response (design.md, "Validation").
const (
	problemMissing       = "missing"
	problemKindMismatch  = "kind_mismatch"
	problemMissingSecret = "missing_secret"
	problemNeedsReauth   = "needs_reauth"
	// problemMissingScopes (an error): the binding's granted scopes, or
	// before any grant its configured ones, do not cover the requirement's.
	problemMissingScopes = "missing_scopes"
	// problemSharedRefreshToken (a warning): another binding references
	// the same refresh_token secret.
	problemSharedRefreshToken = "shared_refresh_token"
	// problemReauthSoon (a warning): the binding's refresh token ends
	// within the mount's reauth_warning_window.
	problemReauthSoon = "reauth_soon"
)

// maxRequirements bounds one validate request.
const maxRequirements = 10000

func pathValidate(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "validate$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefixFlowcred,
			OperationVerb:   "validate",
			OperationSuffix: "requirements",
		},
		Fields: map[string]*framework.FieldSchema{
			"requirements": {
				Type:        framework.TypeSlice,
				Description: `A deployment's credential requirements: a list of {"node": ..., "handle": ..., "kind": "google.oauth2" or ["oauth2.refresh_token", "google.oauth2"], "scopes": optional list (or one string split on spaces and commas)}.`,
				Required:    true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathValidate,
				Summary:  "Check a deployment's credential requirements against the bindings.",
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields: map[string]*framework.FieldSchema{
						"valid":    {Type: framework.TypeBool, Required: true, Description: "False when a problem is an error (missing, kind_mismatch, missing_secret, missing_scopes); warnings (needs_reauth, reauth_soon, shared_refresh_token) leave it true."},
						"problems": {Type: framework.TypeSlice, Required: true, Description: "{node, handle, required_kind, bound_kind, problem, detail} per problem."},
					},
				}}},
			},
		},
		HelpSynopsis:    pathValidateHelpSyn,
		HelpDescription: pathValidateHelpDesc,
	}
}

// requirement is one node's need for a handle of some kind.
type requirement struct {
	node   string
	handle string
	kinds  []string
	// scopes the node needs the token to carry (a set); nil: none.
	scopes []string
}

func parseRequirements(raw interface{}) ([]requirement, *fieldError) {
	list, ok := raw.([]interface{})
	if !ok {
		return nil, fieldErr("requirements", "must be a list of {node, handle, kind}")
	}
	if len(list) > maxRequirements {
		return nil, fieldErr("requirements", "more than %d entries", maxRequirements)
	}
	out := make([]requirement, 0, len(list))
	for i, item := range list {
		field := fmt.Sprintf("requirements[%d]", i)
		m, ok := item.(map[string]interface{})
		if !ok {
			return nil, fieldErr(field, "must be an object {node, handle, kind}")
		}
		for k := range m {
			if k != "node" && k != "handle" && k != "kind" && k != "scopes" {
				return nil, fieldErr(field+"."+k, "unknown key; use node, handle, kind, scopes")
			}
		}
		node, _ := m["node"].(string)
		handle, _ := m["handle"].(string)
		if handle == "" {
			return nil, fieldErr(field+".handle", "required")
		}
		if ferr := validateName(field+".handle", handle); ferr != nil {
			return nil, ferr
		}
		var kinds []string
		switch k := m["kind"].(type) {
		case string:
			kinds = []string{k}
		case []interface{}:
			for _, v := range k {
				s, ok := v.(string)
				if !ok {
					return nil, fieldErr(field+".kind", "must be a kind or a list of kinds")
				}
				kinds = append(kinds, s)
			}
		default:
			return nil, fieldErr(field+".kind", "required: a kind or a list of kinds")
		}
		if len(kinds) == 0 {
			return nil, fieldErr(field+".kind", "empty list of kinds")
		}
		for _, k := range kinds {
			if kindOf(k) == nil {
				return nil, fieldErr(field+".kind", "unknown kind %q; one of %s", truncateForMessage(k), joinKinds(allKinds()))
			}
		}
		scopes, ferr := parseRequirementScopes(field+".scopes", m["scopes"])
		if ferr != nil {
			return nil, ferr
		}
		out = append(out, requirement{node: node, handle: handle, kinds: kinds, scopes: scopes})
	}
	return out, nil
}

// parseRequirementScopes reads a requirement's scopes: absent, a list of
// strings, or one string split on spaces and commas. Each is checked as a
// binding's scopes are.
func parseRequirementScopes(field string, raw interface{}) ([]string, *fieldError) {
	var list []string
	switch v := raw.(type) {
	case nil:
		return nil, nil
	case string:
		list = scopeFields(v)
	case []interface{}:
		for _, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, fieldErr(field, "must be a list of scopes or one string of scopes separated by spaces or commas")
			}
			list = append(list, scopeFields(s)...)
		}
	default:
		return nil, fieldErr(field, "must be a list of scopes or one string of scopes separated by spaces or commas")
	}
	if len(list) > maxScopes {
		return nil, fieldErr(field, "more than %d scopes", maxScopes)
	}
	for _, s := range list {
		if ferr := validateScope(field, s); ferr != nil {
			return nil, ferr
		}
	}
	return scopeSet(list), nil
}

// scopesProblem returns the scopes of need that the binding does not cover
// and a detail, or nil when it covers them or its kind carries no scopes.
// The binding's scopes are the ones last granted when the token state
// records them, else its configured ones.
func scopesProblem(r requirement, e *bindingEntry, st *tokenState) ([]string, string) {
	if len(r.scopes) == 0 || !kindOf(e.Kind).Accepts("scopes") {
		return nil, ""
	}
	have, source := e.Scopes, "configured scopes (no grant has recorded granted scopes yet)"
	if g := grantedScopes(st); len(g) > 0 {
		have, source = g, "granted scopes (recorded at the last grant)"
	}
	set := map[string]bool{}
	for _, s := range have {
		set[s] = true
	}
	var missing []string
	for _, s := range r.scopes {
		if !set[s] {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return nil, ""
	}
	if len(have) == 0 {
		return missing, fmt.Sprintf("node %q needs scopes %s of handle %q, whose binding configures no scopes; add them to its scopes",
			r.node, strings.Join(quoteAll(missing), ", "), r.handle)
	}
	return missing, fmt.Sprintf("node %q needs scopes %s of handle %q, which its %s do not include: %s",
		r.node, strings.Join(quoteAll(missing), ", "), r.handle, source, strings.Join(quoteAll(scopeSet(have)), ", "))
}

func (b *backend) pathValidate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d, nil); resp != nil {
		return resp, nil
	}
	reqs, ferr := parseRequirements(d.Raw["requirements"])
	if ferr != nil {
		return ferr.response(), nil
	}
	problems := []map[string]interface{}{}
	valid := true
	for _, r := range reqs {
		e, err := getBinding(ctx, req.Storage, r.handle)
		if err != nil {
			return nil, err
		}
		p := map[string]interface{}{
			"node":          r.node,
			"handle":        r.handle,
			"required_kind": strings.Join(r.kinds, " | "),
			"bound_kind":    "",
		}
		if e == nil {
			p["problem"] = problemMissing
			p["detail"] = fmt.Sprintf("node %q needs handle %q of kind %s, and no binding exists; write flowcred/bindings/%s", r.node, r.handle, strings.Join(r.kinds, " or "), r.handle)
			problems = append(problems, p)
			valid = false
			continue
		}
		p["bound_kind"] = e.Kind
		if !containsString(r.kinds, e.Kind) {
			p["problem"] = problemKindMismatch
			p["detail"] = fmt.Sprintf("node %q needs handle %q of kind %s, but it is bound to kind %s", r.node, r.handle, strings.Join(r.kinds, " or "), e.Kind)
			problems = append(problems, p)
			valid = false
			continue
		}
		missing, err := missingSecrets(ctx, req.Storage, e)
		if err != nil {
			return nil, err
		}
		if len(missing) > 0 {
			p["problem"] = problemMissingSecret
			p["detail"] = fmt.Sprintf("node %q uses handle %q, whose binding references %s", r.node, r.handle, strings.Join(missing, ", "))
			problems = append(problems, p)
			valid = false
			continue
		}
		st, err := b.currentTokenState(ctx, req.Storage, r.handle, e)
		if err != nil {
			return nil, err
		}
		if missing, detail := scopesProblem(r, e, st); len(missing) > 0 {
			p["problem"] = problemMissingScopes
			p["detail"] = detail
			p["missing_scopes"] = missing
			problems = append(problems, p)
			valid = false
			continue
		}
		if st != nil && st.Status.Health == healthNeedsReauth {
			p["problem"] = problemNeedsReauth
			p["detail"] = fmt.Sprintf("node %q uses handle %q, which needs re-authorization: %s", r.node, r.handle, st.Status.LastError)
			problems = append(problems, p)
			continue
		}
		if st != nil && !st.ReauthDueAt.IsZero() {
			cfg, err := b.getConfig(ctx, req.Storage)
			if err != nil {
				return nil, err
			}
			if st.ReauthDueAt.Sub(b.now()) < cfg.reauthWindow() {
				p["problem"] = problemReauthSoon
				p["detail"] = fmt.Sprintf("node %q uses handle %q, whose refresh token ends at %s; connect it again before then (bindings/%s/authorize)",
					r.node, r.handle, st.ReauthDueAt.UTC().Format(time.RFC3339), r.handle)
				problems = append(problems, p)
				continue
			}
		}
		sharing, err := bindingsSharingRefreshSecret(ctx, req.Storage, r.handle, e)
		if err != nil {
			return nil, err
		}
		if len(sharing) > 0 {
			p["problem"] = problemSharedRefreshToken
			p["detail"] = fmt.Sprintf("node %q uses %s", r.node, sharedRefreshTokenDetail(r.handle, e, sharing))
			problems = append(problems, p)
		}
	}
	return &logical.Response{Data: map[string]interface{}{
		"valid":    valid,
		"problems": problems,
	}}, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

const pathValidateHelpSyn = "Check a deployment's credential requirements against the bindings."

const pathValidateHelpDesc = `
Write requirements, a list of {node, handle, kind, scopes} where kind is a
kind or a list of accepted kinds and scopes (optional) a list of scopes, or
one string of scopes separated by spaces or commas. The answer has valid
(false when any requirement has an error) and problems, each {node, handle,
required_kind, bound_kind, problem, detail} with problem one of: missing (no
binding), kind_mismatch (bound to another kind), missing_secret (a
referenced secret does not exist), missing_scopes (the scopes last granted,
or before any grant the binding's configured scopes, do not include the
requirement's, compared as sets; the problem also lists missing_scopes; not
checked for a kind without scopes), or needs_reauth (a warning: the
binding's provider refused its grant; valid stays true).
`

// grantedScopes are the scopes the provider granted at the last grant, when
// the token state records them; nil before any grant that said.
func grantedScopes(st *tokenState) []string {
	if st == nil {
		return nil
	}
	return st.GrantedScopes
}
