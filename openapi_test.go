package flowcred

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// openAPIDoc is the plugin's OpenAPI document, as Vault builds its spec.
func openAPIDoc(t *testing.T) *framework.OASDocument {
	b := newBackend(defaultDeps())
	conf := &logical.BackendConfig{
		StorageView: &logical.InmemStorage{},
		System: &logical.StaticSystemView{
			DefaultLeaseTTLVal: time.Hour, MaxLeaseTTLVal: time.Hour,
			PluginEnvironment: &logical.PluginEnvironment{VaultVersion: "1.14.8"},
		},
		Logger: hclog.NewNullLogger(),
	}
	require.NoError(t, b.Setup(context.Background(), conf))
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.HelpOperation, Storage: conf.StorageView})
	require.NoError(t, err)
	return resp.Data["openapi"].(*framework.OASDocument)
}

// wantOperations are the operations of every path (issue 18: the real
// paths, not shadowed by catch-alls).
var wantOperations = map[string][]string{
	"/bindings/":                            {"get"},
	"/bindings/{handle}":                    {"delete", "get", "post"},
	"/bindings/{handle}/refresh":            {"post"},
	"/bindings/{handle}/authorize":          {"post"},
	"/bindings/{handle}/authorize/complete": {"post"},
	"/bindings/{handle}/device":             {"post"},
	"/callback":                             {"get"},
	"/config":                               {"get", "post"},
	"/health":                               {"get"},
	"/metrics":                              {"get"},
	"/secrets/":                             {"get"},
	"/secrets/{name}":                       {"delete", "get", "post"},
	"/token/{handle}":                       {"get"},
	"/validate":                             {"post"},
}

// rawAnswers answer a body of their own (HTML, the text format), not JSON.
var rawAnswers = map[string]bool{"/callback": true, "/metrics": true}

func TestOpenAPI_EveryPathOperationAndResponse(t *testing.T) {
	doc := openAPIDoc(t)
	got := map[string][]string{}
	var problems []string
	for p, item := range doc.Paths {
		ops := map[string]*framework.OASOperation{"get": item.Get, "post": item.Post, "delete": item.Delete}
		for name, op := range ops {
			if op == nil {
				continue
			}
			got[p] = append(got[p], name)
			if op.Summary == "" {
				problems = append(problems, name+" "+p+": no summary")
			}
			if name == "delete" || rawAnswers[p] {
				continue
			}
			if r := op.Responses[200]; (r == nil || r.Content == nil) && op.Responses[204] == nil {
				problems = append(problems, name+" "+p+": neither a 200 response schema nor a 204")
			}
		}
		sort.Strings(got[p])
	}
	sort.Strings(problems)
	require.Empty(t, problems)
	require.Equal(t, wantOperations, got)

	// Every field of every response schema is described.
	var undocumented []string
	for name, s := range doc.Components.Schemas {
		if !strings.HasSuffix(name, "Response") || name == "StandardListResponse" { // the SDK's own
			continue
		}
		for f, prop := range s.Properties {
			if prop.Description == "" {
				undocumented = append(undocumented, fmt.Sprintf("%s.%s", name, f))
			}
		}
	}
	sort.Strings(undocumented)
	require.Empty(t, undocumented, "response fields without a description")
}
