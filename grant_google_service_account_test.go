package flowcred

// Tests of grant_google_service_account.go: google.service_account against
// a token endpoint that verifies its assertions (newJWTEndpoint).

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestJWT_GoogleServiceAccount_AccessToken(t *testing.T) {
	clock, logs, b, keys, ep := jwtTestSetup(t)
	ep.Trust(map[string]crypto.PublicKey{"kid-1": &keys.rsa1.PublicKey})

	keyPEM := pemPKCS8(t, keys.rsa1)
	keyFile := googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, keyPEM)
	b.write(t, "secrets/sa_key", map[string]interface{}{"value": keyFile})
	b.write(t, "bindings/google_sales", map[string]interface{}{
		"kind":                    "google.service_account",
		"credentials_json_secret": "sa_key",
		"scopes":                  "https://www.googleapis.com/auth/drive.readonly,https://www.googleapis.com/auth/spreadsheets",
		"token_url":               ep.TokenURL(),
		"extra_headers":           map[string]interface{}{"x-goog-user-project": "flowcred-test"},
	})

	resp := b.read(t, "token/google_sales", nil)
	require.Equal(t, "google.service_account", resp.Data["kind"])
	require.Equal(t, "ya29.test-1", resp.Data["access_token"])
	require.Equal(t, "Bearer", resp.Data["token_type"])
	require.Equal(t, clock.now().Add(3599*time.Second).UTC().Format(time.RFC3339), resp.Data["expires_at"])
	require.EqualValues(t, 3599, resp.Data["expires_in"])
	require.Equal(t, map[string]string{"Authorization": "Bearer ya29.test-1", "x-goog-user-project": "flowcred-test"}, resp.Data["headers"])
	require.False(t, resp.Secret.Renewable)

	// One request, at the binding's token_url: the key file's token_uri is ignored.
	require.Equal(t, int64(1), ep.Count())
	header, claims, form := ep.LastAssertion()
	require.Equal(t, map[string]interface{}{"alg": "RS256", "typ": "JWT", "kid": "kid-1"}, header)
	require.Equal(t, testSAEmail, claims["iss"])
	require.Equal(t, "https://www.googleapis.com/auth/drive.readonly https://www.googleapis.com/auth/spreadsheets", claims["scope"])
	require.Equal(t, ep.TokenURL(), claims["aud"])
	iat, exp := claimInt(t, claims, "iat"), claimInt(t, claims, "exp")
	require.Equal(t, clock.now().Add(-10*time.Second).Unix(), iat, "iat is backdated 10s from the plugin's clock")
	require.Equal(t, int64(3600), exp-iat, "Google accepts at most one hour")
	for _, absent := range []string{"sub", "target_audience", "jti"} {
		require.NotContains(t, claims, absent)
	}
	require.ElementsMatch(t, []string{"grant_type", "assertion"}, keysOf(form), "Google takes scopes in the assertion, not the form")

	// Cached: a second read does not go upstream.
	b.read(t, "token/google_sales", nil)
	require.Equal(t, int64(1), ep.Count())

	bresp := b.read(t, "bindings/google_sales", nil)
	require.Equal(t, "sa_key", bresp.Data["credentials_json_secret"])
	status := bresp.Data["status"].(map[string]interface{})
	require.Equal(t, healthOK, status["health"])
	requireNoKeyMaterial(t, respText(t, bresp, nil), keyPEM)
	requireNoKeyMaterial(t, logs.String(), keyPEM)
	require.NotContains(t, logs.String(), "ya29.")
}

func keysOf(v url.Values) []string {
	var out []string
	for k := range v {
		out = append(out, k)
	}
	return out
}

func TestJWT_GoogleServiceAccount_SubjectAndInlineKey(t *testing.T) {
	_, logs, b, keys, ep := jwtTestSetup(t)
	ep.Trust(map[string]crypto.PublicKey{"kid-1": &keys.rsa1.PublicKey})

	keyPEM := pemPKCS1(keys.rsa1)
	b.write(t, "bindings/gmail_support", map[string]interface{}{
		"kind":           "google.service_account",
		"client_email":   testSAEmail,
		"private_key":    keyPEM,
		"private_key_id": "kid-1",
		"subject":        "support@example.com",
		"scopes":         "https://www.googleapis.com/auth/gmail.readonly",
		"token_url":      ep.TokenURL(),
	})
	resp := b.read(t, "token/gmail_support", nil)
	require.Equal(t, "ya29.test-1", resp.Data["access_token"])
	header, claims, _ := ep.LastAssertion()
	require.Equal(t, "kid-1", header["kid"])
	require.Equal(t, testSAEmail, claims["iss"])
	require.Equal(t, "support@example.com", claims["sub"])
	require.Equal(t, "https://www.googleapis.com/auth/gmail.readonly", claims["scope"])

	bresp := b.read(t, "bindings/gmail_support", nil)
	require.Equal(t, []string{"private_key"}, bresp.Data["inline_fields"])
	require.Equal(t, "support@example.com", bresp.Data["subject"])
	requireNoKeyMaterial(t, respText(t, bresp, nil), keyPEM)
	requireNoKeyMaterial(t, logs.String(), keyPEM)
}

