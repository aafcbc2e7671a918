package flowcred

// Tests of grant_jwt_bearer.go: oauth2.jwt_bearer against a token endpoint
// that verifies its assertions (newJWTEndpoint), and the key rotation both
// JWT kinds share.

import (
	"crypto"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

func TestJWT_Bearer_KeyTypes(t *testing.T) {
	keys := jwtKeys(t)
	cases := []struct {
		name string
		pem  string
		pub  crypto.PublicKey
		alg  string
	}{
		{"RSA PKCS#1", pemPKCS1(keys.rsa1), &keys.rsa1.PublicKey, "RS256"},
		{"RSA PKCS#8", pemPKCS8(t, keys.rsa2), &keys.rsa2.PublicKey, "RS256"},
		{"RSA PKCS#8 with escaped newlines", strings.ReplaceAll(pemPKCS8(t, keys.rsa1), "\n", `\n`), &keys.rsa1.PublicKey, "RS256"},
		{"RSA PKCS#8 labelled RSA PRIVATE KEY", strings.ReplaceAll(pemPKCS8(t, keys.rsa1), "PRIVATE KEY", "RSA PRIVATE KEY"), &keys.rsa1.PublicKey, "RS256"},
		{"EC P-256 SEC1", pemSEC1(t, keys.p256), &keys.p256.PublicKey, "ES256"},
		{"EC P-256 PKCS#8", pemPKCS8(t, keys.p256), &keys.p256.PublicKey, "ES256"},
		{"EC P-384 SEC1", pemSEC1(t, keys.p384), &keys.p384.PublicKey, "ES384"},
		{"EC P-384 PKCS#8", pemPKCS8(t, keys.p384), &keys.p384.PublicKey, "ES384"},
		{"EC P-521 SEC1", pemSEC1(t, keys.p521), &keys.p521.PublicKey, "ES512"},
		{"EC P-521 PKCS#8", pemPKCS8(t, keys.p521), &keys.p521.PublicKey, "ES512"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock, logs, b, _, ep := jwtTestSetup(t)
			ep.Trust(map[string]crypto.PublicKey{"svc-key-1": tc.pub})
			b.write(t, "bindings/partner_api", map[string]interface{}{
				"kind":        "oauth2.jwt_bearer",
				"private_key": tc.pem,
				"key_id":      "svc-key-1",
				"issuer":      "flowcred-client",
				"token_url":   ep.TokenURL(),
				"scopes":      "orders:read,orders:write",
			})
			resp := b.read(t, "token/partner_api", nil)
			require.Equal(t, "ya29.test-1", resp.Data["access_token"])

			header, claims, form := ep.LastAssertion()
			require.Equal(t, tc.alg, header["alg"])
			require.Equal(t, "svc-key-1", header["kid"])
			require.Equal(t, "JWT", header["typ"])
			require.Equal(t, "flowcred-client", claims["iss"])
			require.Equal(t, "flowcred-client", claims["sub"], "subject defaults to the issuer")
			require.Equal(t, ep.TokenURL(), claims["aud"], "audience defaults to token_url")
			iat, exp := claimInt(t, claims, "iat"), claimInt(t, claims, "exp")
			require.Equal(t, clock.now().Add(-10*time.Second).Unix(), iat)
			require.Equal(t, int64(180), exp-iat)
			require.Regexp(t, `^[0-9a-f]{32}$`, claims["jti"])
			require.NotContains(t, claims, "scope")
			require.Equal(t, "orders:read orders:write", form.Get("scope"))
			requireNoKeyMaterial(t, logs.String(), tc.pem)
		})
	}
}

func TestJWT_Bearer_SubjectAudienceAndUniqueJTI(t *testing.T) {
	_, _, b, keys, ep := jwtTestSetup(t)
	ep.Trust(map[string]crypto.PublicKey{"": &keys.p256.PublicKey})
	b.write(t, "bindings/sf", map[string]interface{}{
		"kind":        "oauth2.jwt_bearer",
		"private_key": pemSEC1(t, keys.p256),
		"issuer":      "3MVG9-consumer-key",
		"subject":     "integration@example.com",
		"audience":    "https://login.example.com",
		"token_url":   ep.TokenURL(),
	})
	b.read(t, "token/sf", nil)
	header, claims, form := ep.LastAssertion()
	require.NotContains(t, header, "kid", "no key_id: no kid header")
	require.Equal(t, "integration@example.com", claims["sub"])
	require.Equal(t, "https://login.example.com", claims["aud"])
	require.NotContains(t, form, "scope", "no scopes: no scope parameter")
	jti1 := claims["jti"]

	b.write(t, "bindings/sf/refresh", nil)
	_, claims, _ = ep.LastAssertion()
	require.NotEqual(t, jti1, claims["jti"], "each assertion has its own jti")
}

