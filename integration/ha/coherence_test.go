package ha

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// Changes written through the active node just before it dies (a binding
// updated, a secret rotated, a binding deleted, a refresh token re-bound) are
// what the node that takes over serves: it builds its state from replicated
// storage, never from what the dead node had cached.
func testNewActiveServesNewStorageState(t *testing.T, e *env) {
	old := e.active()
	proxy := oauthtest.NewFaultProxy(e.idp.TokenURL)
	t.Cleanup(proxy.Close)

	// Four handles, each read once through the old active node so that it
	// has them cached.
	e.write(old, "bindings/upd", map[string]any{
		"kind":          "oauth2.client_credentials",
		"client_id":     oauthtest.ClientCC,
		"client_secret": oauthtest.SecretCC,
		"token_url":     e.idp.TokenURL,
		"extra_headers": map[string]any{"x-env": "blue"},
	})
	e.write(old, "secrets/apikey", map[string]any{"value": "api-key-one-for-tests"})
	e.write(old, "bindings/key", map[string]any{"kind": "api_token", "token_secret": "apikey"})
	e.write(old, "bindings/gone", map[string]any{"kind": "api_token", "token": "static-token-for-tests"})
	rt1, err := e.idp.MintRefreshToken(oauthtest.ClientRTRotate, "")
	require.NoError(t, err)
	e.write(old, "secrets/rt", map[string]any{"value": rt1})
	e.write(old, "bindings/reauth", map[string]any{
		"kind":                 "oauth2.refresh_token",
		"client_id":            oauthtest.ClientRTRotate,
		"client_secret":        oauthtest.SecretRTRotate,
		"refresh_token_secret": "rt",
		"token_url":            proxy.TokenURL(),
		"auth_style":           "header",
	})

	updTok := e.mustToken(old, "upd", 0)
	require.Equal(t, "blue", updTok.Headers["x-env"])
	require.Equal(t, "Bearer api-key-one-for-tests", e.mustToken(old, "key", 0).Headers["Authorization"])
	e.mustToken(old, "gone", 0)
	reauthTok := e.mustToken(old, "reauth", 0)
	ccBefore := e.stats().TokenSuccess[oauthtest.GrantClientCredentials]

	// The operator re-authorizes "reauth" (a new grant) and changes the rest.
	rt2, err := e.idp.MintRefreshToken(oauthtest.ClientRTRotate, "")
	require.NoError(t, err)
	e.write(old, "bindings/upd", map[string]any{"extra_headers": map[string]any{"x-env": "green"}})
	e.write(old, "secrets/apikey", map[string]any{"value": "api-key-two-for-tests"})
	_, err = old.Client.Logical().Delete(e.path("bindings/gone"))
	require.NoError(t, err)
	e.write(old, "secrets/rt", map[string]any{"value": rt2})

	killed, next := e.failover()
	require.Equal(t, old, killed)

	// Updated binding: new headers, and a token obtained under the new
	// binding (the old one belonged to the previous generation).
	upd := e.mustToken(next, "upd", 0)
	require.Equal(t, "green", upd.Headers["x-env"])
	differentToken(t, updTok, upd, "upd after its binding changed")
	require.Equal(t, ccBefore+1, e.stats().TokenSuccess[oauthtest.GrantClientCredentials])

	// Rotated secret.
	require.Equal(t, "Bearer api-key-two-for-tests", e.mustToken(next, "key", 0).Headers["Authorization"])
	for _, n := range e.c.Running() {
		require.Equal(t, "Bearer api-key-two-for-tests", e.mustToken(n, "key", 0).Headers["Authorization"], n.Name)
	}

	// Deleted binding.
	for _, n := range e.c.Running() {
		// A 404 (design.md, "Errors"), which vault/api's Read turns into
		// "no secret": read it raw to see the answer.
		_, err := n.Client.Logical().ReadRawWithContext(t.Context(), e.path("token/gone"))
		requireStatus(t, err, http.StatusNotFound)
		require.Contains(t, err.Error(), `no binding for handle "gone"`)
		s, err := n.Client.Logical().Read(e.path("bindings/gone"))
		require.NoError(t, err)
		require.Nil(t, s, "bindings/gone through %s", n)
	}

	// Re-bound refresh token: the access token obtained from the old grant
	// is still valid and served; the next refresh presents the new
	// configured refresh token, not the one rotated from the old grant.
	sameToken(t, reauthTok, e.mustToken(next, "reauth", 0), "reauth before its next refresh")
	e.mustToken(next, "reauth", longMinTTL)
	last := proxy.LastRequest()
	require.NotNil(t, last)
	if last.Form().Get("refresh_token") != rt2 {
		t.Fatal("the refresh after failover did not present the newly configured refresh token")
	}
	e.requireNoReuse()
	require.Equal(t, "ok", e.status(next, "reauth")["health"])
}
