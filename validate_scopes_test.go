package flowcred

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func validateOne(t *testing.T, b *testBackend, req map[string]interface{}) (bool, []map[string]interface{}) {
	t.Helper()
	resp := b.write(t, "validate", map[string]interface{}{"requirements": []interface{}{req}})
	return resp.Data["valid"].(bool), resp.Data["problems"].([]map[string]interface{})
}

// design.md, "Validation gains scopes": before any grant, the binding's
// configured scopes must cover a requirement's scopes, compared as sets,
// from a list or one string split on spaces and commas.
func TestValidate_MissingScopes(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "bindings/cc", map[string]interface{}{
		"kind": "oauth2.client_credentials", "client_id": "id", "client_secret": testClientSecret,
		"token_url": "https://idp.example/token", "scopes": "read write",
	})
	b.write(t, "bindings/plain", map[string]interface{}{
		"kind": "oauth2.client_credentials", "client_id": "id", "client_secret": testClientSecret,
		"token_url": "https://idp.example/token",
	})
	b.write(t, "bindings/crm", map[string]interface{}{"kind": "api_token", "token": testAPIToken})

	for _, scopes := range []interface{}{[]interface{}{"write", "read"}, "read", "write,read", "read write", []interface{}{}} {
		valid, problems := validateOne(t, b, map[string]interface{}{"node": "n", "handle": "cc", "kind": "oauth2.client_credentials", "scopes": scopes})
		require.True(t, valid, "scopes %v", scopes)
		require.Empty(t, problems, "scopes %v", scopes)
	}

	valid, problems := validateOne(t, b, map[string]interface{}{"node": "n", "handle": "cc", "kind": "oauth2.client_credentials", "scopes": "read admin,audit"})
	require.False(t, valid)
	require.Len(t, problems, 1)
	require.Equal(t, "missing_scopes", problems[0]["problem"])
	require.Contains(t, problems[0]["detail"], `"admin", "audit"`)
	require.Contains(t, problems[0]["detail"], "configured scopes")
	require.Equal(t, []string{"admin", "audit"}, problems[0]["missing_scopes"])

	valid, problems = validateOne(t, b, map[string]interface{}{"node": "n", "handle": "plain", "kind": "oauth2.client_credentials", "scopes": []interface{}{"read"}})
	require.False(t, valid)
	require.Equal(t, "missing_scopes", problems[0]["problem"])
	require.Contains(t, problems[0]["detail"], "configures no scopes")

	// A kind without scopes (a static token) cannot be checked: no problem.
	valid, problems = validateOne(t, b, map[string]interface{}{"node": "n", "handle": "crm", "kind": "api_token", "scopes": []interface{}{"read"}})
	require.True(t, valid)
	require.Empty(t, problems)

	// Bad scopes are a 400 naming the field, as a binding's are.
	for _, bad := range []interface{}{42, []interface{}{"ok", 7}, []interface{}{`a"b`}} {
		resp, err := b.do(t, "update", "validate", map[string]interface{}{"requirements": []interface{}{
			map[string]interface{}{"node": "n", "handle": "cc", "kind": "oauth2.client_credentials", "scopes": bad},
		}})
		require.NoError(t, err)
		require.True(t, resp.IsError(), "scopes %v accepted", bad)
		require.Contains(t, resp.Error().Error(), "requirements[0].scopes")
	}
}

// After a grant that recorded granted scopes, those count, not the
// configured ones.
func TestValidate_MissingScopesUsesGrantedScopes(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "h", idp.TokenURL()) // configured scopes: api, offline_access
	req := map[string]interface{}{"node": "n", "handle": "h", "kind": "oauth2.refresh_token", "scopes": "api"}
	valid, _ := validateOne(t, b, req)
	require.True(t, valid)

	st := &tokenState{GrantedScopes: []string{"offline_access"}}
	require.Equal(t, []string{"offline_access"}, grantedScopes(st))
	e, err := getBinding(t.Context(), b.s, "h")
	require.NoError(t, err)
	st.BindingID = e.ID
	require.NoError(t, putTokenState(t.Context(), b.s, "h", st))
	valid, problems := validateOne(t, b, req)
	require.False(t, valid)
	require.Equal(t, "missing_scopes", problems[0]["problem"])
	require.Contains(t, problems[0]["detail"], "granted scopes")
	require.Contains(t, problems[0]["detail"], `"offline_access"`)
}
