package flowcred

// Tests of grant_client_credentials.go: oauth2.client_credentials against a
// token endpoint (newFakeIdP).

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestToken_ClientCredentials(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	b.write(t, "bindings/cc", map[string]interface{}{
		"kind": "oauth2.client_credentials", "client_id": "svc", "client_secret": testClientSecret,
		"token_url": idp.TokenURL(), "auth_style": "header", "scopes": "read,write", "token_params": map[string]interface{}{"audience": "https://api.example"},
	})
	resp := b.read(t, "token/cc", nil)
	require.Equal(t, "at-1-SECRET", resp.Data["access_token"])
	require.Equal(t, "https://api.example", idp.LastRequest().Form()["audience"][0])
	require.Equal(t, "read write", idp.LastRequest().Form()["scope"][0])
	require.Contains(t, idp.LastRequest().Header.Get("Authorization"), "Basic ")
}
