package oauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// beyondLife is a min_ttl (seconds) longer than any token the server issues
// here (1 h): a read with it always refreshes first.
const beyondLife = 7200

// TestRefreshEachKind binds each OAuth2 kind to the real server and checks
// the material, the cache, and min_ttl forcing a refresh.
func TestRefreshEachKind(t *testing.T) {
	serial(t)
	v, o := env(t)
	const resource = "https://api.flowcred.test/v1"
	cases := []struct {
		name, kind     string
		client, secret string
		authStyle      string // "" leaves the kind's default
		refreshToken   bool
		tokenParams    map[string]string
		// wantBasic: the client authenticated with HTTP Basic, else with
		// client_id/client_secret in the form body.
		wantBasic bool
		grant     string
	}{
		{name: "refresh_token/header", kind: "oauth2.refresh_token", client: oauthtest.ClientRTBasic, secret: oauthtest.SecretRTBasic,
			authStyle: "header", refreshToken: true, wantBasic: true, grant: oauthtest.GrantRefreshToken},
		{name: "refresh_token/auto", kind: "oauth2.refresh_token", client: oauthtest.ClientRTBasic, secret: oauthtest.SecretRTBasic,
			authStyle: "auto", refreshToken: true, wantBasic: true, grant: oauthtest.GrantRefreshToken},
		{name: "refresh_token/params", kind: "oauth2.refresh_token", client: oauthtest.ClientRTPost, secret: oauthtest.SecretRTPost,
			authStyle: "params", refreshToken: true, wantBasic: false, grant: oauthtest.GrantRefreshToken},
		{name: "google.oauth2", kind: "google.oauth2", client: oauthtest.ClientRTPost, secret: oauthtest.SecretRTPost,
			refreshToken: true, wantBasic: false, grant: oauthtest.GrantRefreshToken},
		{name: "client_credentials/resource", kind: "oauth2.client_credentials", client: oauthtest.ClientCC, secret: oauthtest.SecretCC,
			tokenParams: map[string]string{"resource": resource}, wantBasic: true, grant: oauthtest.GrantClientCredentials},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			handle := fmt.Sprintf("kinds_%d", i)
			p := newProxy(t, o)
			data := map[string]interface{}{
				"kind":          tc.kind,
				"token_url":     p.TokenURL(),
				"client_id":     tc.client,
				"client_secret": tc.secret,
				"extra_headers": map[string]string{"x-flowcred-test": handle},
			}
			if tc.authStyle != "" {
				data["auth_style"] = tc.authStyle
			}
			if tc.refreshToken {
				data["refresh_token"] = o.Mint(t, tc.client)
			}
			if tc.tokenParams != nil {
				data["token_params"] = tc.tokenParams
			}
			writeBinding(t, v.Client, v.Mount, handle, data)

			before := o.MustStats(t)
			m1 := checkMaterial(t, mustReadToken(t, v.Client, v.Mount, handle, 0), handle, tc.kind, defaultAccessTTL)
			after := o.MustStats(t)
			if got := p.Count(); got != 1 {
				t.Errorf("first read: %d token requests through the proxy, want 1", got)
			}
			if d := totalRequests(after) - totalRequests(before); d != 1 {
				t.Errorf("first read: the server counted %d token requests, want 1", d)
			}
			if d := after.TokenSuccess[tc.grant] - before.TokenSuccess[tc.grant]; d != 1 {
				t.Errorf("first read: %d successful %s grants, want 1", d, tc.grant)
			}
			if m1.ExpiresIn < int64((defaultAccessTTL-time.Minute)/time.Second) {
				t.Errorf("expires_in = %d, want about %d", m1.ExpiresIn, int64(defaultAccessTTL/time.Second))
			}
			if m1.Headers["x-flowcred-test"] != handle || len(m1.Headers) != 2 {
				t.Errorf("headers have %d entries (x-flowcred-test=%q), want Authorization and x-flowcred-test=%s",
					len(m1.Headers), m1.Headers["x-flowcred-test"], handle)
			}

			// How the request looked on the wire.
			req := p.LastRequest()
			form := req.Form()
			_, _, hasBasic := basicAuth(req.Header.Get("Authorization"))
			if hasBasic != tc.wantBasic {
				t.Errorf("client authenticated with HTTP Basic: %v, want %v", hasBasic, tc.wantBasic)
			}
			if inBody := form.Get("client_secret") != ""; inBody == tc.wantBasic {
				t.Errorf("client_secret in the form body: %v, want %v", inBody, !tc.wantBasic)
			}
			if !tc.wantBasic && form.Get("client_id") != tc.client {
				t.Errorf("form client_id = %q, want %q", form.Get("client_id"), tc.client)
			}
			if form.Get("grant_type") != tc.grant {
				t.Errorf("grant_type = %q, want %q", form.Get("grant_type"), tc.grant)
			}
			if ua := req.Header.Get("User-Agent"); !strings.Contains(ua, "flowcred/") {
				t.Errorf("User-Agent = %q, want it to name flowcred", ua)
			}
			for k, want := range tc.tokenParams {
				if got := form.Get(k); got != want {
					t.Errorf("token request parameter %s = %q, want %q", k, got, want)
				}
			}
			if tc.tokenParams["resource"] != "" {
				// The server issues a JWT whose audience is the resource.
				claims := jwtClaims(t, m1.AccessToken)
				if claims["aud"] != resource {
					t.Errorf("access token aud = %v, want %q", claims["aud"], resource)
				}
			}

			// A second read is served from the cache.
			sec2 := mustReadToken(t, v.Client, v.Mount, handle, 0)
			m2 := checkMaterial(t, sec2, handle, tc.kind, defaultAccessTTL)
			if m2.AccessToken != m1.AccessToken {
				t.Errorf("second read: a different token (%s, first %s); want the cached one", fingerprint(m2.AccessToken), fingerprint(m1.AccessToken))
			}
			if got := p.Count(); got != 1 {
				t.Errorf("second read: %d token requests in all, want still 1", got)
			}
			if d := totalRequests(o.MustStats(t)) - totalRequests(after); d != 0 {
				t.Errorf("second read: the server counted %d more token requests, want 0", d)
			}

			// min_ttl beyond the token's life forces a refresh.
			sec3 := mustReadToken(t, v.Client, v.Mount, handle, beyondLife)
			m3 := checkMaterial(t, sec3, handle, tc.kind, defaultAccessTTL)
			if m3.AccessToken == m1.AccessToken {
				t.Error("min_ttl read: the cached token was served; want a refreshed one")
			}
			if got := p.Count(); got != 2 {
				t.Errorf("min_ttl read: %d token requests in all, want 2", got)
			}
			if d := totalRequests(o.MustStats(t)) - totalRequests(after); d != 1 {
				t.Errorf("min_ttl read: the server counted %d more token requests, want 1", d)
			}
			if !hasWarning(sec3, "min_ttl") {
				t.Errorf("min_ttl read: warnings %q, want one saying the token has less life than min_ttl", sec3.Warnings)
			}

			// The binding shows health and never a secret value.
			bd, st := readBinding(t, v.Client, v.Mount, handle)
			if st["health"] != "ok" || st["last_refresh_at"] == nil || st["expires_at"] == nil {
				t.Errorf("status = %v, want health ok with last_refresh_at and expires_at", st)
			}
			for _, f := range []string{"client_id", "client_secret"} {
				if !containsString(bd["inline_fields"], f) {
					t.Errorf("inline_fields = %v, want it to list %s", bd["inline_fields"], f)
				}
			}
			assertNoSecrets(t, bd, tc.secret, data["refresh_token"], m1.AccessToken, m3.AccessToken)
		})
	}
}

