package flowcred

import (
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

func TestRevokeOnDelete(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t, oauthtest.TokenOptions{Rotate: true})
	rev := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{})
	bindRefresh(t, b, "crm", idp.TokenURL())
	b.write(t, "bindings/crm", map[string]interface{}{"revoke_on_delete": true, "revocation_url": rev.RevocationURL()})
	b.read(t, "token/crm", nil) // rotates: the current refresh token is the rotated one

	// The provider fails: 502, and the binding is kept.
	rev.SetMode(oauthtest.StatusFault(http.StatusServiceUnavailable, ""))
	_, err := b.do(t, logical.DeleteOperation, "bindings/crm", nil)
	var coded logical.HTTPCodedError
	require.ErrorAs(t, err, &coded)
	require.Equal(t, http.StatusBadGateway, coded.Code())
	require.NotContains(t, err.Error(), "rotated-")
	b.read(t, "bindings/crm", nil)

	rev.SetMode(oauthtest.PassThrough())
	_, err = b.do(t, logical.DeleteOperation, "bindings/crm", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"rotated-1-SECRET"}, rev.Revoked("refresh_token"))
	resp, err := b.do(t, logical.ReadOperation, "bindings/crm", nil)
	require.NoError(t, err)
	require.Nil(t, resp)

	// force deletes even when the revocation fails.
	bindRefresh(t, b, "crm2", idp.TokenURL())
	b.write(t, "bindings/crm2", map[string]interface{}{"revoke_on_delete": true, "revocation_url": rev.RevocationURL()})
	rev.SetMode(oauthtest.StatusFault(http.StatusInternalServerError, ""))
	_, err = b.do(t, logical.DeleteOperation, "bindings/crm2", map[string]interface{}{"force": true})
	require.NoError(t, err)
}

func TestRevokeOnDelete_SharedRefreshTokenIsNotRevoked(t *testing.T) {
	b := getTestBackend(t, nil)
	rev := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{})
	b.write(t, "secrets/rt", map[string]interface{}{"value": testRefreshToken})
	for _, h := range []string{"a", "b"} {
		b.write(t, "bindings/"+h, map[string]interface{}{
			"kind": "oauth2.refresh_token", "client_id": "c", "refresh_token_secret": "rt",
			"token_url": rev.TokenURL(), "revoke_on_delete": true, "revocation_url": rev.RevocationURL(),
		})
	}
	_, err := b.do(t, logical.DeleteOperation, "bindings/a", nil)
	require.NoError(t, err)
	require.Empty(t, rev.Revoked("refresh_token"))
	_, err = b.do(t, logical.DeleteOperation, "bindings/b", nil)
	require.NoError(t, err)
	require.Equal(t, []string{testRefreshToken}, rev.Revoked("refresh_token"), "the last user revokes it")

	// Google's endpoint is the default for google.oauth2; writes refuse force and http URLs.
	b.write(t, "bindings/g", map[string]interface{}{"kind": "google.oauth2", "client_id": "c", "client_secret": "s", "revoke_on_delete": true})
	e, err := getBinding(t.Context(), b.s, "g")
	require.NoError(t, err)
	require.Equal(t, googleRevokeURL, e.revocationURL())
	requireWriteStatus(t, b, "bindings/g", map[string]interface{}{"revocation_url": "http://example.com/revoke"}, 400, "revocation_url")
	requireWriteStatus(t, b, "bindings/g", map[string]interface{}{"force": true}, 400, "force")
}
