package main

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/flowcred/vault-plugin-flowcred/internal/fakevault"
)

// TestKindTableMatchesPlugin keeps the CLI's copy of the kinds in step with
// the plugin: the same kinds, the same binding fields, and each kind
// accepting exactly the fields the CLI thinks it does.
func TestKindTableMatchesPlugin(t *testing.T) {
	fv := fakevault.Start(t)
	ctx := context.Background()
	do := func(op logical.Operation, path string, data map[string]interface{}) *logical.Response {
		t.Helper()
		req := &logical.Request{Operation: op, Path: path, Data: data, Storage: fv.Storage()}
		if op == logical.UpdateOperation {
			req.Operation = logical.CreateOperation
		}
		resp, err := fv.Backend().HandleRequest(ctx, req)
		if err != nil {
			t.Fatalf("%s %s: %v", op, path, err)
		}
		return resp
	}

	// Kinds: the plugin lists them when refusing an unknown one.
	resp := do(logical.UpdateOperation, "bindings/drift", map[string]interface{}{"kind": "no.such.kind"})
	msg := resp.Error().Error()
	i := strings.Index(msg, "one of ")
	if i < 0 {
		t.Fatalf("unexpected answer: %s", msg)
	}
	pluginKinds := strings.Split(strings.TrimSpace(msg[i+len("one of "):]), ", ")
	sort.Strings(pluginKinds)
	if strings.Join(pluginKinds, ",") != strings.Join(kindNames(), ",") {
		t.Fatalf("plugin kinds %v, CLI kinds %v", pluginKinds, kindNames())
	}

	// Fields: the union, from the plugin's OpenAPI document.
	help := do(logical.HelpOperation, "bindings/drift", nil)
	doc := help.Data["openapi"].(*framework.OASDocument)
	schema := doc.Components.Schemas["FlowcredUpdateBindingRequest"]
	if schema == nil {
		t.Fatal("no FlowcredUpdateBindingRequest schema in the plugin's OpenAPI")
	}
	var pluginFields []string
	for f := range schema.Properties {
		if f != "kind" {
			pluginFields = append(pluginFields, f)
		}
	}
	sort.Strings(pluginFields)
	set := map[string]bool{}
	for _, k := range kinds {
		for _, f := range k.managedFields() {
			set[f] = true
		}
		for _, f := range k.secret {
			set[f] = true
		}
	}
	var cliFields []string
	for f := range set {
		cliFields = append(cliFields, f)
	}
	sort.Strings(cliFields)
	if strings.Join(pluginFields, ",") != strings.Join(cliFields, ",") {
		t.Fatalf("plugin fields\n%v\nCLI fields\n%v", pluginFields, cliFields)
	}

	// Per kind: the plugin refuses exactly the fields the CLI does not accept.
	sample := map[string]interface{}{
		"scopes": "a", "extra_headers": map[string]interface{}{"x-a": "b"}, "token_params": map[string]interface{}{"audience": "x"},
		"ttl": 60, "token_url": "https://example.com/token", "auth_style": "auto", "header": "X-Key", "scheme": "Bearer",
	}
	for _, kind := range kindNames() {
		spec := kinds[kind]
		for _, f := range cliFields {
			v, ok := sample[f]
			if !ok {
				v = "v"
				if strings.HasSuffix(f, secretRefSuffix) {
					v = "s"
				}
			}
			resp := do(logical.UpdateOperation, "bindings/drift", map[string]interface{}{"kind": kind, f: v})
			refused := resp != nil && resp.IsError() &&
				(strings.Contains(resp.Error().Error(), "invalid "+f+": not used by kind") ||
					strings.Contains(resp.Error().Error(), "invalid "+f+": unknown field"))
			cliAccepts := spec.accepts(f) || spec.isSecret(f)
			if refused == cliAccepts {
				t.Errorf("kind %s field %s: plugin refuses=%v, CLI accepts=%v (%v)", kind, f, refused, cliAccepts, resp.Error())
			}
			if resp != nil && !resp.IsError() {
				do(logical.DeleteOperation, "bindings/drift", nil)
			}
		}
	}
}