func TestJWT_GoogleServiceAccount_IDToken(t *testing.T) {
	clock, _, b, keys, ep := jwtTestSetup(t)
	ep.Trust(map[string]crypto.PublicKey{"kid-1": &keys.rsa1.PublicKey})

	const audience = "https://invoices-abc123-uc.a.run.app"
	b.write(t, "bindings/invoices_api", map[string]interface{}{
		"kind":             "google.service_account",
		"credentials_json": googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, pemPKCS8(t, keys.rsa1)),
		"target_audience":  audience,
		"token_url":        ep.TokenURL(),
	})
	resp := b.read(t, "token/invoices_api", nil)
	idTok, _ := resp.Data["access_token"].(string)
	require.Equal(t, 3, len(strings.Split(idTok, ".")), "the material's access_token is the ID token")
	require.Equal(t, audience, jwtClaim(t, idTok, "aud"))
	require.Equal(t, "Bearer", resp.Data["token_type"])
	// The expiry is the ID token's exp, not a default lifetime.
	require.Equal(t, clock.now().Add(30*time.Minute).UTC().Format(time.RFC3339), resp.Data["expires_at"])
	require.Equal(t, map[string]string{"Authorization": "Bearer " + idTok}, resp.Data["headers"])

	_, claims, form := ep.LastAssertion()
	require.Equal(t, audience, claims["target_audience"])
	require.Equal(t, testSAEmail, claims["iss"])
	require.Equal(t, ep.TokenURL(), claims["aud"])
	require.NotContains(t, claims, "scope")
	require.Empty(t, form.Get("scope"))

	// A provider answer without an id_token is not a usable ID token answer.
	ep.Answer(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, `{"access_token":"ya29.not-an-id-token","expires_in":3599}`)
	})
	// The cached ID token is still valid, so the refresh reports a degraded
	// binding and the cached token keeps being served.
	r := b.write(t, "bindings/invoices_api/refresh", nil)
	st := r.Data["status"].(map[string]interface{})
	require.Equal(t, healthDegraded, st["health"])
	require.Contains(t, st["last_error"], "without an id_token")
	require.Equal(t, idTok, b.read(t, "token/invoices_api", nil).Data["access_token"])
}

func jwtClaim(t *testing.T, tok, name string) interface{} {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var c map[string]interface{}
	require.NoError(t, json.Unmarshal(raw, &c))
	return c[name]
}

// An update that fixes one field of a stored binding is checked as a
// whole, and clearing credentials_json lets client_email + private_key in.
func TestJWT_SwitchFromKeyFileToFields(t *testing.T) {
	keys := jwtKeys(t)
	b := newJWTTestBackend(t, nil, &syncBuffer{})
	keyPEM := pemPKCS8(t, keys.rsa1)
	b.write(t, "bindings/h", map[string]interface{}{
		"kind": "google.service_account", "scopes": "s",
		"credentials_json": googleKeyFileJSON(t, testSAEmail, "k", testSAClientID, keyPEM),
	})
	resp, err := b.do(t, logical.UpdateOperation, "bindings/h", map[string]interface{}{"client_email": testSAEmail, "private_key": keyPEM})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	b.write(t, "bindings/h", map[string]interface{}{"credentials_json": "", "client_email": testSAEmail, "private_key": keyPEM})
	require.Equal(t, []string{"private_key"}, b.read(t, "bindings/h", nil).Data["inline_fields"])
}

