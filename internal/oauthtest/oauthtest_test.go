package oauthtest_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

const saEmail = "sa@example.iam.gserviceaccount.com"

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	// Fresh transport per test so idle connections don't outlive the server.
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: tr, Timeout: 20 * time.Second})
}

func refresh(ctx context.Context, srv *oauthtest.Server, clientID, secret string, style oauth2.AuthStyle, rt string) (*oauth2.Token, error) {
	cfg := oauth2.Config{
		ClientID:     clientID,
		ClientSecret: secret,
		Endpoint:     oauth2.Endpoint{TokenURL: srv.TokenURL, AuthStyle: style},
	}
	return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
}

func requireRetrieveError(t *testing.T, err error, code, descSubstr string) *oauth2.RetrieveError {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("want *oauth2.RetrieveError %s, got %T %v", code, err, err)
	}
	gotCode, gotDesc := re.ErrorCode, re.ErrorDescription
	if gotCode == "" {
		// x/oauth2/jwt does not parse error bodies; do it here.
		var body struct {
			Error            string `json:"error"`
			ErrorDescription string `json:"error_description"`
		}
		_ = json.Unmarshal(re.Body, &body)
		gotCode, gotDesc = body.Error, body.ErrorDescription
	}
	if gotCode != code || !strings.Contains(gotDesc, descSubstr) {
		t.Fatalf("want error %q containing %q, got %q %q (body %q)", code, descSubstr, gotCode, gotDesc, re.Body)
	}
	return re
}

func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRefreshToken(t *testing.T) {
	srv := oauthtest.Start(t)
	ctx := ctxT(t)

	t.Run("basic", func(t *testing.T) {
		rt, err := srv.MintRefreshToken(oauthtest.ClientRTBasic, "openid offline_access api")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ { // no rotation: the same token keeps working
			tok, err := refresh(ctx, srv, oauthtest.ClientRTBasic, oauthtest.SecretRTBasic, oauth2.AuthStyleInHeader, rt)
			if err != nil {
				t.Fatalf("refresh %d: %v", i, err)
			}
			if tok.AccessToken == "" || tok.RefreshToken != rt || tok.TokenType != "Bearer" {
				t.Fatalf("unexpected token %+v", tok)
			}
			if d := time.Until(tok.Expiry); d < 55*time.Minute || d > 61*time.Minute {
				t.Fatalf("expiry in %v, want ~1h", d)
			}
			idt, _ := tok.Extra("id_token").(string)
			if c := jwtClaims(t, idt); c["sub"] != "alice" || c["aud"] != oauthtest.ClientRTBasic {
				t.Fatalf("id_token claims %v", c)
			}
		}
	})

	t.Run("post", func(t *testing.T) {
		rt, err := srv.MintRefreshToken(oauthtest.ClientRTPost, "offline_access api")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := refresh(ctx, srv, oauthtest.ClientRTPost, oauthtest.SecretRTPost, oauth2.AuthStyleInParams, rt)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Extra("scope") != "offline_access api" {
			t.Fatalf("scope %v", tok.Extra("scope"))
		}
		// Wrong auth style for the client (the harness enforces the registered one).
		_, err = refresh(ctx, srv, oauthtest.ClientRTPost, oauthtest.SecretRTPost, oauth2.AuthStyleInHeader, rt)
		requireRetrieveError(t, err, "invalid_client", "must use client_secret_post")
		_, err = refresh(ctx, srv, oauthtest.ClientRTBasic, oauthtest.SecretRTBasic, oauth2.AuthStyleInParams, rt)
		requireRetrieveError(t, err, "invalid_client", "must use client_secret_basic")
	})

	t.Run("unknown token has detailed description", func(t *testing.T) {
		_, err := refresh(ctx, srv, oauthtest.ClientRTBasic, oauthtest.SecretRTBasic, oauth2.AuthStyleInHeader, "no-such-token")
		requireRetrieveError(t, err, "invalid_grant", "grant request is invalid (refresh token not found)")
	})

	t.Run("ttl", func(t *testing.T) {
		if err := srv.SetTTL(30*time.Second, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.SetTTL(time.Hour, time.Hour) })
		rt, err := srv.MintRefreshToken(oauthtest.ClientRTBasic, "")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := refresh(ctx, srv, oauthtest.ClientRTBasic, oauthtest.SecretRTBasic, oauth2.AuthStyleInHeader, rt)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(tok.Expiry); d < 25*time.Second || d > 31*time.Second {
			t.Fatalf("access token expires in %v, want ~30s", d)
		}
		idt, _ := tok.Extra("id_token").(string)
		c := jwtClaims(t, idt)
		if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 30 {
			t.Fatalf("id token lifetime %v, want 30", exp-iat)
		}
	})

	t.Run("admin revoke", func(t *testing.T) {
		rt, err := srv.MintRefreshToken(oauthtest.ClientRTBasic, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Revoke(rt); err != nil {
			t.Fatal(err)
		}
		_, err = refresh(ctx, srv, oauthtest.ClientRTBasic, oauthtest.SecretRTBasic, oauth2.AuthStyleInHeader, rt)
		requireRetrieveError(t, err, "invalid_grant", "refresh token not found")
	})

	t.Run("rfc7009 revoke", func(t *testing.T) {
		rt, err := srv.MintRefreshToken(oauthtest.ClientRTBasic, "")
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, srv.RevocationURL,
			strings.NewReader(url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(oauthtest.ClientRTBasic, oauthtest.SecretRTBasic)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revocation status %s", resp.Status)
		}
		_, err = refresh(ctx, srv, oauthtest.ClientRTBasic, oauthtest.SecretRTBasic, oauth2.AuthStyleInHeader, rt)
		requireRetrieveError(t, err, "invalid_grant", "")
	})
}

