package flowcred

import (
	"encoding/json"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// changesByField indexes a dry run's changes.
func changesByField(t *testing.T, resp *logical.Response) map[string]map[string]interface{} {
	t.Helper()
	out := map[string]map[string]interface{}{}
	for _, c := range resp.Data["changes"].([]map[string]interface{}) {
		out[c["field"].(string)] = c
	}
	return out
}

func TestDryRun_CreateStoresNothing(t *testing.T) {
	b := getTestBackend(t, nil)
	resp := b.write(t, "bindings/crm", map[string]interface{}{
		"kind": "api_token", "token": testAPIToken, "header": "X-Api-Key", "ttl": "30m", "dry_run": true,
	})
	require.NotNil(t, resp)
	require.Equal(t, true, resp.Data["dry_run"])
	require.Equal(t, "create", resp.Data["operation"])
	require.Equal(t, []string{"header", "token", "ttl"}, resp.Data["changed_fields"])
	ch := changesByField(t, resp)
	require.Equal(t, true, ch["token"]["secret"])
	require.NotContains(t, ch["token"], "new")
	require.Equal(t, "X-Api-Key", ch["header"]["new"])
	require.Equal(t, int64(1800), ch["ttl"]["new"])
	assertNoSecrets(t, resp)

	// Nothing stored: no binding, no entry in the list, a later create is a create.
	r, err := b.do(t, logical.ReadOperation, "bindings/crm", nil)
	require.NoError(t, err)
	require.Nil(t, r)
	keys, err := b.s.List(t.Context(), "")
	require.NoError(t, err)
	require.Empty(t, keys)
	require.Equal(t, "create", b.write(t, "bindings/crm", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "dry_run": "true"}).Data["operation"])
}

// Every refusal class of a binding write is answered by its dry run, with
// the same message, and neither stores anything.
func TestDryRun_RefusesWhatTheWriteRefuses(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "bindings/crm", map[string]interface{}{"kind": "api_token", "token": testAPIToken})
	cases := []struct {
		name, path string
		data       map[string]interface{}
		want       string
	}{
		{"kind change", "bindings/crm", map[string]interface{}{"kind": "oauth2.client_credentials"}, "invalid kind"},
		{"unknown kind", "bindings/x", map[string]interface{}{"kind": "aws.sigv4"}, "unknown kind"},
		{"no kind", "bindings/x", map[string]interface{}{"token": testAPIToken}, "invalid kind: required"},
		{"field of another kind", "bindings/crm", map[string]interface{}{"subject": "me"}, "invalid subject: not used by kind api_token"},
		{"unknown field", "bindings/crm", map[string]interface{}{"tokn": "x"}, "unknown field"},
		{"incomplete", "bindings/cc", map[string]interface{}{"kind": "oauth2.client_credentials", "client_id": "id", "token_url": "https://idp.example/token"}, "invalid client_secret: required by kind"},
		{"http token_url", "bindings/cc", map[string]interface{}{"kind": "oauth2.client_credentials", "client_id": "id", "client_secret": testClientSecret, "token_url": "http://idp.example/token"}, "invalid token_url"},
		{"credential header in extra_headers", "bindings/crm", map[string]interface{}{"extra_headers": map[string]interface{}{"Authorization": "x"}}, "invalid extra_headers"},
		{"bad scope", "bindings/cc", map[string]interface{}{"kind": "oauth2.client_credentials", "client_id": "id", "client_secret": testClientSecret, "token_url": "https://idp.example/token", "scopes": `a"b`}, "invalid scopes"},
		{"bad header value", "bindings/crm", map[string]interface{}{"extra_headers": map[string]interface{}{"x-a": "a\r\nb"}}, "control character"},
		{"bad private key", "bindings/jwt", map[string]interface{}{"kind": "oauth2.jwt_bearer", "private_key": "not a key", "issuer": "me", "token_url": "https://idp.example/token"}, "invalid private_key"},
		{"non-string secret", "bindings/crm", map[string]interface{}{"token": map[string]interface{}{"a": "b"}}, "invalid token: must be a string"},
		{"bad handle", "bindings/" + longName(130), map[string]interface{}{"kind": "api_token", "token": testAPIToken}, "invalid handle"},
	}
	before := storageSnapshot(t, b)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			real, err := b.do(t, logical.UpdateOperation, c.path, copyData(c.data))
			require.NoError(t, err)
			require.True(t, real.IsError(), "the write was accepted: %v", real)
			dry := copyData(c.data)
			dry["dry_run"] = true
			resp, err := b.do(t, logical.UpdateOperation, c.path, dry)
			require.NoError(t, err)
			require.True(t, resp.IsError(), "the dry run was accepted: %v", resp)
			require.Equal(t, real.Error().Error(), resp.Error().Error())
			require.Contains(t, resp.Error().Error(), c.want)
		})
	}
	require.Equal(t, before, storageSnapshot(t, b), "a refused write or dry run changed storage")

	// dry_run itself must be a boolean.
	resp, err := b.do(t, logical.UpdateOperation, "bindings/crm", map[string]interface{}{"description": "x", "dry_run": "perhaps"})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), `"dry_run"`)
	require.Equal(t, before, storageSnapshot(t, b))
}

