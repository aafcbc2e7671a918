package flowcred

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

const (
	testClientSecret = "cs-4f8d2a-SECRET"
	testRefreshToken = "rt-77aa91-SECRET"
	testAPIToken     = "api-0c0ffee-SECRET"
)

func TestBindings_CRUD(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "secrets/gcp_refresh_token", map[string]interface{}{"value": testRefreshToken})
	b.write(t, "bindings/google_sales", map[string]interface{}{
		"kind":                 "google.oauth2",
		"client_id":            "client-1.apps.example",
		"client_secret":        testClientSecret,
		"refresh_token_secret": "gcp_refresh_token",
		"scopes":               "https://www.googleapis.com/auth/spreadsheets,openid",
		"extra_headers":        map[string]interface{}{"x-goog-user-project": "sales"},
		"description":          "Sales sheets",
	})

	resp := b.read(t, "bindings/google_sales", nil)
	require.Equal(t, "google.oauth2", resp.Data["kind"])
	require.Equal(t, "gcp_refresh_token", resp.Data["refresh_token_secret"])
	require.Equal(t, []string{"client_id", "client_secret"}, resp.Data["inline_fields"])
	require.Equal(t, googleTokenURL, resp.Data["token_url"])
	require.Equal(t, []string{"https://www.googleapis.com/auth/spreadsheets", "openid"}, resp.Data["scopes"])
	require.Equal(t, "unknown", resp.Data["status"].(map[string]interface{})["health"])
	assertNoSecrets(t, resp)

	// Update keeps omitted fields; switching inline to a reference drops the inline value.
	b.write(t, "secrets/gcp_client_secret", map[string]interface{}{"value": testClientSecret})
	b.write(t, "bindings/google_sales", map[string]interface{}{"client_secret_secret": "gcp_client_secret"})
	resp = b.read(t, "bindings/google_sales", nil)
	require.Equal(t, []string{"client_id"}, resp.Data["inline_fields"])
	require.Equal(t, "gcp_client_secret", resp.Data["client_secret_secret"])
	require.Equal(t, "Sales sheets", resp.Data["description"])

	list, err := b.do(t, logical.ListOperation, "bindings/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"google_sales"}, list.Data["keys"])

	// A referenced secret cannot be deleted; the error lists the bindings.
	resp, err = b.do(t, logical.DeleteOperation, "secrets/gcp_client_secret", nil)
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), "google_sales")

	_, err = b.do(t, logical.DeleteOperation, "bindings/google_sales", nil)
	require.NoError(t, err)
	resp, err = b.do(t, logical.ReadOperation, "bindings/google_sales", nil)
	require.NoError(t, err)
	require.Nil(t, resp)
	// Now the secret can go.
	resp, err = b.do(t, logical.DeleteOperation, "secrets/gcp_client_secret", nil)
	require.NoError(t, err)
	require.Nil(t, resp)
}

