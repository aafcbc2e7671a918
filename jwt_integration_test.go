package flowcred

import (
	"crypto"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// Against a real, independently written token endpoint: panva's
// oidc-provider with a JWT-bearer grant (testdata/oauth-server) that
// verifies assertions against the public keys registered for their issuer.
// It starts Node, so it runs only under the integration switch
// (FLOWCRED_INTEGRATION=1, as scripts/test.sh sets it; the package's unit
// tests never start Node), and is skipped when node is not installed. One
// server serves every subtest; each uses its own issuer. The backend runs on
// the real clock, since the server checks iat and exp against its own.

func TestJWTIntegration(t *testing.T) {
	if !vaulttest.Enabled() {
		t.Skipf("starts the Node OAuth2 server: integration tests only (%s=1)", vaulttest.EnvIntegration)
	}
	srv := oauthtest.Start(t)
	keys := jwtKeys(t)

	lastAssertion := func(t *testing.T) map[string]interface{} {
		t.Helper()
		a, err := srv.LastAssertion()
		require.NoError(t, err)
		return a
	}
	register := func(t *testing.T, issuer, kid string, pub crypto.PublicKey, replace bool) {
		t.Helper()
		require.NoError(t, srv.RegisterJWTIssuer(issuer, kid, pub, replace))
	}

	t.Run("google.service_account/access token", func(t *testing.T) {
		const email = "reader@flowcred-it.iam.gserviceaccount.com"
		register(t, email, "sa-kid-1", keys.rsa1, true)
		b := getTestBackend(t, nil)
		keyFile := googleKeyFileJSON(t, email, "sa-kid-1", testSAClientID, pemPKCS8(t, keys.rsa1))
		b.write(t, "secrets/sa_key", map[string]interface{}{"value": keyFile})
		b.write(t, "bindings/google_sales", map[string]interface{}{
			"kind":                    "google.service_account",
			"credentials_json_secret": "sa_key",
			"scopes":                  "api,openid",
			"token_url":               srv.TokenURL,
		})
		resp := b.read(t, "token/google_sales", nil)
		tok := resp.Data["access_token"].(string)
		require.True(t, strings.HasPrefix(tok, "ya29."), "a Google-shaped access token")
		require.Equal(t, "Bearer", resp.Data["token_type"])
		require.InDelta(t, 3600, resp.Data["expires_in"], 60)

		a := lastAssertion(t)
		require.Equal(t, email, a["iss"])
		require.Equal(t, "api openid", a["scope"])
		require.Equal(t, srv.TokenURL, a["aud"])
		require.Equal(t, "sa-kid-1", a["kid"])
		require.Equal(t, "RS256", a["alg"])
		require.NotContains(t, a, "sub")
		require.NotContains(t, a, "form_scope")
	})

	t.Run("google.service_account/subject", func(t *testing.T) {
		const email = "dwd@flowcred-it.iam.gserviceaccount.com"
		register(t, email, "", keys.rsa1, true)
		b := getTestBackend(t, nil)
		b.write(t, "bindings/gmail", map[string]interface{}{
			"kind":         "google.service_account",
			"client_email": email,
			"private_key":  pemPKCS1(keys.rsa1),
			"subject":      "support@example.com",
			"scopes":       "api",
			"token_url":    srv.TokenURL,
		})
		b.read(t, "token/gmail", nil)
		a := lastAssertion(t)
		require.Equal(t, email, a["iss"])
		require.Equal(t, "support@example.com", a["sub"])
		require.NotContains(t, a, "kid", "no private_key_id: no kid header")
	})

	t.Run("google.service_account/ID token", func(t *testing.T) {
		const email = "invoker@flowcred-it.iam.gserviceaccount.com"
		const audience = "https://invoices-abc123-uc.a.run.app"
		register(t, email, "sa-kid-2", keys.rsa2, true)
		b := getTestBackend(t, nil)
		b.write(t, "bindings/invoices", map[string]interface{}{
			"kind":             "google.service_account",
			"credentials_json": googleKeyFileJSON(t, email, "sa-kid-2", testSAClientID, pemPKCS8(t, keys.rsa2)),
			"target_audience":  audience,
			"token_url":        srv.TokenURL,
		})
		resp := b.read(t, "token/invoices", nil)
		idTok := resp.Data["access_token"].(string)
		require.Equal(t, audience, jwtClaim(t, idTok, "aud"))
		require.Equal(t, email, jwtClaim(t, idTok, "sub"))
		exp := time.Unix(int64(jwtClaim(t, idTok, "exp").(float64)), 0)
		require.Equal(t, exp.UTC().Format(time.RFC3339), resp.Data["expires_at"], "the expiry is the ID token's exp")
		require.Equal(t, "Bearer", resp.Data["token_type"])
		a := lastAssertion(t)
		require.Equal(t, audience, a["target_audience"])
		require.NotContains(t, a, "scope")
	})

	for _, kc := range []struct {
		name string
		pem  string
		pub  crypto.PublicKey
		alg  string
	}{
		{"RSA", pemPKCS1(keys.rsa2), &keys.rsa2.PublicKey, "RS256"},
		{"EC P-256", pemSEC1(t, keys.p256), &keys.p256.PublicKey, "ES256"},
		{"EC P-384", pemPKCS8(t, keys.p384), &keys.p384.PublicKey, "ES384"},
	} {
		t.Run("oauth2.jwt_bearer/"+kc.name, func(t *testing.T) {
			issuer := "flowcred-it-" + strings.ReplaceAll(kc.name, " ", "")
			register(t, issuer, "jb-1", kc.pub, true)
			b := getTestBackend(t, nil)
			b.write(t, "bindings/partner", map[string]interface{}{
				"kind":        "oauth2.jwt_bearer",
				"private_key": kc.pem,
				"key_id":      "jb-1",
				"issuer":      issuer,
				"token_url":   srv.TokenURL,
				"scopes":      "api",
			})
			resp := b.read(t, "token/partner", nil)
			require.NotEmpty(t, resp.Data["access_token"])
			a := lastAssertion(t)
			require.Equal(t, kc.alg, a["alg"])
			require.Equal(t, "jb-1", a["kid"])
			require.Equal(t, issuer, a["iss"])
			require.Equal(t, issuer, a["sub"])
			require.Equal(t, srv.TokenURL, a["aud"])
			require.Equal(t, "api", a["form_scope"])
		})
	}

	t.Run("clock skew", func(t *testing.T) {
		const issuer = "flowcred-it-skew"
		register(t, issuer, "", keys.p256, true)
		clock := newFakeClock()
		clock.advance(10 * time.Minute) // the Vault host runs 10 minutes ahead
		b := getTestBackend(t, clock)
		b.write(t, "bindings/skew", map[string]interface{}{
			"kind": "oauth2.jwt_bearer", "private_key": pemSEC1(t, keys.p256), "issuer": issuer, "token_url": srv.TokenURL, "scopes": "api",
		})
		resp, err := b.do(t, logical.ReadOperation, "token/skew", nil)
		require.NoError(t, err)
		require.True(t, resp.IsError())
		msg := resp.Error().Error()
		require.Contains(t, msg, "needs re-authorization")
		require.Contains(t, msg, "Check your iat and exp values")
		require.Contains(t, msg, "check the Vault host's clock")
	})

	t.Run("key rotation", func(t *testing.T) {
		const email = "rotating@flowcred-it.iam.gserviceaccount.com"
		register(t, email, "old", keys.rsa1, true)
		b := getTestBackend(t, nil)
		oldPEM, newPEM := pemPKCS8(t, keys.rsa1), pemPKCS8(t, keys.rsa2)
		b.write(t, "bindings/rot", map[string]interface{}{
			"kind":           "google.service_account",
			"client_email":   email,
			"private_key":    oldPEM,
			"private_key_id": "old",
			"scopes":         "api",
			"token_url":      srv.TokenURL,
		})
		first := b.read(t, "token/rot", nil).Data["access_token"]

		// The provider drops the old key. A refresh signed with it is refused.
		register(t, email, "new", keys.rsa2, true)
		resp, err := b.do(t, logical.UpdateOperation, "bindings/rot/refresh", nil)
		require.NoError(t, err)
		require.True(t, resp.IsError())
		msg := resp.Error().Error()
		require.Contains(t, msg, "Invalid JWT Signature.")
		require.Contains(t, msg, "create a new key")
		requireNoKeyMaterial(t, msg, oldPEM, newPEM)
		st := b.read(t, "bindings/rot", nil).Data["status"].(map[string]interface{})
		require.Equal(t, healthNeedsReauth, st["health"])

		// The operator writes the new key: the next read refreshes with it.
		b.write(t, "bindings/rot", map[string]interface{}{"private_key": newPEM, "private_key_id": "new"})
		second := b.read(t, "token/rot", nil).Data["access_token"]
		require.NotEqual(t, first, second)
		require.Equal(t, "new", lastAssertion(t)["kid"])
		st = b.read(t, "bindings/rot", nil).Data["status"].(map[string]interface{})
		require.Equal(t, healthOK, st["health"])
	})
}
