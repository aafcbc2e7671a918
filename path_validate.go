package flowcred

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Problem names of the validate response (design.md, "Validation").
const (
	problemMissing       = "missing"
	problemKindMismatch  = "kind_mismatch"
	problemMissingSecret = "missing_secret"
	problemNeedsReauth   = "needs_reauth"
	// problemSharedRefreshToken (a warning): another binding references
	// the same refresh_token secret.
	problemSharedRefreshToken = "shared_refresh_token"
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
				Description: `A deployment's credential requirements: a list of {"node": ..., "handle": ..., "kind": "google.oauth2" or ["oauth2.refresh_token", "google.oauth2"]}.`,
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
						"valid":    {Type: framework.TypeBool, Required: true},
						"problems": {Type: framework.TypeSlice, Required: true},
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
			if k != "node" && k != "handle" && k != "kind" {
				return nil, fieldErr(field+"."+k, "unknown key; use node, handle, kind")
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
		out = append(out, requirement{node: node, handle: handle, kinds: kinds})
	}
	return out, nil
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
		if st != nil && st.Status.Health == healthNeedsReauth {
			p["problem"] = problemNeedsReauth
			p["detail"] = fmt.Sprintf("node %q uses handle %q, which needs re-authorization: %s", r.node, r.handle, st.Status.LastError)
			problems = append(problems, p)
			continue
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
Write requirements, a list of {node, handle, kind} where kind is a kind or a
list of accepted kinds. The answer has valid (false when any requirement
has an error) and problems, each {node, handle, required_kind, bound_kind,
problem, detail} with problem one of: missing (no binding), kind_mismatch
(bound to another kind), missing_secret (a referenced secret does not exist),
or needs_reauth (a warning: the binding's provider refused its grant; valid
stays true).
`
