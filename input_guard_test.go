package flowcred

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/flowcred/vault-plugin-flowcred/internal/leakcheck"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// guardPEM looks like a PKCS#8 key: long base64 lines that leakcheck finds
// on their own, as they would appear in a quoted Go map.
const guardPEM = "-----BEGIN PRIVATE KEY-----\n" +
	"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDguardSECRETline1\n" +
	"Zm9vYmFyYmF6cXV1eGd1YXJkU0VDUkVUbGluZTJndWFyZFNFQ1JFVGxpbmUyZ3VhcmQ=\n" +
	"-----END PRIVATE KEY-----\n"

// guardRequest sends one request the way Vault does: the existence check
// first (for create/update on a path that has one), then the request.
func guardRequest(t *testing.T, b *testBackend, op logical.Operation, path string, data map[string]interface{}) (int, string, *logical.Response) {
	t.Helper()
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: b.s}
	found, _, eerr := b.HandleExistenceCheck(context.Background(), req)
	if eerr != nil {
		// Vault answers a UserError from the existence check as a 400 with
		// its text, and logs it: that text must be as clean as a response.
		return 400, eerr.Error(), nil
	}
	_ = found
	resp, err := b.HandleRequest(context.Background(), req)
	code, rerr := logical.RespondErrorCommon(req, resp, err)
	msg := ""
	if rerr != nil {
		msg = rerr.Error()
	}
	raw, jerr := json.Marshal(resp)
	require.NoError(t, jerr)
	return code, msg + " " + string(raw), resp
}

// Issue 11: a secret-capable field sent as a JSON object or list must not
// be echoed by the SDK's field conversion error.
func TestInputGuard_NonStringSecretFieldNotEchoed(t *testing.T) {
	b := getTestBackend(t, nil)
	set := leakcheck.New()
	set.Add("credentials_json private key", guardPEM)
	set.Add("credentials_json private_key_id", "pkid-4411-guardSECRET")
	set.Add("refresh_token list item 1", "rt-list-one-guardSECRET")
	set.Add("refresh_token list item 2", "rt-list-two-guardSECRET")
	set.Add("client_secret map value", "cs-map-guardSECRET")
	set.Add("secret value map", "value-in-map-guardSECRET")
	set.Add("private_key list", "pk-list-guardSECRET")
	set.Add("token map", "tok-map-guardSECRET")

	keyFile := map[string]interface{}{
		"type":           "service_account",
		"client_email":   "sa@p.iam.gserviceaccount.com",
		"private_key_id": "pkid-4411-guardSECRET",
		"private_key":    guardPEM,
	}
	cases := []struct {
		name, path, field string
		data              map[string]interface{}
	}{
		{"credentials_json object", "bindings/sa", "credentials_json",
			map[string]interface{}{"kind": "google.service_account", "scopes": "a", "credentials_json": keyFile}},
		{"refresh_token list", "bindings/g", "refresh_token",
			map[string]interface{}{"kind": "google.oauth2", "client_id": "c", "client_secret": "s",
				"refresh_token": []interface{}{"rt-list-one-guardSECRET", "rt-list-two-guardSECRET"}}},
		{"client_secret object", "bindings/cc", "client_secret",
			map[string]interface{}{"kind": "oauth2.client_credentials", "client_id": "c", "token_url": "https://idp.example/t",
				"client_secret": map[string]interface{}{"v": "cs-map-guardSECRET"}}},
		{"private_key list", "bindings/jb", "private_key",
			map[string]interface{}{"kind": "oauth2.jwt_bearer", "issuer": "i", "token_url": "https://idp.example/t",
				"private_key": []interface{}{"pk-list-guardSECRET"}}},
		{"token object", "bindings/api", "token",
			map[string]interface{}{"kind": "api_token", "token": map[string]interface{}{"t": "tok-map-guardSECRET"}}},
		{"token bool", "bindings/api2", "token",
			map[string]interface{}{"kind": "api_token", "token": true}},
		{"reference given a key file", "bindings/sa2", "credentials_json_secret",
			map[string]interface{}{"kind": "google.service_account", "scopes": "a", "credentials_json_secret": keyFile}},
		{"secret value object", "secrets/s", "value",
			map[string]interface{}{"value": map[string]interface{}{"k": "value-in-map-guardSECRET"}}},
		{"secret value list", "secrets/s", "value",
			map[string]interface{}{"value": []interface{}{"value-in-map-guardSECRET"}}},
	}
	var seen []leakcheck.Target
	for _, op := range []logical.Operation{logical.UpdateOperation, logical.CreateOperation} {
		for _, tc := range cases {
			if op == logical.CreateOperation && strings.HasPrefix(tc.path, secretStoragePrefix) {
				continue // secrets/<name> has no existence check: Vault only sends updates
			}
			t.Run(fmt.Sprintf("%s/%s", op, tc.name), func(t *testing.T) {
				code, text, _ := guardRequest(t, b, op, tc.path, tc.data)
				require.Equal(t, 400, code, text)
				require.Contains(t, text, tc.field, "the error names the field")
				require.Contains(t, text, "must be a string")
				require.NotContains(t, text, "Field validation failed", "our answer, not the SDK's")
				seen = append(seen, leakcheck.Text(string(op)+" "+tc.name, text))
			})
		}
	}
	set.RequireNone(t, seen...)

	// Nothing was stored.
	for _, prefix := range []string{bindingStoragePrefix, secretStoragePrefix} {
		keys, err := b.s.List(context.Background(), prefix)
		require.NoError(t, err)
		require.Empty(t, keys, prefix)
	}

	// An update of an existing binding is refused the same way and changes nothing.
	b.write(t, "bindings/g", map[string]interface{}{"kind": "google.oauth2", "client_id": "c", "client_secret": "s", "refresh_token": "r"})
	before, err := b.s.Get(context.Background(), "bindings/g")
	require.NoError(t, err)
	code, text, _ := guardRequest(t, b, logical.UpdateOperation, "bindings/g", map[string]interface{}{
		"refresh_token": []interface{}{"rt-list-one-guardSECRET"},
	})
	require.Equal(t, 400, code)
	require.Contains(t, text, "refresh_token")
	set.RequireNone(t, leakcheck.Text("update", text))
	after, err := b.s.Get(context.Background(), "bindings/g")
	require.NoError(t, err)
	require.Equal(t, before.Value, after.Value)
}

