package oauth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// TestRevokeOnDelete: deleting a binding with revoke_on_delete revokes its
// current refresh token at the real server's RFC 7009 endpoint, and the
// server's introspection then says the token is inactive.
func TestRevokeOnDelete(t *testing.T) {
	serial(t)
	v, o := env(t)
	rt := o.Mint(t, oauthtest.ClientRTBasic)
	// The revocation goes through a proxy that counts what reaches the endpoint.
	rp := oauthtest.NewFaultProxy(o.RevocationURL)
	t.Cleanup(rp.Close)
	path := v.Mount + "/bindings/revoke_me"
	if _, err := v.Client.Logical().Write(path, map[string]interface{}{
		"kind": "oauth2.refresh_token", "token_url": o.TokenURL, "client_id": oauthtest.ClientRTBasic,
		"client_secret": oauthtest.SecretRTBasic, "refresh_token": rt, "auth_style": "header",
		"revoke_on_delete": true, "revocation_url": rp.TokenURL(),
	}); err != nil {
		t.Fatal(err)
	}
	mustReadToken(t, v.Client, v.Mount, "revoke_me", 0)
	if !introspectActive(t, o, rt) {
		t.Fatal("the refresh token is inactive before the delete")
	}
	if _, err := v.Client.Logical().Delete(path); err != nil {
		t.Fatal(err)
	}
	if got := rp.Count(); got != 1 {
		t.Errorf("requests at the revocation endpoint %d, want 1", got)
	}
	if introspectActive(t, o, rt) {
		t.Error("the refresh token is still active after the delete")
	}
}

// introspectActive asks the server's introspection endpoint (RFC 7662).
func introspectActive(t *testing.T, o *oauthtest.Server, token string) bool {
	t.Helper()
	u := strings.TrimSuffix(o.RevocationURL, "/revocation") + "/introspection"
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(oauthtest.ClientRTBasic, oauthtest.SecretRTBasic)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("introspection: %s: %v", resp.Status, err)
	}
	return out.Active
}