func TestBindings_InvalidInput(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "bindings/existing", map[string]interface{}{"kind": "api_token", "token": testAPIToken})

	rt := map[string]interface{}{"kind": "oauth2.refresh_token", "client_id": "c", "refresh_token": testRefreshToken, "token_url": "https://idp.example/token"}
	with := func(base map[string]interface{}, kv ...interface{}) map[string]interface{} {
		out := map[string]interface{}{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	cases := []struct {
		name, path string
		data       map[string]interface{}
		field      string
	}{
		{"no kind", "bindings/a", map[string]interface{}{"token": testAPIToken}, "kind"},
		{"unknown kind", "bindings/a", map[string]interface{}{"kind": "oauth3"}, "kind"},
		{"kind change", "bindings/existing", map[string]interface{}{"kind": "google.oauth2"}, "kind"},
		{"field of another kind", "bindings/a", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "subject": "x"}, "subject"},
		{"unknown field", "bindings/a", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "client_secert": "x"}, "client_secert"},
		{"missing required", "bindings/a", map[string]interface{}{"kind": "api_token"}, "token"},
		{"http token_url", "bindings/a", with(rt, "token_url", "http://idp.example/token"), "token_url"},
		{"ftp token_url", "bindings/a", with(rt, "token_url", "ftp://127.0.0.1/token"), "token_url"},
		{"relative token_url", "bindings/a", with(rt, "token_url", "/token"), "token_url"},
		{"bad auth_style", "bindings/a", with(rt, "auth_style", "cookie"), "auth_style"},
		{"bad header name", "bindings/a", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "header": "X Api Key"}, "header"},
		{"header value CRLF", "bindings/a", with(rt, "extra_headers", map[string]interface{}{"x-a": "1\r\nInjected: yes"}), "extra_headers"},
		{"extra header name", "bindings/a", with(rt, "extra_headers", map[string]interface{}{"bad name": "1"}), "extra_headers"},
		{"extra header overrides credential", "bindings/a", with(rt, "extra_headers", map[string]interface{}{"authorization": "x"}), "extra_headers"},
		{"extra header reserved", "bindings/a", with(rt, "extra_headers", map[string]interface{}{"Host": "x"}), "extra_headers"},
		{"bad secret ref", "bindings/a", map[string]interface{}{"kind": "api_token", "token_secret": "../etc"}, "token_secret"},
		{"inline and ref", "bindings/a", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "token_secret": "x"}, "token_secret"},
		{"bad scope", "bindings/a", with(rt, "scopes", `a"b`), "scopes"},
		{"reserved token param", "bindings/a", map[string]interface{}{"kind": "oauth2.client_credentials", "client_id": "c", "client_secret": testClientSecret, "token_url": "https://idp.example/t", "token_params": map[string]interface{}{"grant_type": "password"}}, "token_params"},
		{"negative ttl", "bindings/a", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "ttl": -5}, "ttl"},
		{"bad scheme", "bindings/a", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "scheme": "Bear er"}, "scheme"},
		{"target_audience with scopes", "bindings/a", map[string]interface{}{"kind": "google.service_account", "client_email": "sa@p.iam.gserviceaccount.com", "private_key_secret": "k", "target_audience": "https://svc.example", "scopes": "a"}, "target_audience"},
		{"invalid handle", "bindings/bad%20name", map[string]interface{}{"kind": "api_token", "token": testAPIToken}, "handle"},
		{"too many headers", "bindings/a", with(rt, "extra_headers", manyHeaders(40)), "extra_headers"},
		{"oversized value", "bindings/a", map[string]interface{}{"kind": "api_token", "token": strings.Repeat("x", maxInlineSecretBytes+1)}, "token"},
		{"empty secret value", "secrets/s", map[string]interface{}{"value": ""}, "value"},
		{"bad secret name", "secrets/-x", map[string]interface{}{"value": "v"}, "name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := b.do(t, logical.UpdateOperation, tc.path, tc.data)
			require.NoError(t, err)
			require.NotNil(t, resp)
			require.True(t, resp.IsError(), "expected a 400")
			msg := resp.Error().Error()
			require.Contains(t, msg, tc.field, "the error names the field")
			for _, s := range []string{testAPIToken, testRefreshToken, testClientSecret} {
				require.NotContains(t, msg, s, "the error never carries a secret")
			}
		})
	}
	// Nothing was stored by the refused writes.
	list, err := b.do(t, logical.ListOperation, "bindings/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"existing"}, list.Data["keys"])
	resp := b.read(t, "bindings/existing", nil)
	require.Equal(t, "api_token", resp.Data["kind"])
}

func manyHeaders(n int) map[string]interface{} {
	m := map[string]interface{}{}
	for i := 0; i < n; i++ {
		m["x-h"+strings.Repeat("a", i+1)] = "v"
	}
	return m
}

func TestBindings_MissingSecretReported(t *testing.T) {
	b := getTestBackend(t, nil)
	resp := b.write(t, "bindings/api", map[string]interface{}{"kind": "api_token", "token_secret": "later"})
	require.NotNil(t, resp)
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], `"later"`)

	read := b.read(t, "bindings/api", nil)
	status := read.Data["status"].(map[string]interface{})
	require.Equal(t, []string{`secret "later" (field token_secret)`}, status["missing_secrets"])

	tok, err := b.do(t, logical.ReadOperation, "token/api", nil)
	require.NoError(t, err)
	require.True(t, tok.IsError())
	require.Contains(t, tok.Error().Error(), "token_secret")
	require.Contains(t, tok.Error().Error(), `"later"`)

	b.write(t, "secrets/later", map[string]interface{}{"value": testAPIToken})
	tok = b.read(t, "token/api", nil)
	require.Equal(t, testAPIToken, tok.Data["access_token"])
}

