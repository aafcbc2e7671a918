package reliability

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/leakcheck"
	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// hygiene drives a Vault at trace level with a file audit device and
// remembers every secret it plants or learns and every answer it sees.
type hygiene struct {
	t *testing.T
	v *vaulttest.Server
	// all holds every secret value: inputs and issued tokens.
	all *leakcheck.Set
	// inputs holds the secret inputs (client secrets, refresh tokens,
	// private keys): they must not appear even in a token read.
	inputs *leakcheck.Set
	// seen are raw answers and error messages, scanned against all;
	// tokenReads are token/<h> answers, scanned against inputs.
	mu         sync.Mutex
	seen       []leakcheck.Target
	tokenReads []leakcheck.Target
	leases     []string
	http       *http.Client
}

func newHygiene(t *testing.T, v *vaulttest.Server) *hygiene {
	return &hygiene{t: t, v: v, all: leakcheck.New(), inputs: leakcheck.New(), http: &http.Client{Timeout: time.Minute}}
}

// plant returns a fresh secret value and remembers it as an input.
func (h *hygiene) plant(name string) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		h.t.Fatal(err)
	}
	return h.input(name, "fc-"+strings.ReplaceAll(name, " ", "-")+"-"+hex.EncodeToString(b))
}

// served returns a fresh secret value that token reads serve as is (an
// api_token's token): it is checked everywhere else.
func (h *hygiene) served(name string) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		h.t.Fatal(err)
	}
	return h.all.Add(name, "fc-"+strings.ReplaceAll(name, " ", "-")+"-"+hex.EncodeToString(b))
}

// input remembers a secret input value under name.
func (h *hygiene) input(name, v string) string {
	h.inputs.Add(name, v)
	return h.all.Add(name, v)
}

// issued remembers a token the provider issued.
func (h *hygiene) issued(name, v string) {
	h.all.Add(name, v)
}

// do sends a request with the root token and returns the status and the
// raw body, which is remembered for the scan.
func (h *hygiene) do(method, path string, body interface{}) (int, string) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.v.Addr+"/v1/"+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", h.v.Token)
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if !strings.HasPrefix(path, h.v.Mount+"/token/") || resp.StatusCode != http.StatusOK {
		h.mu.Lock()
		h.seen = append(h.seen, leakcheck.Text(fmt.Sprintf("%s %s answer (%d)", method, path, resp.StatusCode), string(b)))
		h.mu.Unlock()
	}
	return resp.StatusCode, string(b)
}

func (h *hygiene) mount(p string) string { return h.v.Mount + "/" + p }

// ok sends a request that must succeed and returns its data.
func (h *hygiene) ok(method, path string, body interface{}) map[string]interface{} {
	h.t.Helper()
	status, raw := h.do(method, h.mount(path), body)
	if status != http.StatusOK && status != http.StatusNoContent {
		h.t.Fatalf("%s %s: %d: %s", method, path, status, errorsOf(raw))
	}
	if status == http.StatusNoContent {
		return nil
	}
	var out struct {
		Data     map[string]interface{} `json:"data"`
		Warnings []string               `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return out.Data
}

// fails sends a request that must fail with status and returns the message.
func (h *hygiene) fails(method, path string, body interface{}, status int, want string) string {
	h.t.Helper()
	got, raw := h.do(method, h.mount(path), body)
	msg := errorsOf(raw)
	if got != status || !strings.Contains(msg, want) {
		h.t.Fatalf("%s %s: %d %q, want %d containing %q", method, path, got, msg, status, want)
	}
	return msg
}

func errorsOf(raw string) string {
	var out struct {
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal([]byte(raw), &out)
	return strings.Join(out.Errors, "; ")
}

// token reads token/<handle>, remembers the issued token and the lease,
// and returns data and warnings.
func (h *hygiene) token(handle string, minTTL int) (map[string]interface{}, []string) {
	h.t.Helper()
	path := h.mount("token/" + handle)
	if minTTL > 0 {
		path += "?min_ttl=" + strconv.Itoa(minTTL)
	}
	status, raw := h.do(http.MethodGet, path, nil)
	if status != http.StatusOK {
		h.t.Fatalf("token/%s: %d: %s", handle, status, errorsOf(raw))
	}
	var out struct {
		LeaseID  string                 `json:"lease_id"`
		Data     map[string]interface{} `json:"data"`
		Warnings []string               `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		h.t.Fatal(err)
	}
	tok := str(out.Data, "access_token")
	if tok == "" || out.LeaseID == "" {
		h.t.Fatalf("token/%s: access_token or lease_id missing", handle)
	}
	h.mu.Lock()
	h.tokenReads = append(h.tokenReads, leakcheck.Text("token/"+handle+" answer", raw))
	h.leases = append(h.leases, out.LeaseID)
	h.mu.Unlock()
	if str(out.Data, "kind") != "api_token" {
		h.issued("access token of "+handle, tok)
	}
	return out.Data, out.Warnings
}