func TestDryRun_UpdateAnswersWhatWouldChange(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "secrets/gcp_rt", map[string]interface{}{"value": testRefreshToken})
	b.write(t, "bindings/g", map[string]interface{}{
		"kind": "google.oauth2", "client_id": "client-1", "client_secret": testClientSecret,
		"refresh_token_secret": "gcp_rt", "scopes": "a,b", "description": "old",
		"extra_headers": map[string]interface{}{"x-goog-user-project": "p1"},
	})
	before := storageSnapshot(t, b)

	// The same fields, scopes in another order and as a space-separated
	// string: unchanged.
	resp := b.write(t, "bindings/g", map[string]interface{}{"kind": "google.oauth2", "scopes": "b a", "description": "old", "client_secret": testClientSecret, "dry_run": true})
	require.Equal(t, "unchanged", resp.Data["operation"])
	require.Empty(t, resp.Data["changed_fields"])

	resp = b.write(t, "bindings/g", map[string]interface{}{
		"description": "new", "client_secret": "another-" + testClientSecret, "scopes": []interface{}{"a", "c"},
		"extra_headers": map[string]interface{}{}, "refresh_token_secret": "gcp_rt2", "dry_run": true,
	})
	require.Equal(t, "update", resp.Data["operation"])
	require.Equal(t, []string{"client_secret", "description", "extra_headers", "refresh_token_secret", "scopes"}, resp.Data["changed_fields"])
	ch := changesByField(t, resp)
	require.Equal(t, map[string]interface{}{"field": "client_secret", "change": "changed", "secret": true}, ch["client_secret"])
	require.Equal(t, map[string]interface{}{"field": "description", "change": "changed", "secret": false, "old": "old", "new": "new"}, ch["description"])
	require.Equal(t, "removed", ch["extra_headers"]["change"])
	require.Equal(t, "gcp_rt2", ch["refresh_token_secret"]["new"])
	require.Equal(t, []string{"a", "b"}, ch["scopes"]["old"])
	require.Equal(t, []string{"a", "c"}, ch["scopes"]["new"])
	// The warnings the write would give: a referenced secret that does not exist.
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], `secret "gcp_rt2" (field refresh_token_secret) does not exist yet`)
	assertNoSecrets(t, resp)
	require.NotContains(t, jsonOf(t, resp), "another-")
	require.Equal(t, before, storageSnapshot(t, b), "a dry run changed storage")
}

// A write that changes nothing stores nothing: the binding keeps its
// generation and its cached token (no upstream request on the next read).
func TestBindingWrite_UnchangedKeepsCachedToken(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "h", idp.TokenURL())
	b.read(t, "token/h", nil)
	require.EqualValues(t, 1, idp.Count())
	before := storageSnapshot(t, b)

	resp := b.write(t, "bindings/h", map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": "client-1", "client_secret": testClientSecret,
		"refresh_token": testRefreshToken, "token_url": idp.TokenURL(), "scopes": "offline_access api",
	})
	require.Nil(t, resp)
	require.Equal(t, before, storageSnapshot(t, b), "an unchanged write changed storage")
	b.read(t, "token/h", nil)
	require.EqualValues(t, 1, idp.Count(), "an unchanged write dropped the cached token")

	// A change is stored and the next read refreshes.
	b.write(t, "bindings/h", map[string]interface{}{"description": "changed"})
	b.read(t, "token/h", nil)
	require.EqualValues(t, 2, idp.Count())
}

// Apply never replaces a rotated refresh token: writing the binding's other
// fields keeps the newest one; a new refresh-token input resets it.
func TestBindingWrite_KeepsRotatedRefreshToken(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t, oauthtest.TokenOptions{Rotate: true})
	bindRefresh(t, b, "h", idp.TokenURL())
	b.read(t, "token/h", nil) // rotates: the configured token is spent
	b.write(t, "bindings/h", map[string]interface{}{"description": "changed"})
	b.read(t, "token/h", nil) // must send the rotated token
	st, err := getTokenState(t.Context(), b.s, "h")
	require.NoError(t, err)
	require.Equal(t, "ok", st.Status.Health)
	require.EqualValues(t, 2, idp.Count())
}

func jsonOf(t *testing.T, v interface{}) string {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return string(raw)
}

func longName(n int) string {
	out := make([]byte, n)
	for i := range out {
		out[i] = 'a'
	}
	return string(out)
}

func copyData(m map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// storageSnapshot is every storage key and value, to compare before and after.
func storageSnapshot(t *testing.T, b *testBackend) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(prefix string)
	walk = func(prefix string) {
		keys, err := b.s.List(t.Context(), prefix)
		require.NoError(t, err)
		for _, k := range keys {
			if k[len(k)-1] == '/' {
				walk(prefix + k)
				continue
			}
			e, err := b.s.Get(t.Context(), prefix+k)
			require.NoError(t, err)
			out[prefix+k] = string(e.Value)
		}
	}
	walk("")
	return out
}
