package flowcred

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
)

// Merging a binding write into the stored binding and checking the result:
// every refusal is a *fieldError naming the field, and nothing is stored.

// applyBindingInput merges a write request into a copy of the stored binding
// (nil on create) and checks the result. Nothing is stored on error.
func applyBindingInput(old *bindingEntry, d *framework.FieldData) (*bindingEntry, *fieldError) {
	// The handle comes from the path, whose pattern has no length limit:
	// a handle over the limit could be written but never read.
	if h, ok := d.Raw["handle"].(string); ok {
		if ferr := validateName("handle", h); ferr != nil {
			return nil, ferr
		}
	}
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
		if kindOf(kind) == nil {
			return nil, fieldErr("kind", "unknown kind %q; one of %s", truncateForMessage(kind), joinKinds(allKinds()))
		}
		e.Kind = kind
	}
	spec := kindOf(e.Kind)

	// Every given field must belong to this kind.
	given := make([]string, 0, len(d.Raw))
	for k := range d.Raw {
		given = append(given, k)
	}
	sort.Strings(given)
	for _, k := range given {
		if k == "handle" || k == "kind" || spec.Accepts(k) {
			continue
		}
		if owners := kindtable.KindsAccepting(k); len(owners) > 0 {
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
func applyField(e *bindingEntry, spec *kind, k string, d *framework.FieldData) *fieldError {
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
	case k == "revoke_on_delete":
		if raw.(bool) {
			e.Plain[k] = "true"
		} else {
			delete(e.Plain, k)
		}
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
	case strings.HasSuffix(k, secretRefSuffix) && spec.IsSecret(strings.TrimSuffix(k, secretRefSuffix)):
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
	case spec.IsSecret(k):
		v := raw.(string)
		if spec.cleanSecret != nil {
			var ferr *fieldError
			if v, ferr = spec.cleanSecret(k, v); ferr != nil {
				return ferr
			}
		}
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
	case "token_url", "authorization_url", "device_authorization_url", "redirect_uri", "revocation_url":
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
func checkBinding(e *bindingEntry, spec *kind) *fieldError {
	complete := false
	var firstMissing []string
	for _, group := range spec.Required {
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
		alts := make([]string, len(spec.Required))
		for i, g := range spec.Required {
			alts[i] = strings.Join(g, " + ")
		}
		return fieldErr(firstMissing[0], "required by kind %s (give %s; secret fields inline or as <field>_secret)", e.Kind, strings.Join(alts, ", or "))
	}
	// The credential header cannot be overridden by extra_headers.
	credHeader := spec.header(e)
	for name := range e.ExtraHeaders {
		if strings.EqualFold(name, credHeader) {
			return fieldErr("extra_headers", "header %q carries the credential and cannot be set in extra_headers", name)
		}
	}
	if spec.validate != nil {
		return spec.validate(e)
	}
	return nil
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
