package flowcred

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

const (
	connectRT   = "connected-rt-SECRET-1"
	connectCode = "auth-code-SECRET-9"
)

// newConnectIdP is an authorization server for the connect flows: its token
// endpoint takes the authorization code it is told (with the PKCE verifier
// of the challenge it is told, see authorize), the refresh token it issues
// (connectRT, with every token) and device grants (refused as a test
// scripts with RefuseNext), and it answers device authorizations at
// DeviceAuthorizationURL.
func newConnectIdP(t *testing.T) *oauthtest.TokenEndpoint {
	t.Helper()
	return oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{
		AccessToken: "at-connected-SECRET", Scope: "read write",
		RefreshToken: connectRT, IssueRefreshToken: connectRT,
		Grants: []string{oauthtest.GrantAuthorizationCode, oauthtest.GrantRefreshToken, oauthtest.GrantDeviceCode},
		DeviceAuthorization: map[string]any{
			"device_code": "dev-code-SECRET", "user_code": "WDJB-MJHT", "verification_uri": "https://idp.example/device",
			"verification_uri_complete": "https://idp.example/device?user_code=WDJB-MJHT", "expires_in": 600, "interval": 1,
		},
	})
}

// bindUnconnected writes an oauth2.refresh_token binding without a refresh token.
func bindUnconnected(t *testing.T, b *testBackend, handle string, idp *oauthtest.TokenEndpoint) {
	b.write(t, "bindings/"+handle, map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": "client-1", "client_secret": testClientSecret,
		"token_url": idp.TokenURL(), "authorization_url": idp.URL() + "/authorize",
		"device_authorization_url": idp.DeviceAuthorizationURL(), "redirect_uri": "http://127.0.0.1:8250/callback",
		"scopes": "read,write",
	})
}

// authorize starts a grant and tells the provider its challenge.
func authorize(t *testing.T, b *testBackend, handle string, idp *oauthtest.TokenEndpoint) (state string, authURL *url.URL) {
	resp := b.write(t, "bindings/"+handle+"/authorize", nil)
	u, err := url.Parse(resp.Data["auth_url"].(string))
	require.NoError(t, err)
	idp.SetAuthorizationCode(connectCode, u.Query().Get("code_challenge"))
	return resp.Data["state"].(string), u
}

func TestConnect_AuthorizationCodeWithPKCE(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newConnectIdP(t)
	bindUnconnected(t, b, "crm", idp)
	require.Equal(t, healthNeedsAuthorization, health(t, b, "crm")["health"])
	resp, err := b.do(t, logical.ReadOperation, "token/crm", nil)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(resp.Error().Error(), "needs_authorization: "), resp.Error().Error())

	state, u := authorize(t, b, "crm", idp)
	q := u.Query()
	require.Equal(t, idp.URL()+"/authorize", u.Scheme+"://"+u.Host+u.Path)
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	require.Equal(t, state, q.Get("state"))
	require.Equal(t, "client-1", q.Get("client_id"))
	require.Equal(t, "code", q.Get("response_type"))
	require.Equal(t, "http://127.0.0.1:8250/callback", q.Get("redirect_uri"))
	require.Equal(t, "read write", q.Get("scope"))
	require.GreaterOrEqual(t, len(state), 22, "state carries at least 128 bits")
	require.NotContains(t, u.String(), testClientSecret)

	done := b.write(t, "bindings/crm/authorize/complete", map[string]interface{}{"state": state, "code": connectCode})
	st := done.Data["status"].(map[string]interface{})
	require.Equal(t, healthOK, st["health"])
	require.Equal(t, []string{"read", "write"}, st["granted_scopes"])
	raw, _ := json.Marshal(done.Data)
	require.NotContains(t, string(raw), connectRT)
	require.NotContains(t, string(raw), "at-connected-SECRET")

	tok := b.read(t, "token/crm", nil)
	require.Equal(t, "at-connected-SECRET", tok.Data["access_token"])
	// The connected refresh token is what the next refresh sends.
	b.write(t, "bindings/crm/refresh", nil)
	require.Equal(t, connectRT, idp.LastRequest().Form().Get("refresh_token"))
	// It lives in the token state, never in the binding.
	be, err := getBinding(context.Background(), b.s, "crm")
	require.NoError(t, err)
	require.Empty(t, be.Inline["refresh_token"])

	// The state is single use.
	requireWriteStatus(t, b, "bindings/crm/authorize/complete", map[string]interface{}{"state": state, "code": connectCode}, 400, "unknown or already used state")
}

