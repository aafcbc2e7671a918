package oauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/leakcheck"
	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// connectRedirect is a loopback redirect URI (RFC 8252) of the kind the CLI
// listens on; nothing listens here: the tests take code and state from the
// redirect the browser was sent to.
const connectRedirect = "http://127.0.0.1:38111/callback"

// connectRun talks to Vault with plain net/http and keeps every answer for
// the secret scan at the end of TestConnect.
type connectRun struct {
	t    *testing.T
	v    *vaulttest.Server
	o    *oauthtest.Server
	http *http.Client

	mu sync.Mutex
	// answers are every Vault answer but successful token reads, which
	// carry an access token by design and are in tokenAnswers.
	answers, tokenAnswers []leakcheck.Target
}

// do sends a request (with the root token unless anonymous) and returns the
// status and raw body.
func (c *connectRun) do(method, path string, body map[string]interface{}, anonymous bool) (int, string) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = c.v.Addr + "/v1/" + c.v.Mount + "/" + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if !anonymous {
		req.Header.Set("X-Vault-Token", c.v.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	where := fmt.Sprintf("%s %s answer (%d)", method, req.URL.Path, resp.StatusCode)
	c.mu.Lock()
	if strings.Contains(path, "token/") && resp.StatusCode == http.StatusOK {
		c.tokenAnswers = append(c.tokenAnswers, leakcheck.Text(where, string(raw)))
	} else {
		c.answers = append(c.answers, leakcheck.Text(where, string(raw)))
	}
	c.mu.Unlock()
	return resp.StatusCode, string(raw)
}

// ok sends a request that must succeed and returns its data.
func (c *connectRun) ok(method, path string, body map[string]interface{}) map[string]interface{} {
	c.t.Helper()
	status, raw := c.do(method, path, body, false)
	if status != http.StatusOK && status != http.StatusNoContent {
		c.t.Fatalf("%s %s: %d: %s", method, path, status, errorsOf(raw))
	}
	var out struct {
		Data map[string]interface{} `json:"data"`
	}
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return out.Data
}

// fails sends a request that must fail with status and a message
// containing want.
func (c *connectRun) fails(method, path string, body map[string]interface{}, status int, want string) {
	c.t.Helper()
	got, raw := c.do(method, path, body, false)
	if msg := errorsOf(raw); got != status || !strings.Contains(msg, want) {
		c.t.Fatalf("%s %s: %d %q, want %d containing %q", method, path, got, msg, status, want)
	}
}

func errorsOf(raw string) string {
	var out struct {
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal([]byte(raw), &out)
	return strings.Join(out.Errors, "; ")
}

// bind writes an oauth2.refresh_token binding without a refresh token for
// a connect client, and deletes it when the test ends.
func (c *connectRun) bind(handle, client, secret string) {
	c.t.Helper()
	style := "header"
	if client == oauthtest.ClientConnectPost {
		style = "params"
	}
	c.ok(http.MethodPost, "bindings/"+handle, map[string]interface{}{
		"kind": "oauth2.refresh_token", "token_url": c.o.TokenURL, "client_id": client, "client_secret": secret, "auth_style": style,
		"authorization_url": c.o.AuthorizationURL, "device_authorization_url": c.o.DeviceAuthorizationURL,
		"scopes": "openid api", "description": "connect test",
	})
	c.t.Cleanup(func() { c.do(http.MethodDelete, "bindings/"+handle, nil, false) })
	if h := c.status(handle)["health"]; h != "needs_authorization" {
		c.t.Fatalf("%s without a refresh token: health %v, want needs_authorization", handle, h)
	}
}

func (c *connectRun) status(handle string) map[string]interface{} {
	c.t.Helper()
	st, _ := c.ok(http.MethodGet, "bindings/"+handle, nil)["status"].(map[string]interface{})
	return st
}

// token reads token/<handle> and returns its access token.
func (c *connectRun) token(handle string, minTTL int) string {
	c.t.Helper()
	tok, _ := c.ok(http.MethodGet, "token/"+handle+"?min_ttl="+strconv.Itoa(minTTL), nil)["access_token"].(string)
	if tok == "" {
		c.t.Fatalf("token/%s: no access_token", handle)
	}
	return tok
}

// authorize starts a code grant and returns its state and auth_url.
func (c *connectRun) authorize(handle, redirect string) (string, string) {
	c.t.Helper()
	d := c.ok(http.MethodPost, "bindings/"+handle+"/authorize", map[string]interface{}{"redirect_uri": redirect})
	state, _ := d["state"].(string)
	authURL, _ := d["auth_url"].(string)
	if len(state) < 22 || !strings.HasPrefix(authURL, c.o.AuthorizationURL+"?") || d["expires_at"] == nil {
		c.t.Fatalf("authorize answered state of %d characters, auth_url on %q, expires_at %v", len(state), strings.SplitN(authURL, "?", 2)[0], d["expires_at"])
	}
	return state, authURL
}

// browse is the browser at the redirect URI: code and state (or error)
// from where the provider sent it.
func browse(t *testing.T, redirect, wantPrefix string) url.Values {
	t.Helper()
	if !strings.HasPrefix(redirect, wantPrefix+"?") {
		t.Fatalf("the provider sent the browser to %s..., want %s", strings.SplitN(redirect, "?", 2)[0], wantPrefix)
	}
	u, err := url.Parse(redirect)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// complete passes state and code to authorize/complete and checks the
// answer: the status ok with the granted scopes, and no token.
func (c *connectRun) complete(handle, state, code string) {
	c.t.Helper()
	d := c.ok(http.MethodPost, "bindings/"+handle+"/authorize/complete", map[string]interface{}{"state": state, "code": code})
	st, _ := d["status"].(map[string]interface{})
	if d["handle"] != handle || st["health"] != "ok" || !containsString(st["granted_scopes"], "api") || !containsString(st["granted_scopes"], "openid") {
		c.t.Fatalf("authorize/complete answered handle %v, status %v; want %s ok with granted_scopes openid api", d["handle"], st, handle)
	}
	for _, k := range []string{"access_token", "refresh_token"} {
		if _, ok := d[k]; ok {
			c.t.Fatalf("authorize/complete answered a %s", k)
		}
	}
}

// connectByCode runs the whole code flow for handle as browser b.
func (c *connectRun) connectByCode(handle string, b *oauthtest.Browser) {
	c.t.Helper()
	state, authURL := c.authorize(handle, connectRedirect)
	redirect, err := b.Approve(authURL)
	if err != nil {
		c.t.Fatal(err)
	}
	q := browse(c.t, redirect, connectRedirect)
	if q.Get("state") != state || q.Get("code") == "" {
		c.t.Fatalf("redirect carries the state: %v, a code: %v", q.Get("state") == state, q.Get("code") != "")
	}
	c.complete(handle, state, q.Get("code"))
}

// waitStatus polls the binding's status until cond holds.
func (c *connectRun) waitStatus(handle, what string, timeout time.Duration, cond func(st map[string]interface{}) bool) map[string]interface{} {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := c.status(handle)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %s did not happen in %s; status %v", handle, what, timeout, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startDevice starts a device grant and checks its answer.
func (c *connectRun) startDevice(handle string, interval int) string {
	c.t.Helper()
	d := c.ok(http.MethodPost, "bindings/"+handle+"/device", nil)
	uc, _ := d["user_code"].(string)
	if uc == "" || d["verification_uri"] != c.o.DeviceURL || !strings.HasPrefix(fmt.Sprint(d["verification_uri_complete"]), c.o.DeviceURL+"?user_code=") ||
		fmt.Sprint(d["interval"]) != strconv.Itoa(interval) || d["expires_at"] == nil {
		c.t.Fatalf("device answered %v; want a user_code, verification_uri %s, interval %d, expires_at", d, c.o.DeviceURL, interval)
	}
	if _, ok := d["device_code"]; ok {
		c.t.Fatal("device answered the device_code")
	}
	if h := c.status(handle)["health"]; h != "pending_authorization" {
		c.t.Fatalf("%s waiting for the user: health %v, want pending_authorization", handle, h)
	}
	c.fails(http.MethodGet, "token/"+handle, nil, http.StatusBadRequest, "needs_authorization: ")
	return uc
}

// TestConnect connects bindings through the plugin against the real
// OAuth2 server: by code, through the public callback, by the device
// grant, a reconnect, and the refusals; then scans the Vault log, an audit
// log and every answer for every secret involved.
//
// It does not run in parallel: it runs alone before the parallel tests
// start, so that its 17 s do not shift the serial tests (one starts a second
// Vault) into the Vault Agent tests' renewal window, which is timing
// sensitive on a loaded machine.
func TestConnect(t *testing.T) {
	serialMu.Lock()
	t.Cleanup(serialMu.Unlock)
	v, o := env(t)
	c := &connectRun{t: t, v: v, o: o, http: &http.Client{Timeout: time.Minute}}

	auditPath := filepath.Join(t.TempDir(), "audit.log")
	if err := v.Client.Sys().EnableAuditWithOptions("connect_audit", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditPath}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Client.Sys().DisableAudit("connect_audit") })
	if err := o.SetDeviceInterval(time.Second, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.SetDeviceInterval(5*time.Second, 0) })

	t.Run("code", func(t *testing.T) {
		c.t = t
		const h = "connect_code"
		c.bind(h, oauthtest.ClientConnectRotate, oauthtest.SecretConnectRotate)
		c.fails(http.MethodGet, "token/"+h, nil, http.StatusBadRequest, "needs_authorization: ")
		before := o.MustStats(t)
		state, authURL := c.authorize(h, connectRedirect)
		redirect, err := oauthtest.Approve(authURL)
		if err != nil {
			t.Fatal(err)
		}
		q := browse(t, redirect, connectRedirect)
		c.complete(h, state, q.Get("code"))
		at1 := c.token(h, 0)
		// Refreshes send the connected (then rotated) refresh token.
		c.ok(http.MethodPost, "bindings/"+h+"/refresh", nil)
		if at2 := c.token(h, beyondLife); at2 == at1 {
			t.Error("a read with min_ttl beyond the token's life returned the same access token")
		}
		after := o.MustStats(t)
		if d := after.TokenSuccess[oauthtest.GrantAuthorizationCode] - before.TokenSuccess[oauthtest.GrantAuthorizationCode]; d != 1 {
			t.Errorf("%d code exchanges, want 1", d)
		}
		if d := after.TokenSuccess[oauthtest.GrantRefreshToken] - before.TokenSuccess[oauthtest.GrantRefreshToken]; d != 2 {
			t.Errorf("%d refreshes, want 2", d)
		}
		if after.RefreshTokenReuseDetected != before.RefreshTokenReuseDetected {
			t.Error("the server saw a rotated refresh token reused")
		}
		if st := c.status(h); st["health"] != "ok" || st["last_error"] != nil {
			t.Errorf("status after the refreshes: %v", st)
		}
		// The state is single use: replaying it (with its code) is refused.
		c.fails(http.MethodPost, "bindings/"+h+"/authorize/complete", map[string]interface{}{"state": state, "code": q.Get("code")}, http.StatusBadRequest, "unknown or already used state")
	})

	t.Run("states", func(t *testing.T) {
		c.t = t
		const a, b = "connect_state_a", "connect_state_b"
		c.bind(a, oauthtest.ClientConnect, oauthtest.SecretConnect)
		c.bind(b, oauthtest.ClientConnect, oauthtest.SecretConnect)
		c.fails(http.MethodPost, "bindings/"+a+"/authorize/complete", map[string]interface{}{"state": "no-such-state", "code": "x"}, http.StatusBadRequest, "unknown or already used state")
		state, authURL := c.authorize(a, connectRedirect)
		redirect, err := oauthtest.Approve(authURL)
		if err != nil {
			t.Fatal(err)
		}
		code := browse(t, redirect, connectRedirect).Get("code")
		// Another handle's state is refused and stays usable for its own.
		c.fails(http.MethodPost, "bindings/"+b+"/authorize/complete", map[string]interface{}{"state": state, "code": code}, http.StatusBadRequest, "another handle")
		if h := c.status(b)["health"]; h != "needs_authorization" {
			t.Errorf("%s after another handle's state: %v", b, h)
		}
		c.complete(a, state, code)
		c.token(a, 0)
	})

	t.Run("denied consent", func(t *testing.T) {
		c.t = t
		const h = "connect_denied"
		c.bind(h, oauthtest.ClientConnect, oauthtest.SecretConnect)
		state, authURL := c.authorize(h, connectRedirect)
		redirect, err := oauthtest.Deny(authURL)
		if err != nil {
			t.Fatal(err)
		}
		q := browse(t, redirect, connectRedirect)
		if q.Get("error") != "access_denied" || q.Get("state") != state || q.Has("code") {
			t.Fatalf("denied: error %q, state matches %v, a code %v", q.Get("error"), q.Get("state") == state, q.Has("code"))
		}
		// What a CLI does with a redirect that has no code.
		c.fails(http.MethodPost, "bindings/"+h+"/authorize/complete", map[string]interface{}{"state": state}, http.StatusBadRequest, "code: required")
		if st := c.status(h); st["health"] != "needs_authorization" {
			t.Errorf("status after a denied consent: %v", st)
		}
		c.fails(http.MethodPost, "bindings/"+h+"/authorize/complete", map[string]interface{}{"state": state, "code": "x"}, http.StatusBadRequest, "unknown or already used state")
	})

	t.Run("public callback", func(t *testing.T) {
		c.t = t
		const h = "connect_callback"
		callback := v.Addr + "/v1/" + v.Mount + "/callback"
		c.bind(h, oauthtest.ClientConnectPost, oauthtest.SecretConnectPost)
		if got, raw := c.do(http.MethodGet, callback+"?state=x&code=y", nil, true); got != http.StatusNotFound {
			t.Fatalf("callback with public_callback false: %d %s, want 404", got, errorsOf(raw))
		}
		c.ok(http.MethodPost, "config", map[string]interface{}{"public_callback": true})
		t.Cleanup(func() { c.do(http.MethodPost, "config", map[string]interface{}{"public_callback": false}, false) })

		_, authURL := c.authorize(h, callback)
		redirect, err := oauthtest.Approve(authURL)
		if err != nil {
			t.Fatal(err)
		}
		browse(t, redirect, callback)
		// The browser follows the redirect to Vault, with no Vault token.
		got, page := c.do(http.MethodGet, redirect, nil, true)
		if got != http.StatusOK || !strings.Contains(page, "Connected") || !strings.Contains(page, h) {
			t.Fatalf("the callback page: %d %q, want 200 Connected naming %s", got, page, h)
		}
		if st := c.status(h); st["health"] != "ok" {
			t.Fatalf("status after the callback: %v", st)
		}
		c.token(h, 0)

		// A denied consent through the callback: a 400 page, the state spent.
		state, authURL := c.authorize(h, callback)
		redirect, err = oauthtest.Deny(authURL)
		if err != nil {
			t.Fatal(err)
		}
		if got, page = c.do(http.MethodGet, redirect, nil, true); got != http.StatusBadRequest || !strings.Contains(page, "access_denied") {
			t.Fatalf("the callback page of a denied consent: %d %q, want 400 naming access_denied", got, page)
		}
		c.fails(http.MethodPost, "bindings/"+h+"/authorize/complete", map[string]interface{}{"state": state, "code": "x"}, http.StatusBadRequest, "unknown or already used state")
		if st := c.status(h); st["health"] != "ok" {
			t.Errorf("a denied reconnect changed the status: %v", st)
		}
	})

	t.Run("reconnect needs_reauth", func(t *testing.T) {
		c.t = t
		const h, user = "connect_reauth", "reauth-user"
		c.bind(h, oauthtest.ClientConnect, oauthtest.SecretConnect)
		c.connectByCode(h, oauthtest.NewBrowser(user))
		c.token(h, 0)
		if n, err := o.RevokeAccount(user, oauthtest.ClientConnect); err != nil || n != 1 {
			t.Fatalf("revoking %s's grant at the server: %d grants, %v", user, n, err)
		}
		c.fails(http.MethodGet, "token/"+h+"?min_ttl="+strconv.Itoa(beyondLife), nil, http.StatusBadRequest, "needs_reauth: ")
		if st := c.status(h); st["health"] != "needs_reauth" {
			t.Fatalf("status after the revoked refresh: %v", st)
		}
		c.connectByCode(h, oauthtest.NewBrowser(user))
		c.token(h, beyondLife)
		if st := c.status(h); st["health"] != "ok" {
			t.Errorf("status after reconnecting: %v", st)
		}
	})

	t.Run("device", func(t *testing.T) {
		c.t = t
		const h = "connect_device"
		c.bind(h, oauthtest.ClientConnect, oauthtest.SecretConnect)
		uc := c.startDevice(h, 1)
		if err := o.ApproveDevice(uc); err != nil {
			t.Fatal(err)
		}
		st := c.waitStatus(h, "the plugin's poll collects the approval", 30*time.Second, func(st map[string]interface{}) bool { return st["health"] == "ok" })
		if !containsString(st["granted_scopes"], "api") {
			t.Errorf("granted_scopes %v, want api among them", st["granted_scopes"])
		}
		c.token(h, 0)
		c.token(h, beyondLife) // refreshes with the device grant's refresh token
	})

	t.Run("device denied", func(t *testing.T) {
		c.t = t
		const h = "connect_device_denied"
		c.bind(h, oauthtest.ClientConnect, oauthtest.SecretConnect)
		uc := c.startDevice(h, 1)
		if err := o.DenyDevice(uc); err != nil {
			t.Fatal(err)
		}
		st := c.waitStatus(h, "the denied grant ends", 30*time.Second, func(st map[string]interface{}) bool { return st["last_error_code"] == "access_denied" })
		if st["health"] != "needs_authorization" {
			t.Errorf("health after a denied device grant: %v, want needs_authorization", st["health"])
		}
		c.fails(http.MethodGet, "token/"+h, nil, http.StatusBadRequest, "needs_authorization: ")
	})

	t.Run("device slow_down", func(t *testing.T) {
		c.t = t
		const h = "connect_device_slow"
		// The server announces 1 s and answers slow_down to polls closer
		// than 3 s: the plugin's second poll gets slow_down, and then it
		// must poll every 6 s (RFC 8628 section 3.5: 5 s more).
		if err := o.SetDeviceInterval(time.Second, 3*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = o.SetDeviceInterval(time.Second, 0) })
		c.bind(h, oauthtest.ClientConnect, oauthtest.SecretConnect)
		before := o.MustStats(t)
		uc := c.startDevice(h, 1)
		deadline := time.Now().Add(20 * time.Second)
		for o.MustStats(t).Errors["slow_down"] == before.Errors["slow_down"] {
			if time.Now().After(deadline) {
				t.Fatal("the server answered no slow_down")
			}
			time.Sleep(100 * time.Millisecond)
		}
		mid := o.MustStats(t)
		time.Sleep(7 * time.Second)
		after := o.MustStats(t)
		if d := after.Errors["slow_down"] - before.Errors["slow_down"]; d != 1 {
			t.Errorf("%d slow_down answers, want 1 (the plugin did not lengthen its interval)", d)
		}
		if d := after.Errors["authorization_pending"] - mid.Errors["authorization_pending"]; d < 1 || d > 2 {
			t.Errorf("%d polls in the 7 s after slow_down, want 1 or 2 (every 6 s)", d)
		}
		if err := o.ApproveDevice(uc); err != nil {
			t.Fatal(err)
		}
		c.waitStatus(h, "the approval is collected", 30*time.Second, func(st map[string]interface{}) bool { return st["health"] == "ok" })
		c.token(h, 0)
	})

	c.t = t
	scanConnect(t, c, auditPath)
}

