package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// checker collects problems with their file locations.
type checker struct {
	path     string
	problems []string
	lines    []int
}

func (c *checker) addf(line int, format string, args ...interface{}) {
	loc := c.path
	if line > 0 {
		loc += ":" + strconv.Itoa(line)
	}
	c.problems = append(c.problems, loc+": "+fmt.Sprintf(format, args...))
	c.lines = append(c.lines, line)
}

// sorted returns the problems in the order of their lines in the file.
func (c *checker) sorted() []string {
	idx := make([]int, len(c.problems))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return c.lines[idx[i]] < c.lines[idx[j]] })
	out := make([]string, len(idx))
	for i, k := range idx {
		out[i] = c.problems[k]
	}
	return out
}

func (c *checker) bindings(n *yaml.Node) []binding {
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		c.addf(n.Line, "bindings must be a map of handle to binding")
		return nil
	}
	var out []binding
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		handle := k.Value
		switch {
		case k.Kind != yaml.ScalarNode || !validName(handle):
			c.addf(k.Line, "bindings: %q is not a valid handle (letters, digits, _, - and ., starting and ending with a letter or digit)", handle)
			continue
		case seen[handle]:
			c.addf(k.Line, "bindings.%s: defined twice", handle)
			continue
		}
		seen[handle] = true
		if b, ok := c.binding(handle, v); ok {
			b.line = k.Line // where bindings.<handle> starts
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].handle < out[j].handle })
	return out
}

func (c *checker) binding(handle string, n *yaml.Node) (binding, bool) {
	b := binding{handle: handle, line: n.Line, fields: map[string]interface{}{}}
	if n.Kind != yaml.MappingNode {
		c.addf(n.Line, "bindings.%s: must be a map of fields (kind, <field>_secret, scopes, ...)", handle)
		return b, false
	}
	before := len(c.problems)
	vals := map[string]*yaml.Node{}
	var order []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := vals[k.Value]; dup {
			c.addf(k.Line, "bindings.%s.%s: given twice", handle, k.Value)
			continue
		}
		vals[k.Value] = v
		order = append(order, k.Value)
	}
	kindNode := vals["kind"]
	if kindNode == nil || kindNode.Kind != yaml.ScalarNode || kindNode.Value == "" {
		c.addf(n.Line, "bindings.%s: kind is required (one of %s)", handle, strings.Join(kindNames(), ", "))
		return b, false
	}
	b.kind = kindNode.Value
	spec, ok := kinds[b.kind]
	if !ok {
		c.addf(kindNode.Line, "bindings.%s.kind: unknown kind %q (one of %s)", handle, b.kind, strings.Join(kindNames(), ", "))
		return b, false
	}
	for _, f := range order {
		if f == "kind" {
			continue
		}
		v := vals[f]
		where := "bindings." + handle + "." + f
		switch {
		case isAnySecretField(f):
			c.addf(v.Line, "%s: secret values do not belong in a deployment file; store it with `flowcred secret put NAME -from-file PATH` and write %s%s: NAME", where, f, secretRefSuffix)
		case !spec.accepts(f):
			if owners := kindsAccepting(f); len(owners) > 0 {
				c.addf(v.Line, "%s: not used by kind %s (it belongs to %s)", where, b.kind, strings.Join(owners, ", "))
			} else {
				c.addf(v.Line, "%s: unknown field for kind %s (known: %s)", where, b.kind, strings.Join(spec.managedFields(), ", "))
			}
		default:
			if val, ok := c.value(where, f, v); ok {
				b.fields[f] = val
			}
		}
	}
	return b, len(c.problems) == before
}

// value converts a field's YAML value to its payload form.
func (c *checker) value(where, field string, v *yaml.Node) (interface{}, bool) {
	switch {
	case field == "scopes":
		if v.Kind == yaml.ScalarNode {
			return splitScopes(v.Value), true
		}
		if v.Kind != yaml.SequenceNode {
			c.addf(v.Line, "%s must be a list of scopes (or one string of scopes separated by spaces or commas)", where)
			return nil, false
		}
		out := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				c.addf(item.Line, "%s: each scope must be a string", where)
				return nil, false
			}
			out = append(out, item.Value)
		}
		return out, true
	case field == "extra_headers" || field == "token_params":
		if v.Kind != yaml.MappingNode {
			c.addf(v.Line, "%s: must be a map of name: value", where)
			return nil, false
		}
		out := map[string]string{}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], v.Content[i+1]
			if k.Kind != yaml.ScalarNode || val.Kind != yaml.ScalarNode {
				c.addf(k.Line, "%s: each entry must be name: value", where)
				return nil, false
			}
			out[k.Value] = val.Value
		}
		return out, true
	case field == "ttl":
		if v.Kind != yaml.ScalarNode {
			c.addf(v.Line, "%s: must be a duration (e.g. 1h, 90m) or a number of seconds", where)
			return nil, false
		}
		if n, err := strconv.Atoi(v.Value); err == nil && n >= 0 {
			return n, true
		}
		if d, err := time.ParseDuration(v.Value); err == nil && d >= 0 {
			return v.Value, true
		}
		c.addf(v.Line, "%s: %q is not a duration (e.g. 1h, 90m) or a number of seconds", where, v.Value)
		return nil, false
	default:
		if v.Kind != yaml.ScalarNode || (v.Tag == "!!null" && v.Value != "") {
			c.addf(v.Line, "%s: must be a single value", where)
			return nil, false
		}
		if strings.HasSuffix(field, secretRefSuffix) && !validName(v.Value) {
			c.addf(v.Line, "%s: %q is not a valid secret name (letters, digits, _, - and ., starting and ending with a letter or digit)", where, v.Value)
			return nil, false
		}
		return v.Value, true
	}
}