// TestRotationManyCycles refreshes a rotating client's grant over and over:
// every rotated refresh token must be stored before the next refresh uses
// it, or the server sees a reused token and revokes the grant. (That the
// stored one survives a new plugin process is TestRestartServesCachedToken's
// part: a plugin reload here would kill the multiplexed plugin process that
// the Agent test's mount shares, in the middle of its reads.)
func TestRotationManyCycles(t *testing.T) {
	serial(t)
	v, o := env(t)
	const handle, cycles = "rotate_many", 60
	p := newProxy(t, o)
	writeBinding(t, v.Client, v.Mount, handle, map[string]interface{}{
		"kind":          "oauth2.refresh_token",
		"token_url":     p.TokenURL(),
		"client_id":     oauthtest.ClientRTRotate,
		"client_secret": oauthtest.SecretRTRotate,
		"refresh_token": o.Mint(t, oauthtest.ClientRTRotate),
	})
	before := o.MustStats(t)
	seen := map[string]bool{}
	for i := 0; i < cycles; i++ {
		sec, err := vaulttest.ReadToken(v.Client, v.Mount, handle, beyondLife)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		m := checkMaterial(t, sec, handle, "oauth2.refresh_token", defaultAccessTTL)
		if seen[m.AccessToken] {
			t.Fatalf("cycle %d: a token served before came back; want a new one per forced refresh", i)
		}
		seen[m.AccessToken] = true
	}
	after := o.MustStats(t)
	if got := p.Count(); got != cycles {
		t.Errorf("%d token requests through the proxy, want %d", got, cycles)
	}
	if d := after.RefreshTokenReuseDetected - before.RefreshTokenReuseDetected; d != 0 {
		t.Errorf("the server detected %d reused refresh tokens, want 0", d)
	}
	if d := after.TokenSuccess[oauthtest.GrantRefreshToken] - before.TokenSuccess[oauthtest.GrantRefreshToken]; d != cycles {
		t.Errorf("%d successful refresh grants, want %d", d, cycles)
	}
	if d := after.GrantsRevoked - before.GrantsRevoked; d != 0 {
		t.Errorf("%d grants revoked, want 0", d)
	}
	// Still refreshing at the end.
	sec, err := v.Client.Logical().Write(v.Mount+"/bindings/"+handle+"/refresh", nil)
	if err != nil {
		t.Fatalf("refresh after %d cycles: %v", cycles, err)
	}
	if st, _ := sec.Data["status"].(map[string]interface{}); st["health"] != "ok" {
		t.Errorf("status after the final refresh = %v, want health ok", st)
	}
	if _, ok := sec.Data["access_token"]; ok {
		t.Error("bindings/<handle>/refresh answered an access_token; it must only answer the status")
	}
	if got := p.Count(); got != cycles+1 {
		t.Errorf("%d token requests after the final refresh, want %d", got, cycles+1)
	}
}

