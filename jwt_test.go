package flowcred

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// ---------------------------------------------------------------- keys

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

func respText(t *testing.T, resp *logical.Response, err error) string {
	t.Helper()
	var b strings.Builder
	if resp != nil {
		raw, jerr := json.Marshal(resp)
		require.NoError(t, jerr)
		b.Write(raw)
	}
	if err != nil {
		b.WriteString(err.Error())
	}
	return b.String()
}

// ---------------------------------------------------------------- backend

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newJWTTestBackend is getTestBackend with a trace-level logger writing to
// logs, so tests can check what the plugin logs.
func newJWTTestBackend(t *testing.T, clock *fakeClock, logs *syncBuffer) *testBackend {
	t.Helper()
	return getTestBackendWithLogger(t, clock, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace}))
}

// ---------------------------------------------------------------- token endpoint

// jwtEndpoint is a JWT-bearer token endpoint that verifies assertions with
// the standard library (independently of the code under test) and records
// them.
type jwtEndpoint struct {
	*httptest.Server
	t     *testing.T
	clock *fakeClock

	mu sync.Mutex
	// trusted maps kid to public key; an assertion is verified against the
	// key of its kid, or any key when it has none.
	trusted map[string]crypto.PublicKey
	// reply, when set, answers instead of the default behaviour (after the
	// signature was checked).
	reply     func(w http.ResponseWriter)
	requests  int
	seq       int
	header    map[string]interface{}
	claims    map[string]interface{}
	form      url.Values
	idTokenTT time.Duration
}

func newJWTEndpoint(t *testing.T, clock *fakeClock) *jwtEndpoint {
	e := &jwtEndpoint{t: t, clock: clock, trusted: map[string]crypto.PublicKey{}, idTokenTT: 30 * time.Minute}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *jwtEndpoint) tokenURL() string { return e.URL + "/token" }

// trust replaces the trusted keys.
func (e *jwtEndpoint) trust(keys map[string]crypto.PublicKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.trusted = keys
}

func (e *jwtEndpoint) setReply(fn func(w http.ResponseWriter)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reply = fn
}

func (e *jwtEndpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests
}

// last returns the last verified assertion's header and claims and the form.
func (e *jwtEndpoint) last() (map[string]interface{}, map[string]interface{}, url.Values) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.header, e.claims, e.form
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func (e *jwtEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.URL.Path != "/token" {
		writeJSON(w, http.StatusBadRequest, `{"error":"invalid_request"}`)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests++
	if r.PostForm.Get("grant_type") != jwtBearerGrantType {
		writeJSON(w, http.StatusBadRequest, `{"error":"unsupported_grant_type"}`)
		return
	}
	header, claims, err := verifyAssertion(r.PostForm.Get("assertion"), e.trusted)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
		return
	}
	e.header, e.claims, e.form = header, claims, r.PostForm
	if e.reply != nil {
		e.reply(w)
		return
	}
	e.seq++
	if ta, ok := claims["target_audience"].(string); ok {
		idTok := fakeJWT(map[string]interface{}{
			"aud": ta, "iss": "https://accounts.google.com", "sub": claims["iss"],
			"exp": e.clock.now().Add(e.idTokenTT).Unix(), "iat": e.clock.now().Unix(),
		})
		writeJSON(w, http.StatusOK, fmt.Sprintf(`{"id_token":%q}`, idTok))
		return
	}
	writeJSON(w, http.StatusOK, fmt.Sprintf(`{"access_token":"ya29.test-%d","expires_in":3599,"token_type":"Bearer"}`, e.seq))
}

// fakeJWT builds an unsigned-looking JWT (the plugin never verifies the
// tokens it hands out, it only reads exp).
func fakeJWT(claims map[string]interface{}) string {
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "google-1"})
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + enc([]byte("signature"))
}

// verifyAssertion checks a compact JWS with crypto/rsa and crypto/ecdsa.
func verifyAssertion(token string, trusted map[string]crypto.PublicKey) (map[string]interface{}, map[string]interface{}, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("not a compact JWS")
	}
	var header, claims map[string]interface{}
	for i, dst := range []*map[string]interface{}{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, nil, err
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, nil, err
	}
	input := []byte(parts[0] + "." + parts[1])
	var candidates []crypto.PublicKey
	if kid, ok := header["kid"].(string); ok {
		if k := trusted[kid]; k != nil {
			candidates = append(candidates, k)
		}
	} else {
		for _, k := range trusted {
			candidates = append(candidates, k)
		}
	}
	alg, _ := header["alg"].(string)
	for _, pub := range candidates {
		if verifySig(alg, pub, input, sig) {
			return header, claims, nil
		}
	}
	return nil, nil, errors.New("signature not verified")
}