func TestJWT_GoogleErrorsNeedReauthWithHint(t *testing.T) {
	const (
		sigBody   = `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`
		clockBody = `{"error":"invalid_grant","error_description":"Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."}`
		dwdBody   = `{"error":"unauthorized_client","error_description":"Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}`
		scopeBody = `{"error":"invalid_scope","error_description":"Invalid OAuth scope or ID token audience provided."}`
		acctBody  = `{"error":"invalid_grant","error_description":"Invalid grant: account not found"}`
		userBody  = `{"error":"invalid_grant","error_description":"Invalid email or User ID"}`
	)
	cases := []struct {
		name    string
		body    string
		code    string
		subject string
		hint    []string
	}{
		{"deleted key", sigBody, "invalid_grant", "", []string{"key was deleted or disabled", "create a new key"}},
		{"clock skew", clockBody, "invalid_grant", "", []string{"clock skew", "Vault host's clock"}},
		{"delegation not granted", dwdBody, "unauthorized_client", "ceo@example.com", []string{"domain-wide delegation is not granted", "Admin console", "client ID " + testSAClientID, "https://www.googleapis.com/auth/gmail.readonly"}},
		{"unauthorized without subject", dwdBody, "unauthorized_client", "", []string{"set subject"}},
		{"invalid scope", scopeBody, "invalid_scope", "", []string{"Google refused the scopes", "https://www.googleapis.com/auth/gmail.readonly"}},
		{"account deleted", acctBody, "invalid_grant", "", []string{testSAEmail + " does not exist or is disabled"}},
		{"unknown subject", userBody, "invalid_grant", "nobody@example.com", []string{`subject "nobody@example.com" is not a user`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, logs, b, keys, ep := jwtTestSetup(t)
			ep.Trust(map[string]crypto.PublicKey{"kid-1": &keys.rsa1.PublicKey})
			body := tc.body
			ep.Answer(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusBadRequest, body) })

			keyPEM := pemPKCS8(t, keys.rsa1)
			data := map[string]interface{}{
				"kind":             "google.service_account",
				"credentials_json": googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, keyPEM),
				"scopes":           "https://www.googleapis.com/auth/gmail.readonly",
				"token_url":        ep.TokenURL(),
			}
			if tc.subject != "" {
				data["subject"] = tc.subject
			}
			b.write(t, "bindings/google_sales", data)

			resp, err := b.do(t, logical.ReadOperation, "token/google_sales", nil)
			require.NoError(t, err)
			require.True(t, resp.IsError(), "a 400")
			msg := resp.Error().Error()
			var desc struct {
				D string `json:"error_description"`
			}
			require.NoError(t, json.Unmarshal([]byte(tc.body), &desc))
			require.Contains(t, msg, `handle "google_sales" needs re-authorization`)
			require.Contains(t, msg, tc.code)
			require.Contains(t, msg, desc.D)
			for _, h := range tc.hint {
				require.Contains(t, msg, h)
			}

			st := b.read(t, "bindings/google_sales", nil).Data["status"].(map[string]interface{})
			require.Equal(t, healthNeedsReauth, st["health"])
			require.Equal(t, tc.code, st["last_error_code"])
			for _, h := range tc.hint {
				require.Contains(t, st["last_error"], h)
			}

			// Until the inputs change, reads fail fast without asking again.
			_, _ = b.do(t, logical.ReadOperation, "token/google_sales", nil)
			require.Equal(t, int64(1), ep.Count())

			requireNoKeyMaterial(t, msg, keyPEM)
			requireNoKeyMaterial(t, st["last_error"].(string), keyPEM)
			require.Contains(t, logs.String(), "token refresh failed", "the failure was logged (and the sink works)")
			requireNoKeyMaterial(t, logs.String(), keyPEM)
		})
	}
}

// FuzzParseGoogleKeyFile: no input panics, and no error quotes the file's
// private_key.
func FuzzParseGoogleKeyFile(f *testing.F) {
	keys := jwtKeys(f)
	f.Add(googleKeyFileJSON(f, testSAEmail, "k", testSAClientID, pemPKCS8(f, keys.rsa1)))
	f.Add(`{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}`)
	f.Add(`{"type":"authorized_user"}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, in string) {
		_, err := parseGoogleKeyFile(in)
		if err == nil {
			return
		}
		var kf struct {
			PrivateKey string `json:"private_key"`
		}
		if json.Unmarshal([]byte(in), &kf) != nil {
			return
		}
		for _, line := range keyMaterialLines(kf.PrivateKey) {
			if strings.Contains(err.Error(), line) {
				t.Fatalf("error quotes the private key: %v", err)
			}
		}
	})
}