func TestJWT_KeyRotation(t *testing.T) {
	for _, kind := range []string{"google.service_account", "oauth2.jwt_bearer"} {
		t.Run(kind, func(t *testing.T) {
			_, logs, b, keys, ep := jwtTestSetup(t)
			ep.Trust(map[string]crypto.PublicKey{"k1": &keys.rsa1.PublicKey})

			oldPEM, newPEM := pemPKCS8(t, keys.rsa1), pemPKCS8(t, keys.rsa2)
			data := map[string]interface{}{"kind": kind, "private_key": oldPEM, "token_url": ep.TokenURL(), "scopes": "api"}
			kidField := "key_id"
			if kind == "google.service_account" {
				data["client_email"] = testSAEmail
				kidField = "private_key_id"
			} else {
				data["issuer"] = "flowcred-client"
			}
			data[kidField] = "k1"
			b.write(t, "bindings/h", data)
			resp := b.read(t, "token/h", nil)
			require.Equal(t, "ya29.test-1", resp.Data["access_token"])

			// The provider rotates: only the new key is trusted now. A refresh
			// with the old key is refused with Google's text.
			ep.Trust(map[string]crypto.PublicKey{"k2": &keys.rsa2.PublicKey})
			r, err := b.do(t, logical.UpdateOperation, "bindings/h/refresh", nil)
			require.NoError(t, err)
			require.True(t, r.IsError())
			msg := r.Error().Error()
			require.Contains(t, msg, "needs re-authorization")
			require.Contains(t, msg, "Invalid JWT Signature.")
			requireNoKeyMaterial(t, msg, oldPEM, newPEM)
			st := b.read(t, "bindings/h", nil).Data["status"].(map[string]interface{})
			require.Equal(t, healthNeedsReauth, st["health"])

			// The operator updates the binding's key: the next read uses it.
			b.write(t, "bindings/h", map[string]interface{}{"private_key": newPEM, kidField: "k2"})
			resp = b.read(t, "token/h", nil)
			require.Equal(t, "ya29.test-2", resp.Data["access_token"])
			header, _, _ := ep.LastAssertion()
			require.Equal(t, "k2", header["kid"], "signed with the new key (the endpoint verified it with the new public key)")
			st = b.read(t, "bindings/h", nil).Data["status"].(map[string]interface{})
			require.Equal(t, healthOK, st["health"])
			requireNoKeyMaterial(t, logs.String(), oldPEM, newPEM)
		})
	}
}

func TestJWT_Bearer_ErrorHints(t *testing.T) {
	_, _, b, keys, ep := jwtTestSetup(t)
	ep.Trust(map[string]crypto.PublicKey{"other": &keys.rsa2.PublicKey})
	b.write(t, "bindings/jb", map[string]interface{}{
		"kind": "oauth2.jwt_bearer", "private_key": pemSEC1(t, keys.p256), "key_id": "k-ec",
		"issuer": "flowcred-client", "token_url": ep.TokenURL(), "scopes": "a",
	})
	resp, err := b.do(t, logical.ReadOperation, "token/jb", nil)
	require.NoError(t, err)
	msg := resp.Error().Error()
	require.Contains(t, msg, "needs re-authorization")
	require.Contains(t, msg, `does not trust this key for issuer "flowcred-client" (key_id "k-ec")`)

	// invalid_scope stays a configuration error for generic providers.
	ep.Trust(map[string]crypto.PublicKey{"k-ec": &keys.p256.PublicKey})
	ep.Answer(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusBadRequest, `{"error":"invalid_scope","error_description":"scope a is unknown"}`)
	})
	b.write(t, "bindings/jb", map[string]interface{}{"scopes": "a,b"})
	resp, err = b.do(t, logical.ReadOperation, "token/jb", nil)
	require.NoError(t, err)
	msg = resp.Error().Error()
	require.Contains(t, msg, "token request refused")
	require.Contains(t, msg, "the provider refused the scopes a,b")
}

