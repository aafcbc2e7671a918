package flowcred

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// Tests of the fixes a security review of v0.2 asked for.

// An operator who can update a binding but never held its connected
// refresh token cannot have it sent elsewhere by changing token_url (or
// by revoking on delete): a stored refresh token is bound to the token URL
// it came from.
func TestSecurity_StoredRefreshTokenStaysWithItsTokenURL(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newConnectIdP(t)
	bindUnconnected(t, b, "crm", idp)
	state, _ := authorize(t, b, "crm", idp)
	b.write(t, "bindings/crm/authorize/complete", map[string]interface{}{"state": state, "code": connectCode})

	evil := newFakeIdP(t)
	b.write(t, "bindings/crm", map[string]interface{}{"token_url": evil.TokenURL()})
	_, _ = b.do(t, logical.UpdateOperation, "bindings/crm/refresh", nil)
	_, _ = b.do(t, logical.ReadOperation, "token/crm", nil)
	require.Zero(t, evil.GrantCount(oauthtest.GrantRefreshToken), "the connected refresh token went to the new token_url")
	require.Equal(t, healthNeedsAuthorization, health(t, b, "crm")["health"])

	// Nor to a revocation endpoint.
	b.write(t, "bindings/crm", map[string]interface{}{"revoke_on_delete": true, "revocation_url": evil.RevocationURL()})
	requireAnswer(t, b, logical.DeleteOperation, "bindings/crm", nil, 400, "another token_url")
	require.Empty(t, evil.Revoked("refresh_token"))

	// Back at its own token URL, it works again.
	b.write(t, "bindings/crm", map[string]interface{}{"token_url": idp.TokenURL(), "revoke_on_delete": false})
	require.Equal(t, "at-connected-SECRET", b.read(t, "token/crm", map[string]interface{}{"min_ttl": 7200}).Data["access_token"])

	require.True(t, sameOrigin("https://oauth2.googleapis.com/revoke", "https://oauth2.googleapis.com/token"))
	require.False(t, sameOrigin("https://evil.example/revoke", "https://oauth2.googleapis.com/token"))
	require.False(t, sameOrigin("http://oauth2.googleapis.com/revoke", "https://oauth2.googleapis.com/token"))
}

// A provider's error code that echoes what the request sent never reaches
// the status (and so the health index, webhooks or logs).
func TestSecurity_ErrorCodeIsNotEchoed(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	idp.Answer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "bad_" + r.FormValue("refresh_token")})
	})
	bindRefresh(t, b, "crm", idp.TokenURL())
	_, _ = b.do(t, logical.ReadOperation, "token/crm", nil)
	st := health(t, b, "crm")
	require.Equal(t, "unrecognized_error", st["last_error_code"])
	raw, _ := json.Marshal(st)
	require.NotContains(t, string(raw), testRefreshToken)
	require.Equal(t, "invalid_grant", errorCode("invalid_grant"))
	require.Equal(t, "unrecognized_error", errorCode("a b"))
}

// Junk callbacks cannot lock out a genuine one: only requests without a
// live state are limited.
func TestSecurity_CallbackLimitSparesLiveStates(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newConnectIdP(t)
	bindUnconnected(t, b, "crm", idp)
	b.write(t, "config", map[string]interface{}{"public_callback": true})
	state, _ := authorize(t, b, "crm", idp)
	var last *logical.Response
	for i := 0; i < 12; i++ {
		last = b.read(t, "callback", map[string]interface{}{"state": "guess", "code": "x"})
	}
	require.Equal(t, http.StatusTooManyRequests, last.Data[logical.HTTPStatusCode])
	page := b.read(t, "callback", map[string]interface{}{"state": state, "code": connectCode})
	require.Equal(t, http.StatusOK, page.Data[logical.HTTPStatusCode])
	require.Equal(t, healthOK, health(t, b, "crm")["health"])
}

// A webhook URL may itself be a credential: a failed delivery names its
// host only.
func TestSecurity_WebhookFailureNamesTheHostOnly(t *testing.T) {
	b := getTestBackend(t, nil)
	initialized(t, b)
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL + "/hooks/T000-SECRET-PATH"
	down.Close()
	b.write(t, "config", map[string]interface{}{"webhook_url": url, "webhook_secret": "k-SECRET"})
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.TokenURL())
	b.read(t, "token/crm", nil)
	idp.RefuseNext(oauthtest.GrantRefreshToken, "invalid_grant")
	_, _ = b.do(t, logical.UpdateOperation, "bindings/crm/refresh", nil)
	waitFor(t, "the failed delivery", func() bool {
		w := b.read(t, "health", nil).Data["webhook"].(map[string]interface{})
		return w["last_failure"] != nil
	})
	w := b.read(t, "health", nil).Data["webhook"].(map[string]interface{})
	require.NotContains(t, w["last_failure"], "SECRET-PATH")
	require.Contains(t, w["last_failure"], "127.0.0.1")
}

// The webhook secret and a connect's code are guarded like binding secrets:
// a value of the wrong type is refused without being echoed.
func TestSecurity_GuardedConfigAndConnectFields(t *testing.T) {
	b := getTestBackend(t, nil)
	resp, err := b.do(t, logical.UpdateOperation, "config", map[string]interface{}{"webhook_secret": map[string]interface{}{"k": "WEBHOOK-SECRET-VALUE"}})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), "webhook_secret")
	require.NotContains(t, resp.Error().Error(), "WEBHOOK-SECRET-VALUE")

	idp := newConnectIdP(t)
	bindUnconnected(t, b, "crm", idp)
	resp, err = b.do(t, logical.UpdateOperation, "bindings/crm/authorize/complete", map[string]interface{}{"state": "s", "code": []interface{}{"CODE-SECRET-VALUE"}})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.NotContains(t, resp.Error().Error(), "CODE-SECRET-VALUE")

	requireWriteStatus(t, b, "bindings/crm/device", map[string]interface{}{"scopes": "ok,bad\"scope"}, 400, "scopes")
}