func splitScopes(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

// nodeKeys are the keys of a node.
var nodeKeys = []string{"id", "credential", "requires", "scopes"}

func (c *checker) nodes(n *yaml.Node) []node {
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		c.addf(n.Line, "nodes must be a list of {id, credential, requires, scopes}")
		return nil
	}
	var out []node
	ids := map[string]bool{}
	for i, item := range n.Content {
		if nd, ok := c.node(i, item, ids); ok {
			out = append(out, nd)
		}
	}
	return out
}

// node checks one entry of nodes:; ok is false for a node without a
// credential or with a problem.
func (c *checker) node(i int, item *yaml.Node, ids map[string]bool) (node, bool) {
	line := item.Line
	where := fmt.Sprintf("nodes[%d]", i)
	if item.Kind != yaml.MappingNode {
		c.addf(line, "%s: must be a map of id, credential, requires, scopes", where)
		return node{}, false
	}
	vals := map[string]*yaml.Node{}
	for j := 0; j+1 < len(item.Content); j += 2 {
		k, v := item.Content[j], item.Content[j+1]
		switch {
		case !containsStr(nodeKeys, k.Value):
			c.addf(k.Line, "unknown key %q in a node (known: %s)", k.Value, strings.Join(nodeKeys, ", "))
		case vals[k.Value] != nil:
			c.addf(k.Line, "%s: %s given twice", where, k.Value)
		default:
			vals[k.Value] = v
		}
	}
	scalar := func(key string) string {
		v := vals[key]
		if v == nil || (v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
			return ""
		}
		if v.Kind != yaml.ScalarNode {
			c.addf(v.Line, "%s: %s must be a single value", where, key)
			return ""
		}
		return v.Value
	}
	id, credential := scalar("id"), scalar("credential")
	if id != "" {
		where += " (" + id + ")"
		if ids[id] {
			c.addf(line, "%s: node id %q is used twice", where, id)
		}
		ids[id] = true
	} else {
		c.addf(line, "%s: id is required", where)
	}
	requires := vals["requires"]
	hasRequires := requires != nil && requires.Tag != "!!null"
	hasScopes := vals["scopes"] != nil && vals["scopes"].Tag != "!!null"
	switch {
	case credential == "" && !hasRequires && !hasScopes:
		return node{}, false // a node without a credential
	case credential == "":
		c.addf(line, "%s: requires or scopes is given but credential (the handle) is not", where)
		return node{}, false
	case !validName(credential):
		c.addf(line, "%s: credential %q is not a valid handle", where, credential)
		return node{}, false
	case !hasRequires:
		c.addf(line, "%s: credential %s has no requires; name the kind (or list of kinds) the node accepts", where, credential)
		return node{}, false
	}
	before := len(c.problems)
	var ks []string
	switch requires.Kind {
	case yaml.ScalarNode:
		ks = []string{requires.Value}
	case yaml.SequenceNode:
		for _, k := range requires.Content {
			if k.Kind != yaml.ScalarNode {
				c.addf(k.Line, "%s: requires must be a kind or a list of kinds", where)
				return node{}, false
			}
			ks = append(ks, k.Value)
		}
		if len(ks) == 0 {
			c.addf(line, "%s: requires is an empty list", where)
		}
	default:
		c.addf(line, "%s: requires must be a kind or a list of kinds", where)
	}
	for _, k := range ks {
		if _, known := kinds[k]; !known {
			c.addf(line, "%s: requires unknown kind %q (one of %s)", where, k, strings.Join(kindNames(), ", "))
		}
	}
	var scopes []string
	if hasScopes {
		if v, ok := c.value(where+": scopes", "scopes", vals["scopes"]); ok {
			scopes = v.([]string)
			for _, s := range scopes {
				if !validScope(s) {
					c.addf(vals["scopes"].Line, "%s: scope %q has a character OAuth2 does not allow in a scope", where, s)
				}
			}
		}
	}
	if len(c.problems) > before || len(ks) == 0 {
		return node{}, false
	}
	return node{id: id, credential: credential, kinds: ks, scopes: scopes, line: line}, true
}

// validScope reports whether s is an OAuth2 scope token (RFC 6749 3.3).
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
