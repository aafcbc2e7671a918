package flowcred

import (
	"crypto/subtle"
	"reflect"
	"sort"
	"strings"
)

// What a binding write changes, for dry_run answers (design.md, "Names and
// answers fixed for v0.2") and for writes that change nothing, which store
// nothing. Secret values are compared here and never rendered: a change of
// an inline secret is reported by field name only.

// Operations a binding write performs.
const (
	bindingOpCreate    = "create"
	bindingOpUpdate    = "update"
	bindingOpUnchanged = "unchanged"
)

// fieldChange is one field a write changes. Old and New are nil for an
// inline secret value (and for the side that is absent).
type fieldChange struct {
	Field  string
	Change string // added, changed, removed
	Secret bool
	Old    interface{}
	New    interface{}
}

func (c fieldChange) data() map[string]interface{} {
	out := map[string]interface{}{"field": c.Field, "change": c.Change, "secret": c.Secret}
	if c.Old != nil {
		out["old"] = c.Old
	}
	if c.New != nil {
		out["new"] = c.New
	}
	return out
}

// bindingFieldValues is a binding's fields as a write names them, without
// inline secret values: each plain field, description, ttl (seconds),
// scopes (sorted, without duplicates: they are compared as sets), the maps,
// and the <field>_secret references. Empty values are absent, as a write of
// an empty value clears the field (except scheme, where "" means a bare
// token and is kept).
func bindingFieldValues(e *bindingEntry) map[string]interface{} {
	out := map[string]interface{}{}
	if e == nil {
		return out
	}
	if e.Description != "" {
		out["description"] = e.Description
	}
	if e.TTL > 0 {
		out["ttl"] = int64(e.TTL.Seconds())
	}
	for k, v := range e.Plain {
		out[k] = v
	}
	if s := scopeSet(e.Scopes); len(s) > 0 {
		out["scopes"] = s
	}
	if len(e.TokenParams) > 0 {
		out["token_params"] = copyMap(e.TokenParams)
	}
	if len(e.ExtraHeaders) > 0 {
		out["extra_headers"] = copyMap(e.ExtraHeaders)
	}
	for f, ref := range e.Refs {
		out[f+secretRefSuffix] = ref
	}
	return out
}

// scopeSet returns scopes sorted and without duplicates.
func scopeSet(scopes []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// scopeFields splits a string of scopes on spaces and commas.
func scopeFields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' })
}

// diffBindings lists, sorted by field, what changes from old (nil: none) to
// e. It compares inline secret values in constant time and reports them by
// name only.
func diffBindings(old, e *bindingEntry) []fieldChange {
	var out []fieldChange
	before, after := bindingFieldValues(old), bindingFieldValues(e)
	for f, nv := range after {
		ov, had := before[f]
		switch {
		case !had:
			out = append(out, fieldChange{Field: f, Change: "added", New: nv})
		case !reflect.DeepEqual(ov, nv):
			out = append(out, fieldChange{Field: f, Change: "changed", Old: ov, New: nv})
		}
	}
	for f, ov := range before {
		if _, has := after[f]; !has {
			out = append(out, fieldChange{Field: f, Change: "removed", Old: ov})
		}
	}
	var oldInline map[string]string
	if old != nil {
		oldInline = old.Inline
	}
	for f, nv := range e.Inline {
		ov, had := oldInline[f]
		switch {
		case !had:
			out = append(out, fieldChange{Field: f, Change: "added", Secret: true})
		case subtle.ConstantTimeCompare([]byte(ov), []byte(nv)) != 1:
			out = append(out, fieldChange{Field: f, Change: "changed", Secret: true})
		}
	}
	for f := range oldInline {
		if _, has := e.Inline[f]; !has {
			out = append(out, fieldChange{Field: f, Change: "removed", Secret: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// dryRunData is a dry run's answer: what the write would do, field by field.
func dryRunData(handle string, e *bindingEntry, op string, changes []fieldChange) map[string]interface{} {
	fields := make([]string, 0, len(changes))
	list := make([]map[string]interface{}, 0, len(changes))
	for _, c := range changes {
		fields = append(fields, c.Field)
		list = append(list, c.data())
	}
	return map[string]interface{}{
		"dry_run":        true,
		"handle":         handle,
		"kind":           e.Kind,
		"operation":      op,
		"changed_fields": fields,
		"changes":        list,
	}
}
