package flowcred

// Tests of keys.go: the private keys JWT assertions are signed with, as
// they are written and as referenced secrets hold them; and the test keys
// and Google key files the other tests use.

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// jwtTestKeys are generated once per test binary: RSA generation is the
// slow part of these tests.
type jwtKeySet struct {
	once             sync.Once
	rsa1, rsa2       *rsa.PrivateKey
	p256, p384, p521 *ecdsa.PrivateKey
}

var jwtTestKeys jwtKeySet

func jwtKeys(tb testing.TB) *jwtKeySet {
	tb.Helper()
	k := &jwtTestKeys
	k.once.Do(func() {
		var err error
		if k.rsa1, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		k.p256 = mustEC(elliptic.P256())
		k.p384 = mustEC(elliptic.P384())
		k.p521 = mustEC(elliptic.P521())
	})
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func pemBlock(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pemPKCS1(k *rsa.PrivateKey) string {
	return pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))
}

func pemPKCS8(tb testing.TB, k interface{}) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(tb, err)
	return pemBlock("PRIVATE KEY", der)
}

func pemSEC1(tb testing.TB, k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalECPrivateKey(k)
	require.NoError(tb, err)
	return pemBlock("EC PRIVATE KEY", der)
}

// dsaPKCS8 builds a PKCS#8 structure carrying the DSA algorithm OID, which
// crypto/x509 refuses to parse (the content is not a real key).
func dsaPKCS8(tb testing.TB) string {
	der, err := asn1.Marshal(struct {
		Version    int
		Algo       pkix.AlgorithmIdentifier
		PrivateKey []byte
	}{
		Algo:       pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}},
		PrivateKey: bytes.Repeat([]byte{0x42}, 40),
	})
	require.NoError(tb, err)
	return pemBlock("PRIVATE KEY", der)
}

const (
	testSAEmail    = "vault-reader@flowcred-test.iam.gserviceaccount.com"
	testSAClientID = "109876543210987654321"
)

// googleKeyFileJSON renders a key file shaped like Google's. Its token_uri
// points nowhere reachable: flowcred must use the binding's token_url.
func googleKeyFileJSON(tb testing.TB, email, kid, clientID, keyPEM string) string {
	raw, err := json.Marshal(map[string]string{
		"type":                        "service_account",
		"project_id":                  "flowcred-test",
		"private_key_id":              kid,
		"private_key":                 keyPEM,
		"client_email":                email,
		"client_id":                   clientID,
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   "https://token-uri.invalid/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"universe_domain":             "googleapis.com",
	})
	require.NoError(tb, err)
	return string(raw)
}

// keyMaterialLines returns the lines of PEM bodies (and, for JSON, the
// escaped form) that must never appear in an error, response or log.
func keyMaterialLines(secrets ...string) []string {
	var out []string
	for _, s := range secrets {
		s = strings.ReplaceAll(s, `\n`, "\n")
		for _, line := range strings.Split(s, "\n") {
			line = strings.TrimSpace(line)
			if len(line) >= 16 && isBase64Line(line) {
				out = append(out, line)
			}
		}
	}
	return out
}