func TestConnect_States(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newConnectIdP(t)
	bindUnconnected(t, b, "a", idp)
	bindUnconnected(t, b, "b", idp)

	requireWriteStatus(t, b, "bindings/a/authorize/complete", map[string]interface{}{"state": "nope", "code": connectCode}, 400, "unknown")
	stateA, _ := authorize(t, b, "a", idp)
	// Another handle's state is refused, and stays usable for its own.
	requireWriteStatus(t, b, "bindings/b/authorize/complete", map[string]interface{}{"state": stateA, "code": connectCode}, 400, "another handle")
	b.write(t, "bindings/a/authorize/complete", map[string]interface{}{"state": stateA, "code": connectCode})
	require.Equal(t, healthOK, health(t, b, "a")["health"])

	stateB, _ := authorize(t, b, "b", idp)
	clock.advance(authStateTTL + time.Second)
	requireWriteStatus(t, b, "bindings/b/authorize/complete", map[string]interface{}{"state": stateB, "code": connectCode}, 400, "expired")

	// A refused code (a denied consent, a replayed code) changes nothing.
	stateB, _ = authorize(t, b, "b", idp)
	requireWriteStatus(t, b, "bindings/b/authorize/complete", map[string]interface{}{"state": stateB, "code": "wrong"}, 400, "invalid_grant")
	require.Equal(t, healthNeedsAuthorization, health(t, b, "b")["health"])

	// A provider that issues no refresh token: the binding stays unconnected.
	idp.SetIssueRefreshToken("")
	stateB, _ = authorize(t, b, "b", idp)
	requireWriteStatus(t, b, "bindings/b/authorize/complete", map[string]interface{}{"state": stateB, "code": connectCode}, 400, "no refresh token")

	// Kinds without a refresh token cannot be connected; bad input is named.
	b.write(t, "bindings/static", map[string]interface{}{"kind": "api_token", "token": testAPIToken})
	requireWriteStatus(t, b, "bindings/static/authorize", nil, 400, "no refresh token to connect")
	requireWriteStatus(t, b, "bindings/a/authorize", map[string]interface{}{"redirect_uri": "http://example.com/cb"}, 400, "redirect_uri")
	requireWriteStatus(t, b, "bindings/a/authorize", map[string]interface{}{"extra_params": "state=x"}, 400, "extra_params")
	requireWriteStatus(t, b, "bindings/nobody/authorize", nil, 404, "no binding")
}

func TestConnect_ReconnectNeedsReauth(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newConnectIdP(t)
	bindUnconnected(t, b, "crm", idp)
	b.write(t, "bindings/crm", map[string]interface{}{"refresh_token": "dead-rt-SECRET"})
	_, _ = b.do(t, logical.ReadOperation, "token/crm", nil)
	require.Equal(t, healthNeedsReauth, health(t, b, "crm")["health"])

	state, _ := authorize(t, b, "crm", idp)
	b.write(t, "bindings/crm/authorize/complete", map[string]interface{}{"state": state, "code": connectCode})
	require.Equal(t, healthOK, health(t, b, "crm")["health"])
	require.Equal(t, "at-connected-SECRET", b.read(t, "token/crm", map[string]interface{}{"min_ttl": 7200}).Data["access_token"])
	// The binding's own (dead) refresh token is kept; a new one written later wins.
	be, _ := getBinding(context.Background(), b.s, "crm")
	require.Equal(t, "dead-rt-SECRET", be.Inline["refresh_token"])
}

func TestConnect_GoogleDefaults(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "bindings/g", map[string]interface{}{
		"kind": "google.oauth2", "client_id": "1234.apps.googleusercontent.com", "client_secret": testClientSecret,
		"scopes": "https://www.googleapis.com/auth/spreadsheets",
	})
	require.Equal(t, healthNeedsAuthorization, health(t, b, "g")["health"])
	resp := b.write(t, "bindings/g/authorize", map[string]interface{}{"redirect_uri": "http://127.0.0.1:9999/callback"})
	u, err := url.Parse(resp.Data["auth_url"].(string))
	require.NoError(t, err)
	require.Equal(t, "accounts.google.com", u.Host)
	for k, v := range map[string]string{"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"} {
		require.Equal(t, v, u.Query().Get(k), k)
	}
}