func TestValidate_Problems(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "bindings/google_sales", map[string]interface{}{"kind": "google.oauth2", "client_id": "c", "client_secret": testClientSecret, "refresh_token": testRefreshToken})
	b.write(t, "bindings/stripe", map[string]interface{}{"kind": "api_token", "token": testAPIToken})
	b.write(t, "bindings/crm", map[string]interface{}{"kind": "api_token", "token_secret": "crm_token"})

	resp := b.write(t, "validate", map[string]interface{}{"requirements": []interface{}{
		map[string]interface{}{"node": "n1", "handle": "google_sales", "kind": "google.oauth2"},
		map[string]interface{}{"node": "n2", "handle": "google_sales", "kind": []interface{}{"oauth2.refresh_token", "google.oauth2"}},
		map[string]interface{}{"node": "n3", "handle": "nope", "kind": "api_token"},
		map[string]interface{}{"node": "n4", "handle": "stripe", "kind": "google.oauth2"},
		map[string]interface{}{"node": "n5", "handle": "crm", "kind": "api_token"},
	}})
	require.Equal(t, false, resp.Data["valid"])
	problems := resp.Data["problems"].([]map[string]interface{})
	require.Len(t, problems, 3)
	got := map[string]string{}
	for _, p := range problems {
		got[p["node"].(string)] = p["problem"].(string)
		require.NotEmpty(t, p["detail"])
	}
	require.Equal(t, map[string]string{"n3": "missing", "n4": "kind_mismatch", "n5": "missing_secret"}, got)
	require.Equal(t, "api_token", problems[1]["bound_kind"])
	require.Equal(t, "google.oauth2", problems[1]["required_kind"])

	// All fine: valid.
	resp = b.write(t, "validate", map[string]interface{}{"requirements": []interface{}{
		map[string]interface{}{"node": "n1", "handle": "stripe", "kind": "api_token"},
	}})
	require.Equal(t, true, resp.Data["valid"])

	// Bad requirement entries name the entry and key.
	bad, err := b.do(t, logical.UpdateOperation, "validate", map[string]interface{}{"requirements": []interface{}{
		map[string]interface{}{"node": "n1", "handle": "stripe", "kind": "oauth3"},
	}})
	require.NoError(t, err)
	require.True(t, bad.IsError())
	require.Contains(t, bad.Error().Error(), "requirements[0].kind")
}

func TestConfig_RoundTrip(t *testing.T) {
	b := getTestBackend(t, nil)
	resp := b.read(t, "config", nil)
	require.EqualValues(t, 300, resp.Data["refresh_margin"])
	b.write(t, "config", map[string]interface{}{"refresh_margin": "2m", "http_timeout": 5})
	resp = b.read(t, "config", nil)
	require.EqualValues(t, 120, resp.Data["refresh_margin"])
	require.EqualValues(t, 5, resp.Data["http_timeout"])

	bad, err := b.do(t, logical.UpdateOperation, "config", map[string]interface{}{"http_timeout": 0})
	require.NoError(t, err)
	require.True(t, bad.IsError())
	require.Contains(t, bad.Error().Error(), "http_timeout")
	resp = b.read(t, "config", nil)
	require.EqualValues(t, 5, resp.Data["http_timeout"], "a refused write changes nothing")
}

// assertNoSecrets fails if a response's JSON carries any test secret.
func assertNoSecrets(t *testing.T, resp *logical.Response) {
	t.Helper()
	raw, err := json.Marshal(resp)
	require.NoError(t, err)
	for _, s := range []string{testAPIToken, testRefreshToken, testClientSecret} {
		require.NotContains(t, string(raw), s)
	}
}
