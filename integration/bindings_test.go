package integration

import (
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

// The plugin is registered in the catalog with its sha256 and the version it
// reports, and the mount runs exactly that binary and version.
func TestPluginRegisteredAndEnabled(t *testing.T) {
	s := env(t)
	require.NotEmpty(t, s.PluginVersion, "the plugin reports a version")

	p, err := s.Client.Sys().GetPlugin(&api.GetPluginInput{Name: s.PluginName, Type: api.PluginTypeSecrets, Version: s.PluginVersion})
	require.NoError(t, err)
	require.Equal(t, s.PluginSHA256, p.SHA256)
	require.Equal(t, s.PluginVersion, p.Version)
	require.False(t, p.Builtin)

	mounts, err := s.Client.Sys().ListMounts()
	require.NoError(t, err)
	m, ok := mounts[s.Mount+"/"]
	require.True(t, ok, "mount %s/ not found", s.Mount)
	require.Equal(t, s.PluginName, m.Type)
	require.Equal(t, s.PluginVersion, m.PluginVersion)
	require.Equal(t, s.PluginVersion, m.RunningVersion)
	require.Equal(t, s.PluginSHA256, m.RunningSha256)
}

// Bindings and secrets: create, update, read, list, delete through the API.
func TestBindingsAndSecretsCRUD(t *testing.T) {
	env(t)
	tokenValue := plant("crud_token")
	clientID, clientSecret := plant("crud_client_id"), plant("crud_client_secret")

	// A secret: write-only; reads show the name and timestamps.
	write(t, "secrets/crud_s1", map[string]interface{}{"value": tokenValue})
	sec := read(t, "secrets/crud_s1").Data
	require.Equal(t, "crud_s1", sec["name"])
	require.NotEmpty(t, sec["created_at"])
	require.NotEmpty(t, sec["updated_at"])
	require.NotContains(t, sec, "value")
	require.Contains(t, list(t, "secrets/"), "crud_s1")

	// An api_token binding referencing it.
	write(t, "bindings/crud_api", map[string]interface{}{
		"kind":         "api_token",
		"token_secret": "crud_s1",
		"description":  "first",
	})
	b := read(t, "bindings/crud_api").Data
	require.Equal(t, "crud_api", b["handle"])
	require.Equal(t, "api_token", b["kind"])
	require.Equal(t, "first", b["description"])
	require.Equal(t, "crud_s1", b["token_secret"])
	require.Empty(t, strList(t, b["inline_fields"]))
	status := b["status"].(map[string]interface{})
	require.Equal(t, "ok", status["health"])
	createdAt := b["created_at"]

	// Update: omitted fields keep their values.
	write(t, "bindings/crud_api", map[string]interface{}{"description": "second"})
	b = read(t, "bindings/crud_api").Data
	require.Equal(t, "second", b["description"])
	require.Equal(t, "crud_s1", b["token_secret"])
	require.Equal(t, "api_token", b["kind"])
	require.Equal(t, createdAt, b["created_at"])

	// A binding with inline secrets, scopes and token_params.
	write(t, "bindings/crud_cc", map[string]interface{}{
		"kind":          "oauth2.client_credentials",
		"client_id":     clientID,
		"client_secret": clientSecret,
		"token_url":     "http://127.0.0.1:9/token",
		"scopes":        "read,write",
		"token_params":  map[string]interface{}{"audience": "https://api.example.com"},
		"auth_style":    "params",
	})
	b = read(t, "bindings/crud_cc").Data
	require.Equal(t, "oauth2.client_credentials", b["kind"])
	require.Equal(t, []string{"client_id", "client_secret"}, strList(t, b["inline_fields"]))
	require.Equal(t, "http://127.0.0.1:9/token", b["token_url"])
	require.Equal(t, []string{"read", "write"}, strList(t, b["scopes"]))
	require.Equal(t, map[string]string{"audience": "https://api.example.com"}, strMap(t, b["token_params"]))
	require.Equal(t, "params", b["auth_style"])
	require.NotContains(t, b, "client_secret")
	require.NotContains(t, b, "client_id")

	keys := list(t, "bindings/")
	require.Contains(t, keys, "crud_api")
	require.Contains(t, keys, "crud_cc")

	// Delete.
	del(t, "bindings/crud_cc")
	require.Nil(t, readData(t, "bindings/crud_cc"))
	require.NotContains(t, list(t, "bindings/"), "crud_cc")
	del(t, "bindings/crud_api")
	del(t, "secrets/crud_s1")
	require.Nil(t, readData(t, "secrets/crud_s1"))
	require.NotContains(t, list(t, "secrets/"), "crud_s1")
}

// Bad input is a 400 naming the field, and a refused write changes nothing.
func TestBindingWriteRefused(t *testing.T) {
	env(t)
	write(t, "bindings/ref_api", map[string]interface{}{
		"kind":          "api_token",
		"token":         plant("ref_token"),
		"extra_headers": map[string]interface{}{"X-Team": "ops"},
	})
	before := read(t, "bindings/ref_api").Data

	cases := []struct {
		name   string
		handle string // an existing binding (ref_api) or a new handle
		data   map[string]interface{}
		want   []string // the message names the field (and value)
	}{
		{"unknown kind", "ref_new1", map[string]interface{}{"kind": "nope.kind", "token": "x"}, []string{"kind", "nope.kind"}},
		{"field of another kind", "ref_api", map[string]interface{}{"subject": "someone"}, []string{"subject", "api_token"}},
		{"field of another kind on create", "ref_new2", map[string]interface{}{"kind": "api_token", "token": "x", "token_url": "https://example.com/t"}, []string{"token_url"}},
		{"http token_url off loopback", "ref_new3", map[string]interface{}{
			"kind": "oauth2.client_credentials", "client_id": "i", "client_secret": "s", "token_url": "http://example.com/token",
		}, []string{"token_url", "http://example.com/token"}},
		{"header name not a token", "ref_api", map[string]interface{}{"extra_headers": map[string]interface{}{"Bad Header": "v"}}, []string{"extra_headers", "Bad Header"}},
		{"header value with CR/LF", "ref_api", map[string]interface{}{"extra_headers": map[string]interface{}{"X-Inject": "a\r\nSet-Cookie: x=y"}}, []string{"extra_headers", "X-Inject"}},
		{"header value with LF", "ref_api", map[string]interface{}{"extra_headers": map[string]interface{}{"X-Inject": "a\nb"}}, []string{"extra_headers"}},
		{"invalid secret reference name", "ref_api", map[string]interface{}{"token_secret": "bad name!"}, []string{"token_secret", "bad name!"}},
		{"kind change on update", "ref_api", map[string]interface{}{"kind": "oauth2.client_credentials"}, []string{"kind", "api_token", "oauth2.client_credentials"}},
		{"api_token header not a token", "ref_api", map[string]interface{}{"header": "X Bad"}, []string{"header"}},
		{"missing required field", "ref_new4", map[string]interface{}{"kind": "api_token"}, []string{"token"}},
		{"unknown field", "ref_api", map[string]interface{}{"client_secert": "typo"}, []string{"client_secert"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.Client.Logical().Write(mp("bindings/"+tc.handle), tc.data)
			requireStatus(t, err, 400, tc.want...)
			if tc.handle == "ref_api" {
				require.Equal(t, before, read(t, "bindings/ref_api").Data, "a refused update changed the binding")
			} else {
				require.Nil(t, readData(t, "bindings/"+tc.handle), "a refused create left a binding")
			}
		})
	}

	// An invalid handle in the path names the handle.
	_, err := srv.Client.Logical().Write(mp("bindings/-bad-"), map[string]interface{}{"kind": "api_token", "token": "x"})
	requireStatus(t, err, 400, "handle", "-bad-")
	require.NotContains(t, list(t, "bindings/"), "-bad-")

	del(t, "bindings/ref_api")
}

// A referenced secret cannot be deleted; the error lists the bindings.
func TestSecretDeleteRefusedWhileReferenced(t *testing.T) {
	env(t)
	write(t, "secrets/del_s", map[string]interface{}{"value": plant("del_s")})
	write(t, "bindings/del_a", map[string]interface{}{"kind": "api_token", "token_secret": "del_s"})
	write(t, "bindings/del_b", map[string]interface{}{
		"kind":                 "oauth2.client_credentials",
		"client_id":            "del-client",
		"client_secret_secret": "del_s",
		"token_url":            "https://auth.example.com/token",
	})

	_, err := srv.Client.Logical().Delete(mp("secrets/del_s"))
	requireStatus(t, err, 400, "del_s", "del_a", "del_b")
	require.NotNil(t, readData(t, "secrets/del_s"), "a refused delete removed the secret")

	// Once nothing references it, the delete succeeds.
	del(t, "bindings/del_a")
	_, err = srv.Client.Logical().Delete(mp("secrets/del_s"))
	requireStatus(t, err, 400, "del_b")
	del(t, "bindings/del_b")
	del(t, "secrets/del_s")
	require.Nil(t, readData(t, "secrets/del_s"))
}

// A binding may reference a secret that does not exist yet: the write
// warns, the binding read and validate say so, and token reads are a 400.
func TestMissingSecret(t *testing.T) {
	env(t)
	resp := write(t, "bindings/ms_api", map[string]interface{}{"kind": "api_token", "token_secret": "ms_absent"})
	require.NotNil(t, resp, "want a response carrying a warning")
	require.NotEmpty(t, resp.Warnings)
	require.Contains(t, resp.Warnings[0], "ms_absent")

	b := read(t, "bindings/ms_api").Data
	status := b["status"].(map[string]interface{})
	missing := strList(t, status["missing_secrets"])
	require.Len(t, missing, 1)
	require.Contains(t, missing[0], "ms_absent")
	require.Contains(t, missing[0], "token_secret")

	_, err := srv.Client.Logical().Read(mp("token/ms_api"))
	requireStatus(t, err, 400, "token_secret", "ms_absent", "ms_api")

	v := write(t, "validate", map[string]interface{}{"requirements": []interface{}{
		map[string]interface{}{"node": "call_api", "handle": "ms_api", "kind": "api_token"},
	}})
	require.Equal(t, false, v.Data["valid"])
	problems := v.Data["problems"].([]interface{})
	require.Len(t, problems, 1)
	require.Equal(t, "missing_secret", problems[0].(map[string]interface{})["problem"])

	// Writing the secret makes the binding whole.
	value := plant("ms_value")
	write(t, "secrets/ms_absent", map[string]interface{}{"value": value})
	require.Equal(t, value, read(t, "token/ms_api").Data["access_token"])
	require.NotContains(t, read(t, "bindings/ms_api").Data["status"], "missing_secrets")

	del(t, "bindings/ms_api")
	del(t, "secrets/ms_absent")
}
