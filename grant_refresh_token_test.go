package flowcred

// Tests of grant_refresh_token.go: oauth2.refresh_token against a token
// endpoint (newFakeIdP): rotated refresh tokens are kept and never reused,
// and a refused grant needs re-authorization.

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

func TestToken_RotationPersistedAndNeverReused(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t, oauthtest.TokenOptions{Rotate: true})
	bindRefresh(t, b, "crm", idp.TokenURL())
	// min_ttl makes each read ask the provider here.
	b.write(t, "config", map[string]interface{}{"min_refresh_interval": 0})

	for i := 0; i < 20; i++ {
		resp := b.read(t, "token/crm", map[string]interface{}{"min_ttl": "2h"})
		require.NotEmpty(t, resp.Data["access_token"])
	}
	require.EqualValues(t, 20, idp.Count())

	// A fresh backend on the same storage (plugin reload) uses the newest
	// refresh token, and serves the cached access token without a request.
	b2 := &testBackend{backend: newBackend(deps{now: clock.now}), s: b.s}
	require.NoError(t, b2.Setup(context.Background(), &logical.BackendConfig{StorageView: b.s, System: logical.TestSystemView(), Logger: b.Logger()}))
	before := idp.Count()
	b2.read(t, "token/crm", nil)
	require.Equal(t, before, idp.Count(), "cached token served after reload")
	b2.read(t, "token/crm", map[string]interface{}{"min_ttl": "2h"})
	require.Equal(t, before+1, idp.Count())

	// A binding update that does not touch the refresh token keeps the rotated one.
	b2.write(t, "bindings/crm", map[string]interface{}{"description": "changed"})
	b2.read(t, "token/crm", nil)
	st := b2.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, "ok", st["health"])
	assertNoSecrets(t, b2.read(t, "bindings/crm", nil))
}

func TestToken_InvalidGrantNeedsReauth(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t, oauthtest.TokenOptions{RefreshToken: "something-else"})
	bindRefresh(t, b, "crm", idp.TokenURL())

	resp, err := b.do(t, logical.ReadOperation, "token/crm", nil)
	require.NoError(t, err)
	require.True(t, resp.IsError())
	msg := resp.Error().Error()
	require.Contains(t, msg, `"crm"`)
	require.Contains(t, msg, "invalid_grant")
	require.Contains(t, msg, "Token has been expired or revoked.")
	require.NotContains(t, msg, testRefreshToken)

	st := b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, "needs_reauth", st["health"])
	require.Equal(t, "invalid_grant", st["last_error_code"])
	require.Equal(t, 1, st["consecutive_failures"])

	// Fails fast: no new upstream request until the inputs change.
	before := idp.Count()
	_, _ = b.do(t, logical.ReadOperation, "token/crm", nil)
	require.Equal(t, before, idp.Count())

	// The refresh token is kept.
	be, err := getBinding(context.Background(), b.s, "crm")
	require.NoError(t, err)
	require.Equal(t, testRefreshToken, be.Inline["refresh_token"])

	// validate warns, but stays valid.
	v := b.write(t, "validate", map[string]interface{}{"requirements": []interface{}{map[string]interface{}{"node": "n", "handle": "crm", "kind": "oauth2.refresh_token"}}})
	require.Equal(t, true, v.Data["valid"])
	require.Equal(t, "needs_reauth", v.Data["problems"].([]map[string]interface{})[0]["problem"])

	// A still-fresh cached token is served, with a warning.
	idp.SetRefreshToken(testRefreshToken)
	b.write(t, "bindings/ok_then_revoked", map[string]interface{}{"kind": "oauth2.refresh_token", "client_id": "c", "refresh_token": testRefreshToken, "token_url": idp.TokenURL()})
	b.read(t, "token/ok_then_revoked", nil)
	idp.SetRefreshToken("revoked")
	_, err = b.do(t, logical.UpdateOperation, "bindings/ok_then_revoked/refresh", nil)
	require.NoError(t, err)
	served := b.read(t, "token/ok_then_revoked", nil)
	require.NotEmpty(t, served.Data["access_token"])
	require.Contains(t, served.Warnings[0], "needs re-authorization")

	// Re-authorized: a new refresh token works at once.
	idp.SetRefreshToken("new-rt-SECRET")
	b.write(t, "bindings/crm", map[string]interface{}{"refresh_token": "new-rt-SECRET"})
	b.read(t, "token/crm", nil)
	st = b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, "ok", st["health"])
}

func TestToken_StoreFailureKeepsRotatedToken(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t, oauthtest.TokenOptions{Rotate: true})
	bindRefresh(t, b, "crm", idp.TokenURL())

	// min_ttl makes each read ask the provider here.
	b.write(t, "config", map[string]interface{}{"min_refresh_interval": 0})
	failing := &failingStorage{Storage: b.s}
	failing.failPuts.Store(true)
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "token/crm", Storage: failing})
	require.Error(t, err, "the read fails when the rotated refresh token cannot be stored")
	require.Nil(t, resp)

	// Storage works again: the pending state (with the rotated token) is
	// written first, and the next refresh uses the rotated token.
	failing.failPuts.Store(false)
	b.read(t, "token/crm", nil)
	before := idp.Count()
	b.read(t, "token/crm", map[string]interface{}{"min_ttl": "2h"})
	require.Equal(t, before+1, idp.Count())
	st := b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, "ok", st["health"], "no invalid_grant: the rotated token was not lost")
}