// TestConcurrentReadsOneRequest: 50 concurrent reads of a handle whose token
// has expired cause exactly one token request at the server.
func TestConcurrentReadsOneRequest(t *testing.T) {
	serial(t)
	v, o := env(t)
	const readers = 50
	p := newProxy(t, o)
	handle := "concurrent_expired"
	writeBinding(t, v.Client, v.Mount, handle, map[string]interface{}{
		"kind":          "oauth2.refresh_token",
		"token_url":     p.TokenURL(),
		"client_id":     oauthtest.ClientRTBasic,
		"client_secret": oauthtest.SecretRTBasic,
		"refresh_token": o.Mint(t, oauthtest.ClientRTBasic),
	})

	t.Run("expired", func(t *testing.T) {
		// A token that lives 3 s, then let it expire.
		setAccessTTL(t, o, 3*time.Second)
		first := checkMaterial(t, mustReadToken(t, v.Client, v.Mount, handle, 0), handle, "oauth2.refresh_token", 3*time.Second)
		if err := o.SetTTL(defaultAccessTTL, 0); err != nil {
			t.Fatal(err)
		}
		// expires_at is truncated to the second.
		waitPast(first.ExpiresAt, 1500*time.Millisecond)

		tokens := burst(t, v, handle, readers, 0, p, o, 1)
		if tokens[first.AccessToken] {
			t.Error("the expired token was served")
		}
	})

	t.Run("min_ttl beyond the issued life", func(t *testing.T) {
		// Every reader asks for more life than the provider ever issues:
		// the refresh done while they wait answers all of them. (A read
		// that arrives after it completed refreshes again, by design; the
		// proxy holds the first token request for a few seconds so that all
		// readers arrive while it is in flight, which 50 reads on loopback
		// do in well under that.)
		p.FailNext(1, oauthtest.Delay(3*time.Second))
		burst(t, v, handle, readers, beyondLife, p, o, 1)
	})
}