// isBase64Line: PEM body lines are pure base64, unlike the fixed texts of
// error messages ("-----BEGIN PRIVATE KEY-----" may appear in those).
func isBase64Line(s string) bool {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// requireNoKeyMaterial fails if text carries any line of the given keys, or
// an assertion or token handed out by the test endpoint.
func requireNoKeyMaterial(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, line := range keyMaterialLines(secrets...) {
		require.NotContains(t, text, line, "key material leaked")
	}
	require.NotContains(t, text, "eyJ", "a JWT (assertion or token) leaked")
}

func TestJWT_WriteTimeChecks(t *testing.T) {
	keys := jwtKeys(t)
	rsaPEM := pemPKCS8(t, keys.rsa1)
	ecPEM := pemSEC1(t, keys.p256)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	edPEM := pemPKCS8(t, edKey)
	xKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	xPEM := pemPKCS8(t, xKey)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	smallPEM := pemPKCS1(small)
	p224 := mustEC(elliptic.P224())
	p224PEM := pemSEC1(t, p224)
	pubDER, err := x509.MarshalPKIXPublicKey(&keys.rsa1.PublicKey)
	require.NoError(t, err)
	pubPEM := pemBlock("PUBLIC KEY", pubDER)
	certDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)},
		&x509.Certificate{SerialNumber: big.NewInt(1)}, &keys.p256.PublicKey, keys.p256)
	require.NoError(t, err)
	certPEM := pemBlock("CERTIFICATE", certDER)
	encPEM := pemBlock("ENCRYPTED PRIVATE KEY", bytes.Repeat([]byte{0x17}, 200))
	legacyEnc := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: x509.MarshalPKCS1PrivateKey(keys.rsa1)}))
	junkPEM := pemBlock("PRIVATE KEY", bytes.Repeat([]byte("not a key at all "), 20))
	dsaPEM := pemBlock("DSA PRIVATE KEY", bytes.Repeat([]byte{0x33}, 200))
	rawBase64 := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PrivateKey(keys.rsa1))

	kf := func(mutate func(m map[string]interface{})) string {
		m := map[string]interface{}{}
		require.NoError(t, json.Unmarshal([]byte(googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, rsaPEM)), &m))
		mutate(m)
		raw, err := json.Marshal(m)
		require.NoError(t, err)
		return string(raw)
	}
	goodFile := kf(func(map[string]interface{}) {})
	sa := func(extra map[string]interface{}) map[string]interface{} {
		d := map[string]interface{}{"kind": "google.service_account", "scopes": "https://www.googleapis.com/auth/cloud-platform"}
		for k, v := range extra {
			d[k] = v
		}
		return d
	}
	jb := func(keyPEM string) map[string]interface{} {
		return map[string]interface{}{"kind": "oauth2.jwt_bearer", "private_key": keyPEM, "issuer": "iss", "token_url": "https://idp.example.com/token"}
	}
	userFile := `{"type":"authorized_user","client_id":"1234.apps.googleusercontent.com","client_secret":"d-FL95Q19q7MQmFpd7hHD0Ty-SECRET","refresh_token":"1//0gLONGREFRESHTOKENVALUE-SECRET"}`

	cases := []struct {
		name    string
		data    map[string]interface{}
		field   string
		want    string
		secrets []string
	}{
		{"key file malformed JSON", sa(map[string]interface{}{"credentials_json": goodFile[:len(goodFile)/2]}), "credentials_json", "not valid JSON", []string{rsaPEM}},
		{"key file is a JSON string", sa(map[string]interface{}{"credentials_json": `"` + rawBase64 + `"`}), "credentials_json", "not an object", []string{rawBase64}},
		{"key file field of wrong type", sa(map[string]interface{}{"credentials_json": `{"type":"service_account","private_key":42}`}), "credentials_json", `field "private_key"`, nil},
		{"key file without client_email", sa(map[string]interface{}{"credentials_json": kf(func(m map[string]interface{}) { delete(m, "client_email") })}), "credentials_json", "without client_email", []string{rsaPEM}},
		{"key file without private_key", sa(map[string]interface{}{"credentials_json": kf(func(m map[string]interface{}) { delete(m, "private_key") })}), "credentials_json", "without private_key", nil},
		{"key file without type", sa(map[string]interface{}{"credentials_json": kf(func(m map[string]interface{}) { delete(m, "type") })}), "credentials_json", `no "type"`, []string{rsaPEM}},
		{"key file of another type", sa(map[string]interface{}{"credentials_json": userFile}), "credentials_json", `"authorized_user"`, []string{"d-FL95Q19q7MQmFpd7hHD0Ty-SECRET", "1//0gLONGREFRESHTOKENVALUE-SECRET"}},
		{"key file with an EC key", sa(map[string]interface{}{"credentials_json": kf(func(m map[string]interface{}) { m["private_key"] = ecPEM })}), "credentials_json", "RSA", []string{ecPEM}},
		{"key file with a non-PEM key", sa(map[string]interface{}{"credentials_json": kf(func(m map[string]interface{}) { m["private_key"] = rawBase64 })}), "credentials_json", "not a PEM private key", []string{rawBase64}},
		{"google private_key is a public key", sa(map[string]interface{}{"client_email": testSAEmail, "private_key": pubPEM}), "private_key", `"PUBLIC KEY" block, not a private key`, []string{pubPEM}},
		{"google private_key is EC", sa(map[string]interface{}{"client_email": testSAEmail, "private_key": ecPEM}), "private_key", "Google service-account keys are RSA", []string{ecPEM}},
		{"google private_key not PEM", sa(map[string]interface{}{"client_email": testSAEmail, "private_key": rawBase64}), "private_key", "not a PEM private key", []string{rawBase64}},
		{"target_audience with scopes", sa(map[string]interface{}{"credentials_json": goodFile, "target_audience": "https://svc.example"}), "target_audience", "no scopes", []string{rsaPEM}},
		{"neither scopes nor target_audience", map[string]interface{}{"kind": "google.service_account", "credentials_json": goodFile}, "scopes", "target_audience", []string{rsaPEM}},
		{"credentials_json with client_email", sa(map[string]interface{}{"credentials_json": goodFile, "client_email": testSAEmail}), "client_email", "cannot be combined with credentials_json", []string{rsaPEM}},
		{"credentials_json with private_key", sa(map[string]interface{}{"credentials_json_secret": "kf", "private_key": rsaPEM, "client_email": testSAEmail}), "client_email", "cannot be combined with credentials_json", []string{rsaPEM}},
		{"client_email not an email", sa(map[string]interface{}{"client_email": "vault-reader", "private_key": rsaPEM}), "client_email", "email", []string{rsaPEM}},
		{"jwt_bearer certificate", jb(certPEM), "private_key", `"CERTIFICATE" block, not a private key`, []string{certPEM}},
		{"jwt_bearer Ed25519", jb(edPEM), "private_key", "Ed25519", []string{edPEM}},
		{"jwt_bearer X25519", jb(xPEM), "private_key", "X25519", []string{xPEM}},
		{"jwt_bearer DSA PKCS#8", jb(dsaPKCS8(t)), "private_key", "DSA", nil},
		{"jwt_bearer DSA PEM", jb(dsaPEM), "private_key", "DSA", []string{dsaPEM}},
		{"jwt_bearer RSA 1024", jb(smallPEM), "private_key", "1024-bit RSA key", []string{smallPEM}},
		{"jwt_bearer EC P-224", jb(p224PEM), "private_key", "P-224", []string{p224PEM}},
		{"jwt_bearer encrypted PKCS#8", jb(encPEM), "private_key", "encrypted", []string{encPEM}},
		{"jwt_bearer encrypted legacy PEM", jb(legacyEnc), "private_key", "encrypted", []string{legacyEnc}},
		{"jwt_bearer garbage in a PEM block", jb(junkPEM), "private_key", "not a valid private key", []string{junkPEM}},
		{"jwt_bearer not PEM", jb(rawBase64), "private_key", "not a PEM private key", []string{rawBase64}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			b := newJWTTestBackend(t, nil, logs)
			resp, err := b.do(t, logical.UpdateOperation, "bindings/h", tc.data)
			require.NoError(t, err)
			require.NotNil(t, resp)
			require.True(t, resp.IsError(), "expected a 400, got %v", resp.Data)
			msg := resp.Error().Error()
			require.Contains(t, msg, "invalid "+tc.field+":")
			require.Contains(t, msg, tc.want)
			requireNoKeyMaterial(t, msg, tc.secrets...)
			requireNoKeyMaterial(t, logs.String(), tc.secrets...)
			got, err := b.do(t, logical.ReadOperation, "bindings/h", nil)
			require.NoError(t, err)
			require.Nil(t, got, "nothing is stored")
		})
	}
}

