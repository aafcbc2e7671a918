package flowcred

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// Issue 12: api_token values given from a file (token=@file) carry a
// trailing newline, which must not end up in the header; any other CR or LF
// is refused, naming the field and never quoting the value.
func TestAPIToken_TrailingNewlineTrimmed(t *testing.T) {
	b := getTestBackend(t, nil)
	for name, in := range map[string]string{"lf": "abc-tokSECRET\n", "crlf": "abc-tokSECRET\r\n"} {
		t.Run("inline "+name, func(t *testing.T) {
			b.write(t, "bindings/inline_"+name, map[string]interface{}{"kind": "api_token", "token": in})
			tok := b.read(t, "token/inline_"+name, nil)
			require.Equal(t, "abc-tokSECRET", tok.Data["access_token"])
			require.Equal(t, map[string]string{"Authorization": "Bearer abc-tokSECRET"}, tok.Data["headers"])
		})
		t.Run("secret "+name, func(t *testing.T) {
			b.write(t, "secrets/tok_"+name, map[string]interface{}{"value": in})
			b.write(t, "bindings/ref_"+name, map[string]interface{}{"kind": "api_token", "token_secret": "tok_" + name})
			tok := b.read(t, "token/ref_"+name, nil)
			require.Equal(t, "abc-tokSECRET", tok.Data["access_token"])
			require.Equal(t, map[string]string{"Authorization": "Bearer abc-tokSECRET"}, tok.Data["headers"])
		})
	}
	// A bare token (scheme "") in a custom header is trimmed too.
	b.write(t, "bindings/bare", map[string]interface{}{"kind": "api_token", "token": "k-tokSECRET\n", "header": "X-Api-Key", "scheme": ""})
	tok := b.read(t, "token/bare", nil)
	require.Equal(t, map[string]string{"X-Api-Key": "k-tokSECRET"}, tok.Data["headers"])
}

func TestAPIToken_EmbeddedNewlineRefusedOnWrite(t *testing.T) {
	b := getTestBackend(t, nil)
	for name, in := range map[string]string{
		"embedded lf":     "abc-tokSECRET\nX-Injected: yes",
		"embedded cr":     "abc-tokSECRET\rX-Injected: yes",
		"two newlines":    "abc-tokSECRET\n\n",
		"leading newline": "\nabc-tokSECRET",
		"only a newline":  "\n",
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := b.do(t, logical.UpdateOperation, "bindings/api", map[string]interface{}{"kind": "api_token", "token": in})
			require.NoError(t, err)
			require.NotNil(t, resp)
			require.True(t, resp.IsError(), "expected a 400")
			msg := resp.Error().Error()
			require.Contains(t, msg, "invalid token:")
			require.NotContains(t, msg, "tokSECRET")
			require.NotContains(t, msg, "X-Injected")
		})
	}
	resp, err := b.do(t, logical.ReadOperation, "bindings/api", nil)
	require.NoError(t, err)
	require.Nil(t, resp, "nothing stored")
}

// A stored secret may hold any value (a PEM key has newlines), so a secret
// with an embedded newline is stored; an api_token binding that references
// it is refused when its token is read, naming the field, never the value.
func TestAPIToken_SecretWithEmbeddedNewlineRefusedAtRead(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "secrets/bad", map[string]interface{}{"value": "abc-tokSECRET\r\nX-Injected: yes\n"})
	b.write(t, "bindings/api", map[string]interface{}{"kind": "api_token", "token_secret": "bad"})
	resp, err := b.do(t, logical.ReadOperation, "token/api", nil)
	require.NoError(t, err)
	require.NotNil(t, resp)
	require.True(t, resp.IsError(), "expected a 400, got %v", resp.Data)
	code, _ := logical.RespondErrorCommon(&logical.Request{Operation: logical.ReadOperation}, resp, nil)
	require.Equal(t, 400, code)
	msg := resp.Error().Error()
	require.Contains(t, msg, "token_secret")
	require.Contains(t, msg, `"bad"`)
	require.NotContains(t, msg, "tokSECRET")
	require.NotContains(t, msg, "X-Injected")

	// Fixing the secret fixes the read.
	b.write(t, "secrets/bad", map[string]interface{}{"value": "abc-tokSECRET\n"})
	tok := b.read(t, "token/api", nil)
	require.Equal(t, "Bearer abc-tokSECRET", tok.Data["headers"].(map[string]string)["Authorization"])
	require.False(t, strings.ContainsAny(tok.Data["access_token"].(string), "\r\n"))
}