// burst runs n concurrent token reads and checks that they caused want token
// requests at the proxy and at the server, and all got the same token.
func burst(t *testing.T, v *vaulttest.Server, handle string, n, minTTL int, p *oauthtest.FaultProxy, o *oauthtest.Server, want int) map[string]bool {
	t.Helper()
	before := o.MustStats(t)
	proxyBefore := p.Count()
	start := make(chan struct{})
	var wg sync.WaitGroup
	secs := make([]*api.Secret, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			secs[i], errs[i] = vaulttest.ReadToken(v.Client, v.Mount, handle, minTTL)
		}(i)
	}
	close(start)
	wg.Wait()
	tokens := map[string]bool{}
	for i := range secs {
		if errs[i] != nil {
			t.Fatalf("reader %d: %v", i, errs[i])
		}
		tokens[checkMaterial(t, secs[i], handle, "oauth2.refresh_token", defaultAccessTTL).AccessToken] = true
	}
	after := o.MustStats(t)
	if got := p.Count() - proxyBefore; got != int64(want) {
		t.Errorf("%d concurrent reads (min_ttl=%d): %d token requests through the proxy, want %d", n, minTTL, got, want)
	}
	if d := totalRequests(after) - totalRequests(before); d != want {
		t.Errorf("%d concurrent reads (min_ttl=%d): the server counted %d token requests, want %d", n, minTTL, d, want)
	}
	if len(tokens) != 1 {
		t.Errorf("%d concurrent reads got %d different tokens, want 1", n, len(tokens))
	}
	return tokens
}

