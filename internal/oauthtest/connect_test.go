package oauthtest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

func connectConfig(srv *oauthtest.Server, redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     oauthtest.ClientConnect,
		ClientSecret: oauthtest.SecretConnect,
		Endpoint:     oauth2.Endpoint{AuthURL: srv.AuthorizationURL, TokenURL: srv.TokenURL, AuthStyle: oauth2.AuthStyleInHeader},
		RedirectURL:  redirect,
		Scopes:       []string{"openid", "api"},
	}
}

// redirectQuery parses the redirect URL Approve or Deny returned and
// checks that it is for wantPrefix.
func redirectQuery(t *testing.T, redirect, wantPrefix string) url.Values {
	t.Helper()
	if !strings.HasPrefix(redirect, wantPrefix+"?") {
		t.Fatalf("redirected to %q, want %s?...", redirect, wantPrefix)
	}
	u, err := url.Parse(redirect)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// TestAuthorizationCode: the code grant with PKCE through the development
// login and consent pages, for a loopback redirect URI on any port.
func TestAuthorizationCode(t *testing.T) {
	srv := oauthtest.Start(t)
	ctx := ctxT(t)

	for _, redirect := range []string{"http://127.0.0.1:49152/callback", "http://127.0.0.1:8200/v1/flowcred/callback"} {
		t.Run(redirect, func(t *testing.T) {
			conf := connectConfig(srv, redirect)
			verifier := oauth2.GenerateVerifier()
			got, err := oauthtest.Approve(conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)))
			if err != nil {
				t.Fatal(err)
			}
			q := redirectQuery(t, got, redirect)
			if q.Get("state") != "st-1" || q.Get("code") == "" {
				t.Fatalf("redirect query has state %q and a code: %v; want state st-1", q.Get("state"), q.Get("code") != "")
			}
			if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption("not-"+verifier)); err == nil {
				t.Fatal("the code was exchanged with the wrong PKCE verifier")
			}
			// The failed attempt consumed the code (single use, RFC 6749 4.1.2).
			got, err = oauthtest.Approve(conf.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier)))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := conf.Exchange(ctx, redirectQuery(t, got, redirect).Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken == "" || tok.RefreshToken == "" {
				t.Fatalf("access token %v, refresh token %v: want both", tok.AccessToken != "", tok.RefreshToken != "")
			}
			if tok.Extra("scope") != "openid api" {
				t.Errorf("scope %v, want \"openid api\"", tok.Extra("scope"))
			}
			if _, err := refresh(ctx, srv, oauthtest.ClientConnect, oauthtest.SecretConnect, oauth2.AuthStyleInHeader, tok.RefreshToken); err != nil {
				t.Fatalf("refreshing the connected refresh token: %v", err)
			}
		})
	}

	t.Run("pkce required", func(t *testing.T) {
		conf := connectConfig(srv, "http://127.0.0.1:49152/callback")
		got, err := oauthtest.Approve(conf.AuthCodeURL("st-3"))
		if err != nil {
			t.Fatal(err)
		}
		if q := redirectQuery(t, got, conf.RedirectURL); q.Get("error") != "invalid_request" || q.Get("code") != "" {
			t.Fatalf("an authorization request without PKCE: error %q, a code %v; want invalid_request", q.Get("error"), q.Get("code") != "")
		}
	})

	t.Run("unregistered redirect path", func(t *testing.T) {
		conf := connectConfig(srv, "http://127.0.0.1:49152/elsewhere")
		if got, err := oauthtest.Approve(conf.AuthCodeURL("st-4", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); err == nil {
			t.Fatalf("sent to %q, want an error page", got)
		}
	})

	t.Run("deny", func(t *testing.T) {
		conf := connectConfig(srv, "http://127.0.0.1:49152/callback")
		got, err := oauthtest.Deny(conf.AuthCodeURL("st-5", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		if q := redirectQuery(t, got, conf.RedirectURL); q.Get("error") != "access_denied" || q.Get("state") != "st-5" || q.Get("code") != "" {
			t.Fatalf("denied: error %q state %q, a code %v; want access_denied, st-5, none", q.Get("error"), q.Get("state"), q.Get("code") != "")
		}
	})

	t.Run("revoke account", func(t *testing.T) {
		conf := connectConfig(srv, "http://127.0.0.1:49152/callback")
		verifier := oauth2.GenerateVerifier()
		got, err := oauthtest.NewBrowser("bob").Approve(conf.AuthCodeURL("st-6", oauth2.S256ChallengeOption(verifier)))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := conf.Exchange(ctx, redirectQuery(t, got, conf.RedirectURL).Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		issued, err := srv.Issued(oauthtest.ClientConnect)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]bool{}
		for _, it := range issued {
			if it.Value == tok.RefreshToken || it.Value == tok.AccessToken {
				kinds[it.Kind] = it.AccountID == "bob" && it.ClientID == oauthtest.ClientConnect
			}
		}
		if !kinds["RefreshToken"] || !kinds["AccessToken"] {
			t.Errorf("Issued lists the refresh and access token for bob: %v", kinds)
		}
		n, err := srv.RevokeAccount("bob", "")
		if err != nil || n != 1 {
			t.Fatalf("RevokeAccount: %d grants, %v; want 1", n, err)
		}
		_, err = refresh(ctx, srv, oauthtest.ClientConnect, oauthtest.SecretConnect, oauth2.AuthStyleInHeader, tok.RefreshToken)
		requireRetrieveError(t, err, "invalid_grant", "")
	})
}

// deviceAuth starts a device grant for the connect client.
func deviceAuth(t *testing.T, srv *oauthtest.Server) (deviceCode, userCode string, interval int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.DeviceAuthorizationURL, strings.NewReader(url.Values{"scope": {"openid api"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(oauthtest.ClientConnect, oauthtest.SecretConnect)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		DeviceCode      string `json:"device_code"`
		UserCode        string `json:"user_code"`
		VerificationURI string `json:"verification_uri"`
		Interval        int    `json:"interval"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("device authorization: %s (%v)", resp.Status, err)
	}
	if out.VerificationURI != srv.DeviceURL || out.DeviceCode == "" || out.UserCode == "" {
		t.Fatalf("device authorization: verification_uri %q (want %q), codes %v %v", out.VerificationURI, srv.DeviceURL, out.DeviceCode != "", out.UserCode != "")
	}
	return out.DeviceCode, out.UserCode, out.Interval
}

// pollDevice asks the token endpoint once; it returns the OAuth error code
// ("" on success) and the refresh token.
func pollDevice(t *testing.T, ctx context.Context, srv *oauthtest.Server, deviceCode string) (string, string) {
	t.Helper()
	form := url.Values{"grant_type": {oauthtest.GrantDeviceCode}, "device_code": {deviceCode}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.TokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(oauthtest.ClientConnect, oauthtest.SecretConnect)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Error        string `json:"error"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Error, out.RefreshToken
}

// TestDeviceGrant: the device page approved and denied, the interval
// announced, and slow_down for polls closer than the minimum gap.
func TestDeviceGrant(t *testing.T) {
	srv := oauthtest.Start(t)
	ctx := ctxT(t)

	t.Run("approve", func(t *testing.T) {
		dc, uc, interval := deviceAuth(t, srv)
		if interval != 5 {
			t.Errorf("interval %d, want the default 5", interval)
		}
		if code, _ := pollDevice(t, ctx, srv, dc); code != "authorization_pending" {
			t.Fatalf("before approval: %q, want authorization_pending", code)
		}
		if err := srv.ApproveDevice(uc); err != nil {
			t.Fatal(err)
		}
		if err := srv.ApproveDevice(uc); err == nil {
			t.Fatal("a used user code was accepted again")
		}
		time.Sleep(5 * time.Second) // the interval since the first poll
		code, rt := pollDevice(t, ctx, srv, dc)
		if code != "" || rt == "" {
			t.Fatalf("after approval: error %q, refresh token %v", code, rt != "")
		}
		if _, err := refresh(ctx, srv, oauthtest.ClientConnect, oauthtest.SecretConnect, oauth2.AuthStyleInHeader, rt); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("deny and slow_down", func(t *testing.T) {
		if err := srv.SetDeviceInterval(time.Second, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.SetDeviceInterval(5*time.Second, 0) })
		before := srv.MustStats(t)
		dc, uc, interval := deviceAuth(t, srv)
		if interval != 1 {
			t.Errorf("interval %d, want 1", interval)
		}
		if code, _ := pollDevice(t, ctx, srv, dc); code != "authorization_pending" {
			t.Fatalf("first poll: %q, want authorization_pending", code)
		}
		if code, _ := pollDevice(t, ctx, srv, dc); code != "slow_down" {
			t.Fatalf("an immediate second poll: %q, want slow_down", code)
		}
		if err := srv.DenyDevice(uc); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2100 * time.Millisecond)
		if code, rt := pollDevice(t, ctx, srv, dc); code != "access_denied" || rt != "" {
			t.Fatalf("after the user aborted: %q (a token %v), want access_denied", code, rt != "")
		}
		after := srv.MustStats(t)
		if d := after.Errors["slow_down"] - before.Errors["slow_down"]; d != 1 {
			t.Errorf("%d slow_down answers counted, want 1", d)
		}
		if d := after.DeviceAuthorizations - before.DeviceAuthorizations; d != 1 {
			t.Errorf("%d device authorizations counted, want 1", d)
		}
	})

	t.Run("unknown user code", func(t *testing.T) {
		err := srv.ApproveDevice("BCDF-GHJK")
		if err == nil || !strings.Contains(err.Error(), "does not know user code") {
			t.Fatalf("ApproveDevice of an unknown code: %v", err)
		}
	})

	t.Run("loopback only", func(t *testing.T) {
		if _, err := oauthtest.Approve("https://accounts.example.com/auth"); err == nil {
			t.Fatal("the browser went off loopback")
		}
	})
}
