package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

func pemKey(t *testing.T, label string, rsaKey bool) string {
	t.Helper()
	var der []byte
	var err error
	if rsaKey {
		var k *rsa.PrivateKey
		k, err = rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		der, err = x509.MarshalPKCS8PrivateKey(k)
	} else {
		var k *ecdsa.PrivateKey
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		der, err = x509.MarshalPKCS8PrivateKey(k)
	}
	require.NoError(t, err)
	return planted.Add(label, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
}

// Raw JSON of binding and secret reads and lists never contains a secret
// value, for every kind and both inline and referenced secrets.
func TestRawReadsNeverContainSecrets(t *testing.T) {
	env(t)
	rsaPEM := pemKey(t, "raw_rsa_key", true)
	ecPEM := pemKey(t, "raw_ec_key", false)
	keyFile, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "proj",
		"private_key_id": "kid-1",
		"private_key":    rsaPEM,
		"client_email":   "sa@proj.iam.gserviceaccount.com",
		"client_id":      "1234",
		"token_uri":      "https://oauth2.googleapis.com/token",
	})
	require.NoError(t, err)
	keyFileJSON := planted.Add("raw_key_file", string(keyFile))

	write(t, "secrets/raw_stored", map[string]interface{}{"value": plant("raw_stored")})
	bindings := map[string]map[string]interface{}{
		"raw_api":     {"kind": "api_token", "token": plant("raw_api_token")},
		"raw_api_ref": {"kind": "api_token", "token_secret": "raw_stored"},
		"raw_google": {
			"kind": "google.oauth2", "client_id": plant("raw_g_id"), "client_secret": plant("raw_g_secret"),
			"refresh_token": plant("raw_g_refresh"), "scopes": "https://www.googleapis.com/auth/drive",
		},
		"raw_sa_file": {"kind": "google.service_account", "credentials_json": keyFileJSON, "scopes": "https://www.googleapis.com/auth/cloud-platform"},
		"raw_sa_key": {
			"kind": "google.service_account", "client_email": "sa@proj.iam.gserviceaccount.com", "private_key": rsaPEM,
			"private_key_id": "kid-1", "subject": "user@example.com", "scopes": "https://www.googleapis.com/auth/gmail.readonly",
		},
		"raw_rt": {
			"kind": "oauth2.refresh_token", "client_id": plant("raw_rt_id"), "client_secret_secret": "raw_stored",
			"refresh_token": plant("raw_rt_refresh"), "token_url": "http://127.0.0.1:9/token", "auth_style": "header",
		},
		"raw_cc": {
			"kind": "oauth2.client_credentials", "client_id": plant("raw_cc_id"), "client_secret": plant("raw_cc_secret"),
			"token_url": "https://auth.example.com/oauth/token", "token_params": map[string]interface{}{"audience": "https://api"},
		},
		"raw_jwt": {
			"kind": "oauth2.jwt_bearer", "private_key": ecPEM, "key_id": "k1", "issuer": "svc@example.com",
			"token_url": "https://auth.example.com/token", "audience": "https://auth.example.com",
		},
	}
	for h, data := range bindings {
		write(t, "bindings/"+h, data)
	}

	for h := range bindings {
		code, body := rawGet(t, "GET", "bindings/"+h)
		require.Equal(t, 200, code, body)
		requireNoPlanted(t, "read of bindings/"+h, body)
	}
	// The key file's non-secret parts show up nowhere either, but the
	// binding says which fields are set.
	code, body := rawGet(t, "GET", "bindings/raw_sa_file")
	require.Equal(t, 200, code)
	require.Contains(t, body, `"inline_fields":["credentials_json"]`)

	for _, p := range []string{"secrets/raw_stored", "config"} {
		code, body := rawGet(t, "GET", p)
		require.Equal(t, 200, code, body)
		requireNoPlanted(t, "read of "+p, body)
	}
	for _, p := range []string{"bindings/", "secrets/"} {
		code, body := rawGet(t, "LIST", p)
		require.Equal(t, 200, code, body)
		requireNoPlanted(t, "list of "+p, body)
	}
	// validate names handles and kinds only.
	resp, err := srv.Client.Logical().Write(mp("validate"), map[string]interface{}{"requirements": []interface{}{
		map[string]interface{}{"node": "n", "handle": "raw_rt", "kind": "api_token"},
	}})
	require.NoError(t, err)
	b, _ := json.Marshal(resp)
	requireNoPlanted(t, "validate answer", string(b))

	for h := range bindings {
		del(t, "bindings/"+h)
	}
	del(t, "secrets/raw_stored")
}