func TestConnect_PublicCallback(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newConnectIdP(t)
	bindUnconnected(t, b, "crm", idp)
	state, _ := authorize(t, b, "crm", idp)

	_, err := b.do(t, logical.ReadOperation, "callback", map[string]interface{}{"state": state, "code": connectCode})
	var coded logical.HTTPCodedError
	require.ErrorAs(t, err, &coded)
	require.Equal(t, http.StatusNotFound, coded.Code())

	b.write(t, "config", map[string]interface{}{"public_callback": true})
	page := b.read(t, "callback", map[string]interface{}{"state": state, "code": connectCode})
	require.Equal(t, http.StatusOK, page.Data[logical.HTTPStatusCode])
	body := string(page.Data[logical.HTTPRawBody].([]byte))
	require.Contains(t, body, "connected")
	require.NotContains(t, body, connectRT)
	require.Equal(t, healthOK, health(t, b, "crm")["health"])

	// A denied consent and unknown states fail; too many failures are refused.
	state, _ = authorize(t, b, "crm", idp)
	denied := b.read(t, "callback", map[string]interface{}{"state": state, "error": "access_denied"})
	require.Equal(t, http.StatusBadRequest, denied.Data[logical.HTTPStatusCode])
	var last *logical.Response
	for i := 0; i < 12; i++ {
		last = b.read(t, "callback", map[string]interface{}{"state": "guess", "code": "x"})
	}
	require.Equal(t, http.StatusTooManyRequests, last.Data[logical.HTTPStatusCode])
}

func TestConnect_DeviceGrant(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newConnectIdP(t)
	bindUnconnected(t, b, "crm", idp)
	idp.RefuseNext(oauthtest.GrantDeviceCode, "authorization_pending", "")

	resp := b.write(t, "bindings/crm/device", nil)
	require.Equal(t, "WDJB-MJHT", resp.Data["user_code"])
	require.Equal(t, "https://idp.example/device", resp.Data["verification_uri"])
	require.EqualValues(t, 1, resp.Data["interval"])
	raw, _ := json.Marshal(resp.Data)
	require.NotContains(t, string(raw), "dev-code-SECRET")
	require.Equal(t, healthPendingAuthorization, health(t, b, "crm")["health"])
	tr, err := b.do(t, logical.ReadOperation, "token/crm", nil)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tr.Error().Error(), "needs_authorization: "))

	waitFor(t, "the device grant completes", func() bool {
		return b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})["health"] == healthOK
	})
	require.Equal(t, "at-connected-SECRET", b.read(t, "token/crm", nil).Data["access_token"])
	require.Equal(t, int64(2), idp.GrantCount(oauthtest.GrantDeviceCode))
	entry, err := b.s.Get(context.Background(), devicePrefix+"crm")
	require.NoError(t, err)
	require.Nil(t, entry, "the pending grant is removed")
}

func TestConnect_DeviceGrantDeniedAndSlowDown(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newConnectIdP(t)
	bindUnconnected(t, b, "crm", idp)
	idp.RefuseNext(oauthtest.GrantDeviceCode, "access_denied")
	b.write(t, "bindings/crm/device", nil)
	waitFor(t, "the denied grant ends", func() bool {
		return health(t, b, "crm")["last_error_code"] == "access_denied"
	})
	require.Equal(t, healthNeedsAuthorization, health(t, b, "crm")["health"])

	idp.RefuseNext(oauthtest.GrantDeviceCode, "slow_down", "authorization_pending", "authorization_pending", "authorization_pending")
	b.write(t, "bindings/crm/device", nil)
	waitFor(t, "slow_down lengthens the interval", func() bool {
		p, err := getJSON[pendingDevice](context.Background(), b.s, devicePrefix+"crm", "")
		return err == nil && p != nil && p.Interval == time.Second+slowDownStep
	})
}