// scanConnect plants every secret of the connect flows (the connect
// clients' secrets, and every refresh token, authorization code, device code
// and access token the server issued to them, which the test mostly never
// saw) and scans the Vault log, the audit log and every answer for them.
// Token reads carry an access token by design: they are scanned for the
// other secrets.
func scanConnect(t *testing.T, c *connectRun, auditPath string) {
	all, inputs := leakcheck.New(), leakcheck.New()
	input := func(name, v string) { inputs.Add(name, v); all.Add(name, v) }
	counts := map[string]int{}
	for client, secret := range map[string]string{
		oauthtest.ClientConnect: oauthtest.SecretConnect, oauthtest.ClientConnectPost: oauthtest.SecretConnectPost,
		oauthtest.ClientConnectRotate: oauthtest.SecretConnectRotate,
	} {
		input(client+" client_secret", secret)
		issued, err := c.o.Issued(client)
		if err != nil {
			t.Fatal(err)
		}
		for i, it := range issued {
			name := fmt.Sprintf("%s %s #%d (account %q)", client, it.Kind, i, it.AccountID)
			counts[it.Kind]++
			if it.Kind == "AccessToken" {
				all.Add(name, it.Value)
			} else {
				input(name, it.Value)
			}
		}
	}
	t.Logf("issued to the connect clients: %v", counts)
	if counts["RefreshToken"] < 9 || counts["AuthorizationCode"] < 5 || counts["DeviceCode"] < 3 {
		t.Errorf("the server issued %v: fewer than the flows above make; the scan would prove little", counts)
	}
	audit, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hmac-sha256:", c.v.Mount + "/bindings/connect_code/authorize/complete", c.v.Mount + "/callback", c.v.Mount + "/bindings/connect_device/device"} {
		if !bytes.Contains(audit, []byte(want)) {
			t.Errorf("the audit log has no %q", want)
		}
	}
	c.mu.Lock()
	targets := append([]leakcheck.Target{
		leakcheck.File("vault server log (with the plugin's)", c.v.LogPath),
		leakcheck.File("audit log", auditPath),
	}, c.answers...)
	tokenReads := append([]leakcheck.Target(nil), c.tokenAnswers...)
	c.mu.Unlock()
	if len(tokenReads) < 8 {
		t.Errorf("%d token reads recorded", len(tokenReads))
	}
	all.RequireNone(t, targets...)
	inputs.RequireNone(t, tokenReads...)
}