func TestRefreshTokenRotation(t *testing.T) {
	srv := oauthtest.Start(t)
	ctx := ctxT(t)
	rt0, err := srv.MintRefreshToken(oauthtest.ClientRTRotate, "offline_access api")
	if err != nil {
		t.Fatal(err)
	}
	do := func(rt string) (*oauth2.Token, error) {
		return refresh(ctx, srv, oauthtest.ClientRTRotate, oauthtest.SecretRTRotate, oauth2.AuthStyleInHeader, rt)
	}
	tok1, err := do(rt0)
	if err != nil {
		t.Fatal(err)
	}
	if tok1.RefreshToken == "" || tok1.RefreshToken == rt0 {
		t.Fatalf("expected a rotated refresh token, got %q", tok1.RefreshToken)
	}
	tok2, err := do(tok1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if tok2.RefreshToken == tok1.RefreshToken {
		t.Fatal("second refresh did not rotate")
	}

	_, err = do(rt0) // reuse of a consumed token
	requireRetrieveError(t, err, "invalid_grant", "refresh token already used")

	st, err := srv.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.RefreshTokenReuseDetected != 1 || st.Errors["invalid_grant"] != 1 ||
		st.TokenRequests[oauthtest.GrantRefreshToken] != 3 || st.ByClient[oauthtest.ClientRTRotate] != 3 {
		t.Fatalf("stats %+v", st)
	}

	// Reuse detection revoked the whole family, including the newest token.
	_, err = do(tok2.RefreshToken)
	requireRetrieveError(t, err, "invalid_grant", "refresh token not found")

	if err := srv.ResetStats(); err != nil {
		t.Fatal(err)
	}
	if st, _ := srv.Stats(); st.RefreshTokenReuseDetected != 0 || len(st.TokenRequests) != 0 {
		t.Fatalf("stats after reset %+v", st)
	}
}

func TestClientCredentials(t *testing.T) {
	srv := oauthtest.Start(t)
	ctx := ctxT(t)

	t.Run("resource gives JWT", func(t *testing.T) {
		cfg := clientcredentials.Config{
			ClientID:       oauthtest.ClientCC,
			ClientSecret:   oauthtest.SecretCC,
			TokenURL:       srv.TokenURL,
			Scopes:         []string{"api"},
			EndpointParams: url.Values{"resource": {"https://api.example"}},
			AuthStyle:      oauth2.AuthStyleInHeader,
		}
		tok, err := cfg.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := jwtClaims(t, tok.AccessToken)
		if c["aud"] != "https://api.example" || c["client_id"] != oauthtest.ClientCC || c["scope"] != "api" {
			t.Fatalf("claims %v", c)
		}
	})

	t.Run("audience accepted", func(t *testing.T) {
		cfg := clientcredentials.Config{
			ClientID:       oauthtest.ClientCC,
			ClientSecret:   oauthtest.SecretCC,
			TokenURL:       srv.TokenURL,
			EndpointParams: url.Values{"audience": {"https://aud.example"}},
			AuthStyle:      oauth2.AuthStyleInHeader,
		}
		tok, err := cfg.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c := jwtClaims(t, tok.AccessToken); c["aud"] != "https://aud.example" {
			t.Fatalf("claims %v", c)
		}
	})

	t.Run("post opaque", func(t *testing.T) {
		cfg := clientcredentials.Config{
			ClientID:     oauthtest.ClientCCPost,
			ClientSecret: oauthtest.SecretCCPost,
			TokenURL:     srv.TokenURL,
			Scopes:       []string{"read"},
			AuthStyle:    oauth2.AuthStyleInParams,
		}
		tok, err := cfg.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(tok.AccessToken, ".") == 2 || tok.Extra("scope") != "read" {
			t.Fatalf("token %+v scope %v", tok, tok.Extra("scope"))
		}
	})

	t.Run("bad secret", func(t *testing.T) {
		cfg := clientcredentials.Config{ClientID: oauthtest.ClientCC, ClientSecret: "wrong", TokenURL: srv.TokenURL, AuthStyle: oauth2.AuthStyleInHeader}
		_, err := cfg.Token(ctx)
		requireRetrieveError(t, err, "invalid_client", "invalid secret provided")
	})

	st, err := srv.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.TokenRequests[oauthtest.GrantClientCredentials] != 4 || st.TokenSuccess[oauthtest.GrantClientCredentials] != 3 ||
		st.Errors["invalid_client"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func rsaPEM(t *testing.T, k *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestJWTBearerRSA(t *testing.T) {
	srv := oauthtest.Start(t)
	ctx := ctxT(t)
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	if err := srv.RegisterJWTIssuer(saEmail, "k1", &k1.PublicKey, false); err != nil {
		t.Fatal(err)
	}

	conf := func(k *rsa.PrivateKey, kid string) *jwt.Config {
		return &jwt.Config{
			Email:        saEmail,
			PrivateKey:   rsaPEM(t, k),
			PrivateKeyID: kid,
			Scopes:       []string{"https://www.googleapis.com/auth/cloud-platform", "email"},
			TokenURL:     srv.TokenURL,
			Subject:      "user@example.com",
		}
	}

	t.Run("access token", func(t *testing.T) {
		tok, err := conf(k1, "k1").TokenSource(ctx).Token()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok.AccessToken, "ya29.") || tok.TokenType != "Bearer" ||
			tok.Extra("scope") != "https://www.googleapis.com/auth/cloud-platform email" {
			t.Fatalf("token %+v", tok)
		}
		if d := time.Until(tok.Expiry); d < 55*time.Minute {
			t.Fatalf("expiry in %v", d)
		}
		la, err := srv.LastAssertion()
		if err != nil {
			t.Fatal(err)
		}
		if la["iss"] != saEmail || la["sub"] != "user@example.com" || la["aud"] != srv.TokenURL ||
			la["kid"] != "k1" || la["scope"] != "https://www.googleapis.com/auth/cloud-platform email" {
			t.Fatalf("last assertion %v", la)
		}
		st, _ := srv.Stats()
		if st.TokenSuccess[oauthtest.GrantJWTBearer] != 1 || st.ByClient[oauthtest.ClientJWTBearer] != 1 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("id token", func(t *testing.T) {
		c := conf(k1, "k1")
		c.Scopes = nil
		c.Subject = ""
		c.PrivateClaims = map[string]any{"target_audience": "https://svc.example"}
		c.UseIDToken = true
		tok, err := c.TokenSource(ctx).Token()
		if err != nil {
			t.Fatal(err)
		}
		claims := jwtClaims(t, tok.AccessToken)
		if claims["aud"] != "https://svc.example" || claims["email"] != saEmail || claims["iss"] != srv.Issuer {
			t.Fatalf("id token claims %v", claims)
		}
		verifyRS256WithJWKS(t, srv, tok.AccessToken)
		if la, _ := srv.LastAssertion(); la["target_audience"] != "https://svc.example" {
			t.Fatalf("last assertion %v", la)
		}
		// Google's shape: id_token only.
		if tok.Extra("access_token") != nil && tok.Extra("access_token") != "" {
			t.Fatalf("unexpected access_token in id-token response")
		}
	})

	t.Run("bad signature", func(t *testing.T) {
		_, err := conf(k2, "k1").TokenSource(ctx).Token()
		requireRetrieveError(t, err, "invalid_grant", oauthtest.ErrDescInvalidSignature)
	})

	t.Run("unknown issuer", func(t *testing.T) {
		c := conf(k1, "k1")
		c.Email = "nobody@example.iam.gserviceaccount.com"
		_, err := c.TokenSource(ctx).Token()
		requireRetrieveError(t, err, "invalid_grant", oauthtest.ErrDescAccountNotFound)
	})

	t.Run("too long lived", func(t *testing.T) {
		c := conf(k1, "k1")
		c.Expires = 2 * time.Hour
		_, err := c.TokenSource(ctx).Token()
		requireRetrieveError(t, err, "invalid_grant", oauthtest.ErrDescTimeframe)
	})

	t.Run("wrong audience", func(t *testing.T) {
		c := conf(k1, "k1")
		c.Audience = "https://oauth2.googleapis.com/token"
		_, err := c.TokenSource(ctx).Token()
		requireRetrieveError(t, err, "invalid_grant", "Failed audience check")
	})

	t.Run("key rotation", func(t *testing.T) {
		if err := srv.RegisterJWTIssuer(saEmail, "k2", k2, true); err != nil {
			t.Fatal(err)
		}
		if _, err := conf(k2, "k2").TokenSource(ctx).Token(); err != nil {
			t.Fatalf("new key: %v", err)
		}
		_, err := conf(k1, "k1").TokenSource(ctx).Token()
		requireRetrieveError(t, err, "invalid_grant", oauthtest.ErrDescInvalidSignature)
		_, err = conf(k1, "").TokenSource(ctx).Token() // no kid: every key tried
		requireRetrieveError(t, err, "invalid_grant", oauthtest.ErrDescInvalidSignature)
	})
}

func verifyRS256WithJWKS(t *testing.T, srv *oauthtest.Server, token string) {
	t.Helper()
	resp, err := http.Get(srv.JWKSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kid, Kty, N, E string } `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var hdr struct{ Alg, Kid string }
	_ = json.Unmarshal(hb, &hdr)
	if hdr.Alg != "RS256" {
		t.Fatalf("alg %q", hdr.Alg)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	for _, k := range set.Keys {
		if k.Kid != hdr.Kid || k.Kty != "RSA" {
			continue
		}
		n, _ := base64.RawURLEncoding.DecodeString(k.N)
		e, _ := base64.RawURLEncoding.DecodeString(k.E)
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			t.Fatalf("id token signature: %v", err)
		}
		return
	}
	t.Fatalf("kid %q not in JWKS", hdr.Kid)
}

// signES256 builds a compact JWS by hand (x/oauth2/jws only does RS256).
func signES256(t *testing.T, k *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	hdr := map[string]string{"alg": "ES256", "typ": "JWT"}
	if kid != "" {
		hdr["kid"] = kid
	}
	hb, _ := json.Marshal(hdr)
	cb, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func postJWTBearer(t *testing.T, srv *oauthtest.Server, assertion string, extra url.Values) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {oauthtest.GrantJWTBearer}, "assertion": {assertion}}
	for k, v := range extra {
		form[k] = v
	}
	resp, err := http.PostForm(srv.TokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("decoding %q: %v", b, err)
	}
	return resp.StatusCode, out
}

func TestJWTBearerEC(t *testing.T) {
	srv := oauthtest.Start(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	const iss = "ec-sa@example.iam.gserviceaccount.com"
	if err := srv.RegisterJWTIssuer(iss, "ec1", &k.PublicKey, false); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	claims := map[string]any{"iss": iss, "aud": srv.TokenURL, "iat": now, "exp": now + 600}

	// Scope from the form parameter when the assertion has none.
	status, body := postJWTBearer(t, srv, signES256(t, k, "ec1", claims), url.Values{"scope": {"read write"}})
	if status != 200 || body["scope"] != "read write" || body["token_type"] != "Bearer" || body["expires_in"] != 3600.0 {
		t.Fatalf("%d %v", status, body)
	}
	if la, _ := srv.LastAssertion(); la["alg"] != "ES256" || la["kid"] != "ec1" {
		t.Fatalf("last assertion %v", la)
	}

	// Issuer URL accepted as audience, too.
	claims["aud"] = srv.Issuer
	claims["scope"] = "api"
	if status, body := postJWTBearer(t, srv, signES256(t, k, "", claims), nil); status != 200 || body["scope"] != "api" {
		t.Fatalf("%d %v", status, body)
	}

	status, body = postJWTBearer(t, srv, signES256(t, other, "ec1", claims), nil)
	if status != 400 || body["error"] != "invalid_grant" || body["error_description"] != oauthtest.ErrDescInvalidSignature {
		t.Fatalf("%d %v", status, body)
	}

	claims["iat"] = now + 300 // in the future
	claims["exp"] = now + 900
	status, body = postJWTBearer(t, srv, signES256(t, k, "ec1", claims), nil)
	if status != 400 || body["error_description"] != oauthtest.ErrDescTimeframe {
		t.Fatalf("%d %v", status, body)
	}

	claims["iat"] = now - 7200 // expired
	claims["exp"] = now - 3700
	status, body = postJWTBearer(t, srv, signES256(t, k, "ec1", claims), nil)
	if status != 400 || body["error_description"] != oauthtest.ErrDescTimeframe {
		t.Fatalf("%d %v", status, body)
	}

	claims["iat"], claims["exp"] = now, now+600
	delete(claims, "scope")
	status, body = postJWTBearer(t, srv, signES256(t, k, "ec1", claims), nil)
	if status != 400 || body["error"] != "invalid_scope" {
		t.Fatalf("%d %v", status, body)
	}

	if err := srv.RemoveJWTIssuer(iss, ""); err != nil {
		t.Fatal(err)
	}
	status, body = postJWTBearer(t, srv, signES256(t, k, "ec1", claims), url.Values{"scope": {"api"}})
	if status != 400 || body["error_description"] != oauthtest.ErrDescAccountNotFound {
		t.Fatalf("%d %v", status, body)
	}
}

func TestStartTwice(t *testing.T) {
	// Two servers side by side get distinct ports and independent state.
	a := oauthtest.Start(t)
	b := oauthtest.Start(t)
	if a.Issuer == b.Issuer {
		t.Fatal("same issuer")
	}
	rt, err := a.MintRefreshToken(oauthtest.ClientRTBasic, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = refresh(ctxT(t), b, oauthtest.ClientRTBasic, oauthtest.SecretRTBasic, oauth2.AuthStyleInHeader, rt)
	requireRetrieveError(t, err, "invalid_grant", "refresh token not found")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Stats(); err == nil {
		t.Fatal("server still answering after Close")
	}
}
