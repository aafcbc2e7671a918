package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// TestReaderHangsUpMidRefresh: a reader whose HTTP client gives up while its
// refresh is at a rotating provider (Vault then cancels the plugin request)
// does not cost the grant: the refresh completes and stores the rotated
// refresh token, and the binding stays ok.
func TestReaderHangsUpMidRefresh(t *testing.T) {
	serial(t)
	v, o := env(t)
	const handle = "custody_hangup"
	p := newProxy(t, o)
	writeBinding(t, v.Client, v.Mount, handle, map[string]interface{}{
		"kind":          "oauth2.refresh_token",
		"token_url":     p.TokenURL(),
		"client_id":     oauthtest.ClientRTRotate,
		"client_secret": oauthtest.SecretRTRotate,
		"refresh_token": o.Mint(t, oauthtest.ClientRTRotate),
	})
	before := o.MustStats(t)
	p.SetMode(oauthtest.SlowAnswer(1500 * time.Millisecond))

	// The reader hangs up after 0.4 s; the provider answers after 1.5 s.
	req, err := http.NewRequest(http.MethodGet, v.Addr+"/v1/"+v.Mount+"/token/"+handle, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", v.Token)
	if resp, err := (&http.Client{Timeout: 400 * time.Millisecond}).Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the read answered %d before the provider did", resp.StatusCode)
	}
	p.SetMode(oauthtest.PassThrough())

	// The refresh completes on its own and is stored: the next read is
	// served it without another token request.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, st := readBinding(t, v.Client, v.Mount, handle)
		if st["last_refresh_at"] != nil {
			if st["health"] != "ok" {
				t.Fatalf("status after the reader hung up = %v, want health ok", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the detached refresh did not complete: status %v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustReadToken(t, v.Client, v.Mount, handle, 0)
	if got := p.Count(); got != 1 {
		t.Errorf("%d token requests, want 1 (the read after the hang-up is served the stored token)", got)
	}
	// The next refresh sends the rotated refresh token: no reuse, grant alive.
	if _, err := v.Client.Logical().Write(v.Mount+"/bindings/"+handle+"/refresh", nil); err != nil {
		t.Fatalf("refresh after the hang-up: %v (the rotated refresh token was lost)", err)
	}
	after := o.MustStats(t)
	if d := after.RefreshTokenReuseDetected - before.RefreshTokenReuseDetected; d != 0 {
		t.Errorf("the server detected %d reused refresh tokens, want 0", d)
	}
	if d := after.GrantsRevoked - before.GrantsRevoked; d != 0 {
		t.Errorf("%d grants revoked, want 0", d)
	}
}

// TestTokenEndpointRedirectNotFollowed: a proxy in front of the token
// endpoint that answers 307 gets the refresh token and client secret sent
// nowhere else; the binding is degraded with last_error_code redirect.
func TestTokenEndpointRedirectNotFollowed(t *testing.T) {
	serial(t)
	v, o := env(t)
	const handle = "custody_redirect"
	other := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{AccessToken: "from-elsewhere"})
	p := newProxy(t, o)
	rt := o.Mint(t, oauthtest.ClientRTRotate)
	writeBinding(t, v.Client, v.Mount, handle, map[string]interface{}{
		"kind":          "oauth2.refresh_token",
		"token_url":     p.TokenURL(),
		"client_id":     oauthtest.ClientRTRotate,
		"client_secret": oauthtest.SecretRTRotate,
		"refresh_token": rt,
	})
	p.SetMode(oauthtest.StatusFault(http.StatusTemporaryRedirect, "").WithHeader("Location", other.URL()+"/token?q=QUERY"))
	_, err := vaulttest.ReadToken(v.Client, v.Mount, handle, 0)
	if got := responseStatus(err); got != http.StatusBadGateway {
		t.Fatalf("token read through a redirecting proxy: status %d (%v), want 502", got, err)
	}
	if n := other.Count(); n != 0 {
		t.Fatalf("the redirect was followed: %d requests reached the Location", n)
	}
	_, st := readBinding(t, v.Client, v.Mount, handle)
	u, _ := url.Parse(other.URL())
	msg, _ := st["last_error"].(string)
	if st["health"] != "degraded" || st["last_error_code"] != "redirect" || !strings.Contains(msg, u.Host) || strings.Contains(msg, "QUERY") {
		t.Errorf("status = %v, want degraded, last_error_code redirect, the Location host and not its query", st)
	}
	if strings.Contains(err.Error(), rt) || strings.Contains(err.Error(), oauthtest.SecretRTRotate) {
		t.Error("the error carries a secret")
	}
}