// TestRevokedRefreshToken: a grant revoked at the provider puts the binding
// in needs_reauth with the provider's invalid_grant; the refresh token is
// kept; a new one works. Both clients use auth_style auto: rt-basic is
// served by the first (HTTP Basic) attempt, rt-post only by the second (form
// body), so each of its refreshes costs two requests, and the error shown
// must still be the grant's, not the first attempt's invalid_client.
func TestRevokedRefreshToken(t *testing.T) {
	serial(t)
	v, o := env(t)
	cases := []struct {
		client, secret, authStyle string
		perRefresh                int64 // token requests per refresh
	}{
		{oauthtest.ClientRTBasic, oauthtest.SecretRTBasic, "", 1},
		{oauthtest.ClientRTPost, oauthtest.SecretRTPost, "auto", 2},
	}
	for i, tc := range cases {
		t.Run(tc.client, func(t *testing.T) {
			handle := fmt.Sprintf("revoked_grant_%d", i)
			p := newProxy(t, o)
			rt := o.Mint(t, tc.client)
			data := map[string]interface{}{
				"kind":          "oauth2.refresh_token",
				"token_url":     p.TokenURL(),
				"client_id":     tc.client,
				"client_secret": tc.secret,
				"refresh_token": rt,
			}
			if tc.authStyle != "" {
				data["auth_style"] = tc.authStyle
			}
			writeBinding(t, v.Client, v.Mount, handle, data)
			wantCount := func(refreshes int64, when string) {
				t.Helper()
				if got, want := p.Count(), refreshes*tc.perRefresh; got != want {
					t.Errorf("%s: %d token requests, want %d", when, got, want)
				}
			}
			first := checkMaterial(t, mustReadToken(t, v.Client, v.Mount, handle, 0), handle, "oauth2.refresh_token", defaultAccessTTL)
			wantCount(1, "first read")
			if err := o.Revoke(rt); err != nil {
				t.Fatal(err)
			}

			// A read that must refresh fails with a 400 naming the handle
			// and the provider's error.
			_, err := vaulttest.ReadToken(v.Client, v.Mount, handle, beyondLife)
			if err == nil {
				t.Fatal("read after the grant was revoked succeeded; want a 400")
			}
			if code := responseStatus(err); code != 400 {
				t.Errorf("status %d, want 400 (%v)", code, err)
			}
			for _, want := range []string{handle, "invalid_grant"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			wantCount(2, "after the refused refresh")

			bd, st := readBinding(t, v.Client, v.Mount, handle)
			if st["health"] != "needs_reauth" || st["last_error_code"] != "invalid_grant" {
				t.Errorf("status = %v, want health needs_reauth and last_error_code invalid_grant", st)
			}
			if s, _ := st["last_error"].(string); !strings.Contains(s, "invalid_grant") {
				t.Errorf("last_error = %q, want the provider's error", s)
			}
			if n := jsonInt(t, st["consecutive_failures"], "consecutive_failures"); n != 1 {
				t.Errorf("consecutive_failures = %d, want 1", n)
			}
			if !containsString(bd["inline_fields"], "refresh_token") {
				t.Errorf("inline_fields = %v: the refresh token must be kept", bd["inline_fields"])
			}
			assertNoSecrets(t, bd, tc.secret, rt, first.AccessToken)

			// While the inputs are unchanged, reads fail fast without
			// asking the provider again.
			if _, err := vaulttest.ReadToken(v.Client, v.Mount, handle, beyondLife); responseStatus(err) != 400 {
				t.Errorf("second read: %v, want a 400", err)
			}
			wantCount(2, "needs_reauth must fail fast")
			// The cached token is still valid: a read that does not need a
			// refresh gets it, with a warning.
			sec := mustReadToken(t, v.Client, v.Mount, handle, 0)
			if m := checkMaterial(t, sec, handle, "oauth2.refresh_token", defaultAccessTTL); m.AccessToken != first.AccessToken {
				t.Error("plain read while needs_reauth: want the cached token")
			}
			if !hasWarning(sec, "re-authorization") {
				t.Errorf("plain read while needs_reauth: warnings %q, want one about re-authorization", sec.Warnings)
			}

			// An operator writes a new refresh token: the binding works again.
			if _, err := v.Client.Logical().Write(v.Mount+"/bindings/"+handle, map[string]interface{}{
				"refresh_token": o.Mint(t, tc.client),
			}); err != nil {
				t.Fatal(err)
			}
			m := checkMaterial(t, mustReadToken(t, v.Client, v.Mount, handle, 0), handle, "oauth2.refresh_token", defaultAccessTTL)
			if m.AccessToken == first.AccessToken {
				t.Error("after a new refresh token: the old access token was served")
			}
			wantCount(3, "after a new refresh token")
			_, st = readBinding(t, v.Client, v.Mount, handle)
			if st["health"] != "ok" || jsonInt(t, st["consecutive_failures"], "consecutive_failures") != 0 {
				t.Errorf("status after the new refresh token = %v, want health ok, no failures", st)
			}
		})
	}
}

// TestUpstreamFaults: a failing token endpoint with a valid cached token
// serves it with a warning; with the token expired, the read is a 502.
func TestUpstreamFaults(t *testing.T) {
	serial(t)
	v, o := env(t)
	cfg, err := v.Client.Logical().Read(v.Mount + "/config")
	if err != nil {
		t.Fatal(err)
	}
	oldTimeout := cfg.Data["http_timeout"]
	if _, err := v.Client.Logical().Write(v.Mount+"/config", map[string]interface{}{"http_timeout": 2}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := v.Client.Logical().Write(v.Mount+"/config", map[string]interface{}{"http_timeout": oldTimeout}); err != nil {
			t.Errorf("restoring http_timeout: %v", err)
		}
	})
	bind := func(t *testing.T, handle string) *oauthtest.FaultProxy {
		p := newProxy(t, o)
		writeBinding(t, v.Client, v.Mount, handle, map[string]interface{}{
			"kind":          "oauth2.refresh_token",
			"token_url":     p.TokenURL(),
			"client_id":     oauthtest.ClientRTBasic,
			"client_secret": oauthtest.SecretRTBasic,
			"refresh_token": o.Mint(t, oauthtest.ClientRTBasic),
		})
		return p
	}

	cachedCases := []struct {
		name      string
		fault     oauthtest.Fault
		errorText string
	}{
		{"503", oauthtest.Unavailable(), "temporarily_unavailable"},
		{"hang past http_timeout", oauthtest.Hang(), "did not answer in time"},
	}
	for i, tc := range cachedCases {
		t.Run("cached/"+tc.name, func(t *testing.T) {
			handle := fmt.Sprintf("fault_cached_%d", i)
			p := bind(t, handle)
			first := checkMaterial(t, mustReadToken(t, v.Client, v.Mount, handle, 0), handle, "oauth2.refresh_token", defaultAccessTTL)
			p.SetMode(tc.fault)
			sec, err := vaulttest.ReadToken(v.Client, v.Mount, handle, beyondLife)
			if err != nil {
				t.Fatalf("read with a failing provider and a valid cached token: %v", err)
			}
			m := checkMaterial(t, sec, handle, "oauth2.refresh_token", defaultAccessTTL)
			if m.AccessToken != first.AccessToken {
				t.Error("want the cached token")
			}
			if !hasWarning(sec, "degraded") {
				t.Errorf("warnings %q, want one saying the handle is degraded", sec.Warnings)
			}
			if sec.LeaseDuration > 60 {
				t.Errorf("lease %ds while degraded, want at most 60s", sec.LeaseDuration)
			}
			if got := p.Count(); got != 2 {
				t.Errorf("%d token requests, want 2", got)
			}
			_, st := readBinding(t, v.Client, v.Mount, handle)
			if st["health"] != "degraded" || jsonInt(t, st["consecutive_failures"], "consecutive_failures") != 1 {
				t.Errorf("status = %v, want health degraded, 1 consecutive failure", st)
			}
			if s, _ := st["last_error"].(string); !strings.Contains(s, tc.errorText) {
				t.Errorf("last_error = %q, want it to mention %q", s, tc.errorText)
			}
			// The provider recovers; an operator's refresh brings the
			// binding back to ok.
			p.SetMode(oauthtest.PassThrough())
			rs, err := v.Client.Logical().Write(v.Mount+"/bindings/"+handle+"/refresh", nil)
			if err != nil {
				t.Fatalf("refresh after recovery: %v", err)
			}
			if st, _ := rs.Data["status"].(map[string]interface{}); st["health"] != "ok" {
				t.Errorf("status after recovery = %v, want ok", st)
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		// Two handles with 2 s tokens, one wait for both to expire.
		faults := []struct {
			name  string
			fault oauthtest.Fault
		}{{"503", oauthtest.Unavailable()}, {"hang", oauthtest.Hang()}}
		proxies := make([]*oauthtest.FaultProxy, len(faults))
		var expiry time.Time
		setAccessTTL(t, o, 2*time.Second)
		for i := range faults {
			handle := fmt.Sprintf("fault_expired_%d", i)
			proxies[i] = bind(t, handle)
			m := checkMaterial(t, mustReadToken(t, v.Client, v.Mount, handle, 0), handle, "oauth2.refresh_token", 2*time.Second)
			if m.ExpiresAt.After(expiry) {
				expiry = m.ExpiresAt
			}
		}
		if err := o.SetTTL(defaultAccessTTL, 0); err != nil {
			t.Fatal(err)
		}
		waitPast(expiry, 1500*time.Millisecond)
		for i, f := range faults {
			t.Run(f.name, func(t *testing.T) {
				handle := fmt.Sprintf("fault_expired_%d", i)
				proxies[i].SetMode(f.fault)
				code, body := rawGet(t, v, v.Mount+"/token/"+handle, nil)
				if code != 502 {
					t.Errorf("HTTP status %d, want 502 (body %v)", code, body)
				}
				if _, ok := body["data"]; ok {
					t.Error("a 502 answer carried data")
				}
				errs, _ := json.Marshal(body["errors"])
				if !strings.Contains(string(errs), handle) {
					t.Errorf("errors %s do not name the handle", errs)
				}
				if got := proxies[i].Count(); got != 2 {
					t.Errorf("%d token requests, want 2", got)
				}
				_, st := readBinding(t, v.Client, v.Mount, handle)
				if st["health"] != "degraded" {
					t.Errorf("status = %v, want degraded", st)
				}
			})
		}
	})
}

// TestRestartServesCachedToken: on file storage, a restarted Vault serves
// the token cached before the restart without asking the provider, and a
// rotated refresh token stored before the restart keeps working after it.
func TestRestartServesCachedToken(t *testing.T) {
	serial(t)
	_, o := env(t)
	v := vaulttest.Start(t, vaulttest.Options{Storage: "file"})
	const handle = "restart_cached"
	p := newProxy(t, o)
	writeBinding(t, v.Client, v.Mount, handle, map[string]interface{}{
		"kind":          "oauth2.refresh_token",
		"token_url":     p.TokenURL(),
		"client_id":     oauthtest.ClientRTRotate,
		"client_secret": oauthtest.SecretRTRotate,
		"refresh_token": o.Mint(t, oauthtest.ClientRTRotate),
	})
	first := checkMaterial(t, mustReadToken(t, v.Client, v.Mount, handle, 0), handle, "oauth2.refresh_token", defaultAccessTTL)
	before := o.MustStats(t)
	oldPID, err := v.PluginPID()
	if err != nil {
		t.Fatal(err)
	}

	v.Restart(t)

	sec := mustReadToken(t, v.Client, v.Mount, handle, 0)
	m := checkMaterial(t, sec, handle, "oauth2.refresh_token", defaultAccessTTL)
	if m.AccessToken != first.AccessToken {
		t.Error("after the restart: a different token; want the cached one")
	}
	if newPID, err := v.PluginPID(); err != nil || newPID == oldPID {
		t.Errorf("plugin pid %d before, %d after the restart (%v): want a new plugin process", oldPID, newPID, err)
	}
	if got := p.Count(); got != 1 {
		t.Errorf("%d token requests after the restart, want still 1", got)
	}
	if d := totalRequests(o.MustStats(t)) - totalRequests(before); d != 0 {
		t.Errorf("the server counted %d token requests across the restart, want 0", d)
	}

	// The refresh token rotated by the first refresh was stored: the next
	// refresh uses it, and the server sees no reuse.
	m2 := checkMaterial(t, mustReadToken(t, v.Client, v.Mount, handle, beyondLife), handle, "oauth2.refresh_token", defaultAccessTTL)
	if m2.AccessToken == first.AccessToken {
		t.Error("min_ttl read after the restart: want a refreshed token")
	}
	after := o.MustStats(t)
	if d := after.RefreshTokenReuseDetected - before.RefreshTokenReuseDetected; d != 0 {
		t.Errorf("the server detected %d reused refresh tokens, want 0", d)
	}
	if d := after.TokenSuccess[oauthtest.GrantRefreshToken] - before.TokenSuccess[oauthtest.GrantRefreshToken]; d != 1 {
		t.Errorf("%d successful refreshes after the restart, want 1", d)
	}
}

func hasWarning(sec *api.Secret, substr string) bool {
	for _, w := range sec.Warnings {
		if strings.Contains(w, substr) {
			return true
		}
	}
	return false
}

// assertNoSecrets fails if any of the secret values appears in data.
func assertNoSecrets(t *testing.T, data map[string]interface{}, secrets ...interface{}) {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		str, _ := s.(string)
		if str != "" && strings.Contains(string(b), str) {
			t.Errorf("a secret value (%s) appears in a binding read", fingerprint(str))
		}
	}
}

// basicAuth parses an HTTP Basic Authorization header.
func basicAuth(h string) (user, pass string, ok bool) {
	r := &http.Request{Header: http.Header{"Authorization": {h}}}
	return r.BasicAuth()
}