// Numbers are harmless (a numeric client ID sent as JSON): they still work.
func TestInputGuard_NumbersAccepted(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "bindings/g", map[string]interface{}{"kind": "google.oauth2",
		"client_id": json.Number("123456789012"), "client_secret": "s", "refresh_token": "r"})
	resp := b.read(t, "bindings/g", nil)
	require.Contains(t, resp.Data["inline_fields"], "client_id")
}

// Requests the guard does not look at are unaffected: reads, other paths.
func TestInputGuard_OtherRequestsUnaffected(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "bindings/api", map[string]interface{}{"kind": "api_token", "token": testAPIToken})
	tok := b.read(t, "token/api", nil)
	require.Equal(t, testAPIToken, tok.Data["access_token"])
	// A refresh action ignores unknown fields as before (a warning), whatever their type.
	resp, err := b.do(t, logical.UpdateOperation, "bindings/api/refresh", map[string]interface{}{"token": map[string]interface{}{"a": "b"}})
	require.NoError(t, err)
	require.False(t, resp.IsError())
}

// Issue 18: names longer than 128 characters are refused on write, naming
// the field, because they could never be read or referenced.
func TestNames_LongerThan128Refused(t *testing.T) {
	b := getTestBackend(t, nil)
	long := strings.Repeat("a", 129)
	ok128 := strings.Repeat("b", 128)

	check := func(t *testing.T, path string, data map[string]interface{}, field string) {
		t.Helper()
		resp, err := b.do(t, logical.UpdateOperation, path, data)
		require.NoError(t, err)
		require.NotNil(t, resp)
		require.True(t, resp.IsError(), "expected a 400")
		msg := resp.Error().Error()
		require.Contains(t, msg, "invalid "+field+":")
		require.Contains(t, msg, "128")
		require.NotContains(t, msg, testAPIToken)
	}
	t.Run("handle", func(t *testing.T) {
		check(t, "bindings/"+long, map[string]interface{}{"kind": "api_token", "token": testAPIToken}, "handle")
	})
	t.Run("secret name", func(t *testing.T) {
		check(t, "secrets/"+long, map[string]interface{}{"value": testAPIToken}, "name")
	})
	t.Run("reference", func(t *testing.T) {
		check(t, "bindings/ref", map[string]interface{}{"kind": "api_token", "token_secret": long}, "token_secret")
	})
	for _, prefix := range []string{bindingStoragePrefix, secretStoragePrefix} {
		keys, err := b.s.List(context.Background(), prefix)
		require.NoError(t, err)
		require.Empty(t, keys, prefix)
	}

	// 128 characters is fine everywhere, and usable.
	b.write(t, "secrets/"+ok128, map[string]interface{}{"value": testAPIToken})
	b.write(t, "bindings/"+ok128, map[string]interface{}{"kind": "api_token", "token_secret": ok128})
	tok := b.read(t, "token/"+ok128, nil)
	require.Equal(t, testAPIToken, tok.Data["access_token"])
}

// The guard costs token reads one comparison: only writes of bindings/<handle>
// and secrets/<name> are looked at.
func TestInputGuard_OnlyWritesOfBindingsAndSecrets(t *testing.T) {
	for _, tc := range []struct {
		op   logical.Operation
		path string
		want bool
	}{
		{logical.ReadOperation, "token/api", false},
		{logical.ReadOperation, "bindings/api", false},
		{logical.DeleteOperation, "bindings/api", false},
		{logical.ListOperation, "bindings/", false},
		{logical.UpdateOperation, "bindings/api/refresh", false},
		{logical.UpdateOperation, "validate", false},
		{logical.UpdateOperation, "config", true},                          // webhook_secret
		{logical.UpdateOperation, "bindings/api/authorize/complete", true}, // code, state
		{logical.UpdateOperation, "bindings/api/authorize", false},
		{logical.CreateOperation, "bindings/api", true},
		{logical.UpdateOperation, "bindings/api", true},
		{logical.UpdateOperation, "secrets/x", true},
	} {
		require.Equal(t, tc.want, guardedFields(&logical.Request{Operation: tc.op, Path: tc.path}) != nil, "%s %s", tc.op, tc.path)
	}
	// Every secret-capable field of every kind, and its reference form, is guarded.
	for kind, spec := range registry {
		for _, f := range spec.Secret {
			require.True(t, secretInputFields[f], "%s %s", kind, f)
			require.True(t, secretInputFields[f+secretRefSuffix], "%s %s", kind, f)
		}
	}
}

func BenchmarkInputGuard_TokenRead(b *testing.B) {
	req := &logical.Request{Operation: logical.ReadOperation, Path: "token/google_sales"}
	for i := 0; i < b.N; i++ {
		if malformedSecretFields(req) != nil {
			b.Fatal("guarded")
		}
	}
}