// A referenced secret is checked when material is issued: a 400 naming the
// field and the secret, health needs_reauth, and a retry once it is fixed.
func TestJWT_ReferencedSecretUnusable(t *testing.T) {
	clock, logs, b, keys, ep := jwtTestSetup(t)
	ep.Trust(map[string]crypto.PublicKey{"kid-1": &keys.rsa1.PublicKey})

	ecPEM := pemSEC1(t, keys.p256)
	badFile := googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, ecPEM)
	b.write(t, "secrets/sa_key", map[string]interface{}{"value": badFile})
	b.write(t, "bindings/g", map[string]interface{}{
		"kind": "google.service_account", "credentials_json_secret": "sa_key",
		"scopes": "https://www.googleapis.com/auth/cloud-platform", "token_url": ep.TokenURL(),
	})
	resp, err := b.do(t, logical.ReadOperation, "token/g", nil)
	require.NoError(t, err)
	require.True(t, resp.IsError())
	msg := resp.Error().Error()
	require.Contains(t, msg, `credentials_json_secret (secret "sa_key")`)
	require.Contains(t, msg, "Google service-account keys are RSA")
	requireNoKeyMaterial(t, msg, ecPEM)
	require.Equal(t, int64(0), ep.Count(), "nothing was sent upstream")
	st := b.read(t, "bindings/g", nil).Data["status"].(map[string]interface{})
	require.Equal(t, healthNeedsReauth, st["health"])
	require.Contains(t, st["last_error"], `secret "sa_key"`)

	b.write(t, "secrets/sa_key", map[string]interface{}{"value": googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, pemPKCS8(t, keys.rsa1))})
	clock.advance(time.Second) // a later read, not one that waited on the failed refresh
	resp = b.read(t, "token/g", nil)
	require.Equal(t, "ya29.test-1", resp.Data["access_token"])

	// A private_key secret that is not a key at all.
	b.write(t, "secrets/pk", map[string]interface{}{"value": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"})
	b.write(t, "bindings/jb", map[string]interface{}{"kind": "oauth2.jwt_bearer", "private_key_secret": "pk", "issuer": "i", "token_url": ep.TokenURL()})
	resp, err = b.do(t, logical.ReadOperation, "token/jb", nil)
	require.NoError(t, err)
	require.Contains(t, resp.Error().Error(), `private_key_secret (secret "pk") is a PEM "PUBLIC KEY" block, not a private key`)
	requireNoKeyMaterial(t, logs.String(), ecPEM, badFile)
}

// FuzzParsePrivateKey: no input panics, and no error quotes the DER inside
// a PEM block.
func FuzzParsePrivateKey(f *testing.F) {
	keys := jwtKeys(f)
	f.Add(pemPKCS1(keys.rsa1))
	f.Add(pemSEC1(f, keys.p256))
	f.Add(pemPKCS8(f, keys.p384))
	f.Add(dsaPKCS8(f))
	f.Add("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		_, err := parsePrivateKey(in)
		if err == nil {
			return
		}
		block, _ := pem.Decode([]byte(strings.TrimSpace(in)))
		if block == nil || len(block.Bytes) < 12 {
			return
		}
		b64 := base64.StdEncoding.EncodeToString(block.Bytes)
		for i := 0; i+16 <= len(b64); i += 16 {
			if strings.Contains(err.Error(), b64[i:i+16]) {
				t.Fatalf("error quotes key material: %v", err)
			}
		}
	})
}