func verifySig(alg string, pub crypto.PublicKey, input, sig []byte) bool {
	switch alg {
	case "RS256":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return false
		}
		sum := sha256.Sum256(input)
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil
	case "ES256", "ES384", "ES512":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		var digest []byte
		switch alg {
		case "ES256":
			s := sha256.Sum256(input)
			digest = s[:]
		case "ES384":
			s := sha512.Sum384(input)
			digest = s[:]
		default:
			s := sha512.Sum512(input)
			digest = s[:]
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

func claimInt(t *testing.T, claims map[string]interface{}, name string) int64 {
	t.Helper()
	v, ok := claims[name].(float64)
	require.True(t, ok, "claim %s missing or not a number: %v", name, claims[name])
	return int64(v)
}

// ---------------------------------------------------------------- google.service_account

const (
	testSAEmail    = "vault-reader@flowcred-test.iam.gserviceaccount.com"
	testSAClientID = "109876543210987654321"
)

func TestJWT_GoogleServiceAccount_AccessToken(t *testing.T) {
	clock := newFakeClock()
	logs := &syncBuffer{}
	b := newJWTTestBackend(t, clock, logs)
	keys := jwtKeys(t)
	ep := newJWTEndpoint(t, clock)
	ep.trust(map[string]crypto.PublicKey{"kid-1": &keys.rsa1.PublicKey})

	keyPEM := pemPKCS8(t, keys.rsa1)
	keyFile := googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, keyPEM)
	b.write(t, "secrets/sa_key", map[string]interface{}{"value": keyFile})
	b.write(t, "bindings/google_sales", map[string]interface{}{
		"kind":                    "google.service_account",
		"credentials_json_secret": "sa_key",
		"scopes":                  "https://www.googleapis.com/auth/drive.readonly,https://www.googleapis.com/auth/spreadsheets",
		"token_url":               ep.tokenURL(),
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
	require.Equal(t, 1, ep.count())
	header, claims, form := ep.last()
	require.Equal(t, map[string]interface{}{"alg": "RS256", "typ": "JWT", "kid": "kid-1"}, header)
	require.Equal(t, testSAEmail, claims["iss"])
	require.Equal(t, "https://www.googleapis.com/auth/drive.readonly https://www.googleapis.com/auth/spreadsheets", claims["scope"])
	require.Equal(t, ep.tokenURL(), claims["aud"])
	iat, exp := claimInt(t, claims, "iat"), claimInt(t, claims, "exp")
	require.Equal(t, clock.now().Add(-10*time.Second).Unix(), iat, "iat is backdated 10s from the plugin's clock")
	require.Equal(t, int64(3600), exp-iat, "Google accepts at most one hour")
	for _, absent := range []string{"sub", "target_audience", "jti"} {
		require.NotContains(t, claims, absent)
	}
	require.ElementsMatch(t, []string{"grant_type", "assertion"}, keysOf(form), "Google takes scopes in the assertion, not the form")

	// Cached: a second read does not go upstream.
	b.read(t, "token/google_sales", nil)
	require.Equal(t, 1, ep.count())

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
	clock := newFakeClock()
	logs := &syncBuffer{}
	b := newJWTTestBackend(t, clock, logs)
	keys := jwtKeys(t)
	ep := newJWTEndpoint(t, clock)
	ep.trust(map[string]crypto.PublicKey{"kid-1": &keys.rsa1.PublicKey})

	keyPEM := pemPKCS1(keys.rsa1)
	b.write(t, "bindings/gmail_support", map[string]interface{}{
		"kind":           "google.service_account",
		"client_email":   testSAEmail,
		"private_key":    keyPEM,
		"private_key_id": "kid-1",
		"subject":        "support@example.com",
		"scopes":         "https://www.googleapis.com/auth/gmail.readonly",
		"token_url":      ep.tokenURL(),
	})
	resp := b.read(t, "token/gmail_support", nil)
	require.Equal(t, "ya29.test-1", resp.Data["access_token"])
	header, claims, _ := ep.last()
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
	clock := newFakeClock()
	b := newJWTTestBackend(t, clock, &syncBuffer{})
	keys := jwtKeys(t)
	ep := newJWTEndpoint(t, clock)
	ep.trust(map[string]crypto.PublicKey{"kid-1": &keys.rsa1.PublicKey})

	const audience = "https://invoices-abc123-uc.a.run.app"
	b.write(t, "bindings/invoices_api", map[string]interface{}{
		"kind":             "google.service_account",
		"credentials_json": googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, pemPKCS8(t, keys.rsa1)),
		"target_audience":  audience,
		"token_url":        ep.tokenURL(),
	})
	resp := b.read(t, "token/invoices_api", nil)
	idTok, _ := resp.Data["access_token"].(string)
	require.Equal(t, 3, len(strings.Split(idTok, ".")), "the material's access_token is the ID token")
	require.Equal(t, audience, jwtClaim(t, idTok, "aud"))
	require.Equal(t, "Bearer", resp.Data["token_type"])
	// The expiry is the ID token's exp, not a default lifetime.
	require.Equal(t, clock.now().Add(30*time.Minute).UTC().Format(time.RFC3339), resp.Data["expires_at"])
	require.Equal(t, map[string]string{"Authorization": "Bearer " + idTok}, resp.Data["headers"])

	_, claims, form := ep.last()
	require.Equal(t, audience, claims["target_audience"])
	require.Equal(t, testSAEmail, claims["iss"])
	require.Equal(t, ep.tokenURL(), claims["aud"])
	require.NotContains(t, claims, "scope")
	require.Empty(t, form.Get("scope"))

	// A provider answer without an id_token is not a usable ID token answer.
	ep.setReply(func(w http.ResponseWriter) {
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

// ---------------------------------------------------------------- oauth2.jwt_bearer

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
			clock := newFakeClock()
			logs := &syncBuffer{}
			b := newJWTTestBackend(t, clock, logs)
			ep := newJWTEndpoint(t, clock)
			ep.trust(map[string]crypto.PublicKey{"svc-key-1": tc.pub})
			b.write(t, "bindings/partner_api", map[string]interface{}{
				"kind":        "oauth2.jwt_bearer",
				"private_key": tc.pem,
				"key_id":      "svc-key-1",
				"issuer":      "flowcred-client",
				"token_url":   ep.tokenURL(),
				"scopes":      "orders:read,orders:write",
			})
			resp := b.read(t, "token/partner_api", nil)
			require.Equal(t, "ya29.test-1", resp.Data["access_token"])

			header, claims, form := ep.last()
			require.Equal(t, tc.alg, header["alg"])
			require.Equal(t, "svc-key-1", header["kid"])
			require.Equal(t, "JWT", header["typ"])
			require.Equal(t, "flowcred-client", claims["iss"])
			require.Equal(t, "flowcred-client", claims["sub"], "subject defaults to the issuer")
			require.Equal(t, ep.tokenURL(), claims["aud"], "audience defaults to token_url")
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
	clock := newFakeClock()
	b := newJWTTestBackend(t, clock, &syncBuffer{})
	keys := jwtKeys(t)
	ep := newJWTEndpoint(t, clock)
	ep.trust(map[string]crypto.PublicKey{"": &keys.p256.PublicKey})
	b.write(t, "bindings/sf", map[string]interface{}{
		"kind":        "oauth2.jwt_bearer",
		"private_key": pemSEC1(t, keys.p256),
		"issuer":      "3MVG9-consumer-key",
		"subject":     "integration@example.com",
		"audience":    "https://login.example.com",
		"token_url":   ep.tokenURL(),
	})
	b.read(t, "token/sf", nil)
	header, claims, form := ep.last()
	require.NotContains(t, header, "kid", "no key_id: no kid header")
	require.Equal(t, "integration@example.com", claims["sub"])
	require.Equal(t, "https://login.example.com", claims["aud"])
	require.NotContains(t, form, "scope", "no scopes: no scope parameter")
	jti1 := claims["jti"]

	b.write(t, "bindings/sf/refresh", nil)
	_, claims, _ = ep.last()
	require.NotEqual(t, jti1, claims["jti"], "each assertion has its own jti")
}

// ---------------------------------------------------------------- rotation

func TestJWT_KeyRotation(t *testing.T) {
	for _, kind := range []string{"google.service_account", "oauth2.jwt_bearer"} {
		t.Run(kind, func(t *testing.T) {
			clock := newFakeClock()
			logs := &syncBuffer{}
			b := newJWTTestBackend(t, clock, logs)
			keys := jwtKeys(t)
			ep := newJWTEndpoint(t, clock)
			ep.trust(map[string]crypto.PublicKey{"k1": &keys.rsa1.PublicKey})

			oldPEM, newPEM := pemPKCS8(t, keys.rsa1), pemPKCS8(t, keys.rsa2)
			data := map[string]interface{}{"kind": kind, "private_key": oldPEM, "token_url": ep.tokenURL(), "scopes": "api"}
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
			ep.trust(map[string]crypto.PublicKey{"k2": &keys.rsa2.PublicKey})
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
			header, _, _ := ep.last()
			require.Equal(t, "k2", header["kid"], "signed with the new key (the endpoint verified it with the new public key)")
			st = b.read(t, "bindings/h", nil).Data["status"].(map[string]interface{})
			require.Equal(t, healthOK, st["health"])
			requireNoKeyMaterial(t, logs.String(), oldPEM, newPEM)
		})
	}
}

// ---------------------------------------------------------------- write-time checks

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

// A referenced secret is checked when material is issued: a 400 naming the
// field and the secret, health needs_reauth, and a retry once it is fixed.
func TestJWT_ReferencedSecretUnusable(t *testing.T) {
	clock := newFakeClock()
	logs := &syncBuffer{}
	b := newJWTTestBackend(t, clock, logs)
	keys := jwtKeys(t)
	ep := newJWTEndpoint(t, clock)
	ep.trust(map[string]crypto.PublicKey{"kid-1": &keys.rsa1.PublicKey})

	ecPEM := pemSEC1(t, keys.p256)
	badFile := googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, ecPEM)
	b.write(t, "secrets/sa_key", map[string]interface{}{"value": badFile})
	b.write(t, "bindings/g", map[string]interface{}{
		"kind": "google.service_account", "credentials_json_secret": "sa_key",
		"scopes": "https://www.googleapis.com/auth/cloud-platform", "token_url": ep.tokenURL(),
	})
	resp, err := b.do(t, logical.ReadOperation, "token/g", nil)
	require.NoError(t, err)
	require.True(t, resp.IsError())
	msg := resp.Error().Error()
	require.Contains(t, msg, `credentials_json_secret (secret "sa_key")`)
	require.Contains(t, msg, "Google service-account keys are RSA")
	requireNoKeyMaterial(t, msg, ecPEM)
	require.Equal(t, 0, ep.count(), "nothing was sent upstream")
	st := b.read(t, "bindings/g", nil).Data["status"].(map[string]interface{})
	require.Equal(t, healthNeedsReauth, st["health"])
	require.Contains(t, st["last_error"], `secret "sa_key"`)

	b.write(t, "secrets/sa_key", map[string]interface{}{"value": googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, pemPKCS8(t, keys.rsa1))})
	clock.advance(time.Second) // a later read, not one that waited on the failed refresh
	resp = b.read(t, "token/g", nil)
	require.Equal(t, "ya29.test-1", resp.Data["access_token"])

	// A private_key secret that is not a key at all.
	b.write(t, "secrets/pk", map[string]interface{}{"value": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"})
	b.write(t, "bindings/jb", map[string]interface{}{"kind": "oauth2.jwt_bearer", "private_key_secret": "pk", "issuer": "i", "token_url": ep.tokenURL()})
	resp, err = b.do(t, logical.ReadOperation, "token/jb", nil)
	require.NoError(t, err)
	require.Contains(t, resp.Error().Error(), `private_key_secret (secret "pk") is a PEM "PUBLIC KEY" block, not a private key`)
	requireNoKeyMaterial(t, logs.String(), ecPEM, badFile)
}

// ---------------------------------------------------------------- failures

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
			clock := newFakeClock()
			logs := &syncBuffer{}
			b := newJWTTestBackend(t, clock, logs)
			keys := jwtKeys(t)
			ep := newJWTEndpoint(t, clock)
			ep.trust(map[string]crypto.PublicKey{"kid-1": &keys.rsa1.PublicKey})
			body := tc.body
			ep.setReply(func(w http.ResponseWriter) { writeJSON(w, http.StatusBadRequest, body) })

			keyPEM := pemPKCS8(t, keys.rsa1)
			data := map[string]interface{}{
				"kind":             "google.service_account",
				"credentials_json": googleKeyFileJSON(t, testSAEmail, "kid-1", testSAClientID, keyPEM),
				"scopes":           "https://www.googleapis.com/auth/gmail.readonly",
				"token_url":        ep.tokenURL(),
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
			require.Equal(t, 1, ep.count())

			requireNoKeyMaterial(t, msg, keyPEM)
			requireNoKeyMaterial(t, st["last_error"].(string), keyPEM)
			require.Contains(t, logs.String(), "token refresh failed", "the failure was logged (and the sink works)")
			requireNoKeyMaterial(t, logs.String(), keyPEM)
		})
	}
}

func TestJWT_Bearer_ErrorHints(t *testing.T) {
	clock := newFakeClock()
	b := newJWTTestBackend(t, clock, &syncBuffer{})
	keys := jwtKeys(t)
	ep := newJWTEndpoint(t, clock)
	ep.trust(map[string]crypto.PublicKey{"other": &keys.rsa2.PublicKey})
	b.write(t, "bindings/jb", map[string]interface{}{
		"kind": "oauth2.jwt_bearer", "private_key": pemSEC1(t, keys.p256), "key_id": "k-ec",
		"issuer": "flowcred-client", "token_url": ep.tokenURL(), "scopes": "a",
	})
	resp, err := b.do(t, logical.ReadOperation, "token/jb", nil)
	require.NoError(t, err)
	msg := resp.Error().Error()
	require.Contains(t, msg, "needs re-authorization")
	require.Contains(t, msg, `does not trust this key for issuer "flowcred-client" (key_id "k-ec")`)

	// invalid_scope stays a configuration error for generic providers.
	ep.trust(map[string]crypto.PublicKey{"k-ec": &keys.p256.PublicKey})
	ep.setReply(func(w http.ResponseWriter) {
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
			clock := newFakeClock()
			b := newJWTTestBackend(t, clock, &syncBuffer{})
			keys := jwtKeys(t)
			ep := newJWTEndpoint(t, clock)
			ep.trust(map[string]crypto.PublicKey{"": &keys.p256.PublicKey})
			tc := tc
			ep.setReply(func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			b.write(t, "bindings/jb", map[string]interface{}{
				"kind": "oauth2.jwt_bearer", "private_key": pemSEC1(t, keys.p256), "issuer": "i", "token_url": ep.tokenURL(),
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
	clock := newFakeClock()
	b := newJWTTestBackend(t, clock, &syncBuffer{})
	keys := jwtKeys(t)
	ep := newJWTEndpoint(t, clock)
	ep.trust(map[string]crypto.PublicKey{"": &keys.p256.PublicKey})
	ep.setReply(func(w http.ResponseWriter) {
		writeJSON(w, http.StatusOK, `{"access_token":"opaque-1","expires_in":"1800","token_type":"bearer"}`)
	})
	b.write(t, "bindings/jb", map[string]interface{}{
		"kind": "oauth2.jwt_bearer", "private_key": pemSEC1(t, keys.p256), "issuer": "i", "token_url": ep.tokenURL(),
	})
	resp := b.read(t, "token/jb", nil)
	require.EqualValues(t, 1800, resp.Data["expires_in"])
	require.Equal(t, "Bearer", resp.Data["token_type"])

	// Some providers answer errors with 200.
	ep.setReply(func(w http.ResponseWriter) {
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
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	b.write(t, "config", map[string]interface{}{"http_timeout": "1s"})
	b.write(t, "bindings/jb", map[string]interface{}{
		"kind": "oauth2.jwt_bearer", "private_key": pemSEC1(t, keys.p256), "issuer": "i", "token_url": hang.URL + "/token",
	})
	_, err := b.do(t, logical.ReadOperation, "token/jb", nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "did not answer in time")
}

// ---------------------------------------------------------------- fuzz and benchmarks

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