// The audit log has every request and response, with secret values HMAC'd:
// the issued token appears only as its HMAC, and no planted value appears
// in plaintext. (TestMain checks the whole log again after all tests.)
func TestAuditLogHMACsSecrets(t *testing.T) {
	s := env(t)
	require.NotEmpty(t, s.AuditPath)
	tok := plant("audit_tok")
	write(t, "secrets/audit_s", map[string]interface{}{"value": plant("audit_secret")})
	write(t, "bindings/audit_api", map[string]interface{}{"kind": "api_token", "token": tok})
	write(t, "bindings/audit_ref", map[string]interface{}{"kind": "api_token", "token_secret": "audit_s"})
	require.Equal(t, tok, read(t, "token/audit_api").Data["access_token"])
	read(t, "token/audit_ref")

	hash, err := s.Client.Sys().AuditHash("file", tok)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(hash, "hmac-sha256:"), hash)

	b, err := os.ReadFile(s.AuditPath)
	require.NoError(t, err)
	log := string(b)
	require.Contains(t, log, `"path":"`+mp("token/audit_api")+`"`, "the token read is audited")
	require.Contains(t, log, hash, "the issued token appears HMAC'd in the audit log")
	require.NotContains(t, log, tok)
	if leaks := planted.Find(log); len(leaks) > 0 {
		t.Fatalf("the audit log contains planted secret values in plaintext: %v", leaks)
	}

	del(t, "bindings/audit_api")
	del(t, "bindings/audit_ref")
	del(t, "secrets/audit_s")
}

// A policy on flowcred/token/<handle> grants exactly that handle.
func TestACLPolicyGrantsOneHandle(t *testing.T) {
	s := env(t)
	write(t, "bindings/acl_a", map[string]interface{}{"kind": "api_token", "token": plant("acl_a")})
	write(t, "bindings/acl_b", map[string]interface{}{"kind": "api_token", "token": plant("acl_b")})
	write(t, "secrets/acl_s", map[string]interface{}{"value": plant("acl_s")})

	policy := `path "` + mp("token/acl_a") + `" { capabilities = ["read"] }`
	require.NoError(t, s.Client.Sys().PutPolicy("integration-acl-a", policy))
	created, err := s.Client.Auth().Token().Create(&api.TokenCreateRequest{
		Policies: []string{"integration-acl-a"}, TTL: "15m",
	})
	require.NoError(t, err)
	c, err := s.ClientWithToken(created.Auth.ClientToken)
	require.NoError(t, err)

	got, err := c.Logical().Read(mp("token/acl_a"))
	require.NoError(t, err)
	require.NotNil(t, got)
	require.NotEmpty(t, got.Data["access_token"])

	denied := []struct {
		op, path string
	}{
		{"read", "token/acl_b"},
		{"list", "bindings/"},
		{"read", "bindings/acl_a"},
		{"list", "secrets/"},
		{"read", "secrets/acl_s"},
		{"read", "config"},
		{"write", "bindings/acl_a"},
		{"write", "validate"},
	}
	for _, d := range denied {
		var err error
		switch d.op {
		case "read":
			_, err = c.Logical().Read(mp(d.path))
		case "list":
			_, err = c.Logical().List(mp(d.path))
		case "write":
			_, err = c.Logical().Write(mp(d.path), map[string]interface{}{"description": "x"})
		}
		t.Run(d.op+" "+d.path, func(t *testing.T) { requireStatus(t, err, 403, "permission denied") })
	}

	require.NoError(t, s.Client.Auth().Token().RevokeTree(created.Auth.ClientToken))
	require.NoError(t, s.Client.Sys().DeletePolicy("integration-acl-a"))
	del(t, "bindings/acl_a")
	del(t, "bindings/acl_b")
	del(t, "secrets/acl_s")
}