func TestJWT_TransientAnswers(t *testing.T) {
	big := `{"access_token":"` + strings.Repeat("x", maxResponseBytes) + `"}`
	cases := []struct {
		name   string
		status int
		ctype  string
		body   string
		want   string
	}{
		{"503", http.StatusServiceUnavailable, "application/json", `{"error":"backend_error"}`, "backend_error"},
		{"429", http.StatusTooManyRequests, "text/plain", "slow down", "HTTP 429"},
		{"HTML 200", http.StatusOK, "text/html", "<html>maintenance</html>", "not a token response"},
		{"200 without a token", http.StatusOK, "application/json", `{"token_type":"Bearer"}`, "without an access_token"},
		{"oversized body", http.StatusOK, "application/json", big, "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, b, keys, ep := jwtTestSetup(t)
			ep.Trust(map[string]crypto.PublicKey{"": &keys.p256.PublicKey})
			tc := tc
			ep.Answer(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			b.write(t, "bindings/jb", map[string]interface{}{
				"kind": "oauth2.jwt_bearer", "private_key": pemSEC1(t, keys.p256), "issuer": "i", "token_url": ep.TokenURL(),
			})
			_, err := b.do(t, logical.ReadOperation, "token/jb", nil)
			require.Error(t, err)
			var coded logical.HTTPCodedError
			require.True(t, errors.As(err, &coded))
			require.Equal(t, 502, coded.Code())
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "xxxxxxxx")
			st := b.read(t, "bindings/jb", nil).Data["status"].(map[string]interface{})
			require.Equal(t, healthDegraded, st["health"])
		})
	}
}

func TestJWT_ExpiresInStringAndErrorIn200(t *testing.T) {
	_, _, b, keys, ep := jwtTestSetup(t)
	ep.Trust(map[string]crypto.PublicKey{"": &keys.p256.PublicKey})
	ep.Answer(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, `{"access_token":"opaque-1","expires_in":"1800","token_type":"bearer"}`)
	})
	b.write(t, "bindings/jb", map[string]interface{}{
		"kind": "oauth2.jwt_bearer", "private_key": pemSEC1(t, keys.p256), "issuer": "i", "token_url": ep.TokenURL(),
	})
	resp := b.read(t, "token/jb", nil)
	require.EqualValues(t, 1800, resp.Data["expires_in"])
	require.Equal(t, "Bearer", resp.Data["token_type"])

	// Some providers answer errors with 200.
	ep.Answer(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, `{"error":"invalid_grant","error_description":"user disabled"}`)
	})
	r, err := b.do(t, logical.UpdateOperation, "bindings/jb/refresh", nil)
	require.NoError(t, err)
	require.Contains(t, r.Error().Error(), "invalid_grant: user disabled")
}

// The upstream request carries the request context: the mount's
// http_timeout ends a request to a provider that never answers.
func TestJWT_RequestContextBounded(t *testing.T) {
	b := newJWTTestBackend(t, nil, &syncBuffer{})
	keys := jwtKeys(t)
	hang := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{})
	hang.SetMode(oauthtest.Hang())
	b.write(t, "config", map[string]interface{}{"http_timeout": "1s"})
	b.write(t, "bindings/jb", map[string]interface{}{
		"kind": "oauth2.jwt_bearer", "private_key": pemSEC1(t, keys.p256), "issuer": "i", "token_url": hang.TokenURL(),
	})
	_, err := b.do(t, logical.ReadOperation, "token/jb", nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "did not answer in time")
}

// BenchmarkJWTAssertion measures parsing a PEM key and signing one
// assertion: the local cost of each refresh (once per token lifetime).
func BenchmarkJWTAssertion(b *testing.B) {
	keys := jwtKeys(b)
	for _, bc := range []struct {
		name string
		pem  string
	}{
		{"RS256-2048", pemPKCS8(b, keys.rsa1)},
		{"ES256", pemSEC1(b, keys.p256)},
		{"ES384", pemSEC1(b, keys.p384)},
	} {
		b.Run("parse/"+bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := parsePrivateKey(bc.pem); err != nil {
					b.Fatal(err)
				}
			}
		})
		key, err := parsePrivateKey(bc.pem)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("sign/"+bc.name, func(b *testing.B) {
			now := time.Now()
			a := &assertion{key: key, kid: "k", claims: map[string]interface{}{"iss": "i", "aud": "a"}, lifetime: time.Minute, jti: true}
			for i := 0; i < b.N; i++ {
				if _, err := a.sign(now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