// note remembers a text seen by the test (a warning, an error message).
func (h *hygiene) note(where, text string) {
	h.mu.Lock()
	h.seen = append(h.seen, leakcheck.Text(where, text))
	h.mu.Unlock()
}

func rsaPEM(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func ecKeyPEM(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// TestSecretHygiene exercises every kind that runs on loopback, their
// failures, and binding, secret and config reads and errors on a Vault at
// trace log level with a file audit device, then requires that no planted
// or issued secret value appears in the server log (which carries the
// plugin's log), the audit log, any raw answer other than the token read
// that serves it, any error or warning, or any lease lookup.
func TestSecretHygiene(t *testing.T) {
	t.Parallel()
	v := vaultServer(t, vaulttest.Options{LogLevel: "trace", AuditFile: true})
	o := oauthServer(t)
	h := newHygiene(t, v)
	unique := strconv.FormatInt(time.Now().UnixNano(), 36)

	// Provider-side secrets: the static clients' secrets, and every refresh
	// and access token that passes through the recording proxy.
	h.input("rt-basic client_secret", oauthtest.SecretRTBasic)
	h.input("rt-post client_secret", oauthtest.SecretRTPost)
	h.input("rt-rotate client_secret", oauthtest.SecretRTRotate)
	h.input("cc-client client_secret", oauthtest.SecretCC)
	p := gateProxy(t, o.TokenURL)
	var rotated int
	var obsMu sync.Mutex
	p.Observe(func(form url.Values, status int, body []byte) {
		obsMu.Lock()
		defer obsMu.Unlock()
		at, rt, id := tokenFields(body)
		h.issued("access token seen at the proxy", at)
		h.issued("ID token seen at the proxy", id)
		if rt != "" && rt != form.Get("refresh_token") {
			rotated++
			h.input(fmt.Sprintf("rotated refresh token #%d", rotated), rt)
		}
	})

	h.ok("PUT", "config", map[string]interface{}{"http_timeout": 2, "refresh_margin": 60})
	h.fails("PUT", "config", map[string]interface{}{"http_timeout": 0}, 400, "http_timeout")
	h.ok("GET", "config", nil)

	// api_token, inline and by reference.
	h.ok("PUT", "bindings/hyg_api", map[string]interface{}{
		"kind": "api_token", "token": h.served("api token inline"), "extra_headers": map[string]string{"x-team": "sales"}})
	h.ok("PUT", "secrets/hyg_api_token", map[string]interface{}{"value": h.served("api token stored")})
	h.ok("PUT", "bindings/hyg_api_ref", map[string]interface{}{
		"kind": "api_token", "token_secret": "hyg_api_token", "header": "X-Api-Key", "scheme": ""})

	// oauth2.refresh_token: a plain client, and a rotating one refreshed a
	// few times (each rotated refresh token is learned at the proxy).
	rtBasic := h.input("rt-basic refresh token", o.Mint(t, oauthtest.ClientRTBasic))
	h.ok("PUT", "bindings/hyg_rt", map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": oauthtest.ClientRTBasic, "client_secret": oauthtest.SecretRTBasic,
		"refresh_token": rtBasic, "token_url": p.TokenURL(), "auth_style": "header"})
	h.ok("PUT", "bindings/hyg_rotate", map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": oauthtest.ClientRTRotate, "client_secret": oauthtest.SecretRTRotate,
		"refresh_token": h.input("rt-rotate refresh token", o.Mint(t, oauthtest.ClientRTRotate)), "token_url": p.TokenURL()})

	// google.oauth2 with a token_url, client secret by reference.
	h.ok("PUT", "secrets/hyg_google_cs", map[string]interface{}{"value": oauthtest.SecretRTPost})
	h.ok("PUT", "bindings/hyg_google", map[string]interface{}{
		"kind": "google.oauth2", "client_id": oauthtest.ClientRTPost, "client_secret_secret": "hyg_google_cs",
		"refresh_token": h.input("rt-post refresh token", o.Mint(t, oauthtest.ClientRTPost)),
		"token_url":     p.TokenURL(), "scopes": "openid,api"})

	// oauth2.client_credentials, opaque and JWT (resource) access tokens.
	h.ok("PUT", "bindings/hyg_cc", map[string]interface{}{
		"kind": "oauth2.client_credentials", "client_id": oauthtest.ClientCC, "client_secret": oauthtest.SecretCC,
		"token_url": p.TokenURL(), "scopes": "api"})
	h.ok("PUT", "bindings/hyg_cc_jwt", map[string]interface{}{
		"kind": "oauth2.client_credentials", "client_id": oauthtest.ClientCC, "client_secret": oauthtest.SecretCC,
		"token_url": p.TokenURL(), "token_params": map[string]string{"resource": "https://api.flowcred.test/"}})

	// google.service_account (key file, access and ID token) and
	// oauth2.jwt_bearer (EC key) against the JWT-bearer grant. The
	// assertion's audience is the provider's own token URL, so these go
	// to it directly.
	saKey, saPEM := rsaPEM(t)
	h.input("service account private key", saPEM)
	email := "hyg-" + unique + "@flowcred-test.iam.gserviceaccount.com"
	if err := o.RegisterJWTIssuer(email, "hyg-kid", saKey, true); err != nil {
		t.Fatal(err)
	}
	keyFile, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "flowcred-test", "private_key_id": "hyg-kid", "private_key": saPEM,
		"client_email": email, "client_id": "1234567890", "token_uri": "https://oauth2.googleapis.com/token"})
	h.input("service account key file", string(keyFile))
	h.ok("PUT", "secrets/hyg_sa_key", map[string]interface{}{"value": string(keyFile)})
	h.ok("PUT", "bindings/hyg_sa", map[string]interface{}{
		"kind": "google.service_account", "credentials_json_secret": "hyg_sa_key", "scopes": "api", "token_url": o.TokenURL})
	h.ok("PUT", "bindings/hyg_sa_id", map[string]interface{}{
		"kind": "google.service_account", "credentials_json": string(keyFile),
		"target_audience": "https://invoices.flowcred.test", "token_url": o.TokenURL})
	ecKey, ecPEM := ecKeyPEM(t)
	h.input("jwt_bearer EC private key", ecPEM)
	issuer := "hyg-issuer-" + unique
	if err := o.RegisterJWTIssuer(issuer, "hyg-ec", ecKey, true); err != nil {
		t.Fatal(err)
	}
	h.ok("PUT", "bindings/hyg_jwt", map[string]interface{}{
		"kind": "oauth2.jwt_bearer", "private_key": ecPEM, "key_id": "hyg-ec", "issuer": issuer,
		"audience": o.TokenURL, "token_url": o.TokenURL, "scopes": "api"})

	// Token reads, and refreshes.
	for _, handle := range []string{"hyg_api", "hyg_api_ref", "hyg_rt", "hyg_rotate", "hyg_google", "hyg_cc", "hyg_cc_jwt", "hyg_sa", "hyg_sa_id", "hyg_jwt"} {
		h.token(handle, 0)
		h.token(handle, 0) // cached
	}
	for i := 0; i < 3; i++ {
		h.token("hyg_rotate", 7200)
		h.ok("PUT", "bindings/hyg_rotate/refresh", nil)
	}
	h.token("hyg_rotate", 0) // the last rotated refresh token is stored; use it once more
	h.token("hyg_rotate", 7200)
	if rotated < 7 {
		t.Fatalf("the proxy saw %d rotated refresh tokens, want at least 7", rotated)
	}

	// Failures. A revoked refresh token: needs_reauth, a 400 on refresh
	// and on a read that needs a new token.
	revoked := h.input("revoked refresh token", o.Mint(t, oauthtest.ClientRTBasic))
	h.ok("PUT", "bindings/hyg_revoked", map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": oauthtest.ClientRTBasic, "client_secret": oauthtest.SecretRTBasic,
		"refresh_token": revoked, "token_url": p.TokenURL()})
	h.token("hyg_revoked", 0)
	if err := o.Revoke(revoked); err != nil {
		t.Fatal(err)
	}
	h.fails("PUT", "bindings/hyg_revoked/refresh", nil, 400, "re-authorization")
	h.fails("GET", "token/hyg_revoked?min_ttl=7200", nil, 400, "re-authorization")
	if st := h.ok("GET", "bindings/hyg_revoked", nil)["status"].(map[string]interface{}); st["health"] != "needs_reauth" {
		t.Errorf("revoked: status %v, want needs_reauth", st)
	}
	_, warnings := h.token("hyg_revoked", 0) // the cached token, with a warning
	h.note("hyg_revoked warnings", strings.Join(warnings, "\n"))

	// An unknown signing key: the JWT-bearer grant refuses the assertion.
	_, otherPEM := ecKeyPEM(t)
	h.input("unregistered EC private key", otherPEM)
	h.ok("PUT", "bindings/hyg_jwt_bad", map[string]interface{}{
		"kind": "oauth2.jwt_bearer", "private_key": otherPEM, "key_id": "hyg-ec", "issuer": issuer,
		"audience": o.TokenURL, "token_url": o.TokenURL, "scopes": "api"})
	h.fails("GET", "token/hyg_jwt_bad", nil, 400, "handle \"hyg_jwt_bad\"")

	// A provider answering 503: the cached token with a warning, a 502
	// without one.
	fp := oauthtest.NewFaultProxy(o.TokenURL)
	t.Cleanup(fp.Close)
	for _, handle := range []string{"hyg_503", "hyg_503_cold"} {
		h.ok("PUT", "bindings/"+handle, map[string]interface{}{
			"kind": "oauth2.refresh_token", "client_id": oauthtest.ClientRTPost, "client_secret": oauthtest.SecretRTPost,
			"refresh_token": h.input(handle+" refresh token", o.Mint(t, oauthtest.ClientRTPost)),
			"token_url":     fp.TokenURL(), "auth_style": "params"})
	}
	h.token("hyg_503", 0)
	fp.SetMode(oauthtest.Unavailable())
	_, warnings = h.token("hyg_503", 7200)
	if len(warnings) == 0 || !strings.Contains(warnings[0], "degraded") {
		t.Errorf("503 with a cached token: warnings %q, want degraded", warnings)
	}
	h.note("hyg_503 warnings", strings.Join(warnings, "\n"))
	h.fails("GET", "token/hyg_503_cold", nil, 502, "hyg_503_cold")

	// Refused input carrying secrets: the errors must not echo them.
	h.fails("PUT", "bindings/hyg_bad", map[string]interface{}{
		"kind": "api_token", "token": h.plant("refused api token"), "subject": "x"}, 400, "subject")
	h.fails("PUT", "bindings/hyg_bad", map[string]interface{}{
		"kind": "oauth2.jwt_bearer", "private_key": "not a key " + h.plant("not a pem"), "issuer": "i", "token_url": o.TokenURL}, 400, "private_key")
	h.fails("PUT", "bindings/hyg_bad", map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": "c", "client_secret": h.plant("nul secret") + "\x00",
		"refresh_token": h.plant("refused refresh token"), "token_url": o.TokenURL}, 400, "client_secret")
	h.fails("PUT", "bindings/hyg_bad", map[string]interface{}{
		"kind": "google.service_account", "credentials_json": `{"type":"service_account","private_key":"` + h.plant("bad key file") + `"}`,
		"scopes": "api"}, 400, "credentials_json")
	h.fails("PUT", "secrets/hyg_big", map[string]interface{}{"value": h.plant("oversized secret") + strings.Repeat("x", 70<<10)}, 400, "value")
	h.fails("DELETE", "secrets/hyg_sa_key", nil, 400, "hyg_sa")
	h.fails("GET", "token/hyg_nobody", nil, 404, "hyg_nobody") // design.md, "Errors"

	// Every binding, secret and config read, and the lists.
	for _, handle := range []string{"hyg_api", "hyg_api_ref", "hyg_rt", "hyg_rotate", "hyg_google", "hyg_cc", "hyg_cc_jwt",
		"hyg_sa", "hyg_sa_id", "hyg_jwt", "hyg_revoked", "hyg_jwt_bad", "hyg_503", "hyg_503_cold"} {
		h.ok("GET", "bindings/"+handle, nil)
	}
	for _, name := range []string{"hyg_api_token", "hyg_google_cs", "hyg_sa_key"} {
		h.ok("GET", "secrets/"+name, nil)
	}
	h.ok("LIST", "bindings", nil)
	h.ok("LIST", "secrets", nil)
	h.ok("GET", "config", nil)

	// Leases: the whole lookup answer of each, then revoke them (the
	// plugin's revoke handler sees the lease's internal data).
	for _, id := range h.leases {
		status, raw := h.do("PUT", "sys/leases/lookup", map[string]string{"lease_id": id})
		if status != http.StatusOK {
			t.Fatalf("sys/leases/lookup %s: %d %s", id, status, errorsOf(raw))
		}
	}
	for _, id := range h.leases[:4] {
		if status, raw := h.do("PUT", "sys/leases/revoke", map[string]string{"lease_id": id}); status != http.StatusNoContent {
			t.Fatalf("revoking %s: %d %s", id, status, errorsOf(raw))
		}
	}

	// The logs are complete and say something: the server log carries the
	// plugin's debug lines and refresh failures, the audit log every call.
	logText, err := os.ReadFile(v.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"token refreshed", "token refresh failed", "[TRACE]"} {
		if !strings.Contains(string(logText), want) {
			t.Errorf("the server log has no %q line: the scan would prove little", want)
		}
	}
	audit, err := os.ReadFile(v.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hmac-sha256:", h.mount("token/hyg_rotate"), h.mount("bindings/hyg_revoked/refresh"), "sys/leases/lookup"} {
		if !strings.Contains(string(audit), want) {
			t.Errorf("the audit log has no %q", want)
		}
	}

	// A control: values that do belong in both logs (a handle name in
	// request paths and log lines) are found there, so the scan below reads
	// what it should.
	control := leakcheck.New()
	control.Add("handle name hyg_revoked", "hyg_revoked")
	for _, f := range []leakcheck.Target{leakcheck.File("server log", v.LogPath), leakcheck.File("audit log", v.AuditPath)} {
		if found, err := control.Scan(f); err != nil || len(found) != 1 {
			t.Errorf("control: the handle name not found in the %s (%v): the scan is blind", f.Where, err)
		}
	}

	h.mu.Lock()
	targets := append([]leakcheck.Target{
		leakcheck.File("vault server log (trace, with the plugin's log)", v.LogPath),
		leakcheck.File("audit log", v.AuditPath),
	}, h.seen...)
	tokenReads := append([]leakcheck.Target(nil), h.tokenReads...)
	h.mu.Unlock()
	t.Logf("%d secret values planted or learned (%d inputs, %d rotated refresh tokens), %d token reads, %d leases",
		h.all.Len(), h.inputs.Len(), rotated, len(tokenReads), len(h.leases))
	h.all.RequireNone(t, targets...)
	h.inputs.RequireNone(t, tokenReads...)
}
