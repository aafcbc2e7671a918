package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/fakevault"
	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// Test secrets of the connect tests: constants, never real.
const (
	connectTestCode = "auth-code-for-cli-tests"
	connectTestRT   = "connected-refresh-token-for-cli-tests"
	connectTestAT   = "connected-access-token-for-cli-tests"
	connectTestDC   = "device-code-for-cli-tests"
)

// syncBuffer is an output the test reads while the command runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// connectCLI runs flowcred connect in the background.
type connectCLI struct {
	stdout, stderr syncBuffer
	done           chan int
}

func startConnect(t *testing.T, args ...string) *connectCLI {
	t.Helper()
	c := &connectCLI{done: make(chan int, 1)}
	go func() { c.done <- runConnect(args, &c.stdout, &c.stderr) }()
	return c
}

// await returns the first submatch of re in stdout once it appears.
func (c *connectCLI) await(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(c.stdout.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-c.done:
			t.Fatalf("flowcred connect exited %d before printing %s; stdout %q stderr %q", code, re, c.stdout.String(), c.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("flowcred connect printed no %s: stdout %q", re, c.stdout.String())
	return ""
}

// exit waits for the command's exit code.
func (c *connectCLI) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-c.done:
		return code
	case <-time.After(60 * time.Second):
		t.Fatalf("flowcred connect did not exit; stdout %q stderr %q", c.stdout.String(), c.stderr.String())
		return -1
	}
}

var (
	authURLLine  = regexp.MustCompile(`(?m)^  (http\S+)$`)
	userCodeLine = regexp.MustCompile(`(?m)^  ([A-Z0-9]{4}-[A-Z0-9]{4})$`)
)

// cliIdP is an authorization server for the CLI tests: the test plays the
// browser (it reads the PKCE challenge from the auth URL); the token
// endpoint checks the verifier and answers device polls as scripted.
type cliIdP struct {
	*httptest.Server
	mu        sync.Mutex
	challenge string
	device    []string // answers to device_code polls: "pending", "denied", "ok"
}

func newCLIIdP(t *testing.T) *cliIdP {
	f := &cliIdP{}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *cliIdP) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fail := func(code string) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":%q}`, code)
	}
	ok := func() {
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600,"refresh_token":%q,"scope":"read write"}`, connectTestAT, connectTestRT)
	}
	if r.URL.Path == "/device" {
		fmt.Fprintf(w, `{"device_code":%q,"user_code":"WDJB-MJHT","verification_uri":"https://idp.example/device","expires_in":600,"interval":1}`, connectTestDC)
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if r.PostForm.Get("code") != connectTestCode || base64.RawURLEncoding.EncodeToString(sum[:]) != f.challenge {
			fail("invalid_grant")
			return
		}
		ok()
	case "urn:ietf:params:oauth:grant-type:device_code":
		next := "ok"
		if len(f.device) > 0 {
			next, f.device = f.device[0], f.device[1:]
		}
		switch next {
		case "pending":
			fail("authorization_pending")
		case "denied":
			fail("access_denied")
		default:
			ok()
		}
	default:
		fail("unsupported_grant_type")
	}
}

// bindForConnect writes a binding without a refresh token at the fake Vault.
func bindForConnect(t *testing.T, fv *fakevault.Server, idp *cliIdP) {
	fv.Write(t, fv.Mount+"/bindings/crm", map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": "client-1", "client_secret": testClientSecret,
		"token_url": idp.URL + "/token", "authorization_url": idp.URL + "/authorize",
		"device_authorization_url": idp.URL + "/device", "scopes": "read,write",
	})
}

// browserGet is the browser following the provider's redirect.
func browserGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestConnectUsage(t *testing.T) {
	env(t, "http://127.0.0.1:1", "tok")
	for _, args := range [][]string{{}, {"a", "b"}, {"bad handle!"}, {"-port", "-1", "crm"}, {"-timeout", "0s", "crm"}, {"-device", "-port", "8250", "crm"}, {"-format", "yaml", "crm"}} {
		var out, errb bytes.Buffer
		if code := runConnect(args, &out, &errb); code != exitUsage || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("connect %q: exit %d, stderr %q; want 2 and one line", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := runConnect([]string{"crm"}, &out, &errb); code != exitVault || !strings.Contains(errb.String(), "127.0.0.1:1") {
		t.Errorf("connect with Vault unreachable: exit %d, stderr %q", code, errb.String())
	}
}

// TestConnectCode drives the code flow against the plugin (in a fake
// Vault): only state and code reach authorize/complete, the browser gets a
// page, a redirect with another state is ignored, a denied consent fails.
func TestConnectCode(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	idp := newCLIIdP(t)
	bindForConnect(t, fv, idp)
	var completes []map[string]interface{}
	var hookMu sync.Mutex
	fv.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/authorize/complete") {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			m := map[string]interface{}{}
			_ = json.Unmarshal(b, &m)
			hookMu.Lock()
			completes = append(completes, m)
			hookMu.Unlock()
		}
		return false
	})

	c := startConnect(t, "-no-browser", "-timeout", "30s", "crm")
	auth, err := url.Parse(c.await(t, authURLLine))
	if err != nil {
		t.Fatal(err)
	}
	q := auth.Query()
	idp.mu.Lock()
	idp.challenge = q.Get("code_challenge")
	idp.mu.Unlock()
	redirect := q.Get("redirect_uri")
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/callback$`).MatchString(redirect) || q.Get("code_challenge_method") != "S256" {
		t.Fatalf("auth URL redirect_uri %q, code_challenge_method %q", redirect, q.Get("code_challenge_method"))
	}
	if status, _ := browserGet(t, redirect+"?state=someone-else&code=x"); status != http.StatusBadRequest {
		t.Errorf("a redirect with another state: %d, want 400", status)
	}
	status, page := browserGet(t, redirect+"?"+url.Values{"state": {q.Get("state")}, "code": {connectTestCode}}.Encode())
	if status != http.StatusOK || !strings.Contains(page, "Connected") || strings.Contains(page, connectTestCode) {
		t.Fatalf("the browser's page: %d %q", status, page)
	}
	if code := c.exit(t); code != exitOK {
		t.Fatalf("exit %d; stderr %q", code, c.stderr.String())
	}
	out := c.stdout.String()
	if !strings.Contains(out, "Connected: handle crm is ok (granted scopes: read write)") {
		t.Errorf("stdout %q", out)
	}
	for _, s := range []string{connectTestCode, connectTestRT, connectTestAT, testClientSecret} {
		if strings.Contains(out+c.stderr.String(), s) {
			t.Errorf("the output carries a secret (%d characters)", len(s))
		}
	}
	hookMu.Lock()
	if len(completes) != 1 || len(completes[0]) != 2 || completes[0]["state"] != q.Get("state") || completes[0]["code"] != connectTestCode {
		t.Errorf("authorize/complete requests: %d, keys %d; want one with exactly state and code", len(completes), len(completes[0]))
	}
	hookMu.Unlock()

	t.Run("denied", func(t *testing.T) {
		c := startConnect(t, "-no-browser", "-timeout", "30s", "crm")
		auth, _ := url.Parse(c.await(t, authURLLine))
		q := auth.Query()
		status, page := browserGet(t, q.Get("redirect_uri")+"?"+url.Values{"state": {q.Get("state")}, "error": {"access_denied"}, "error_description": {"the user said no"}}.Encode())
		if status != http.StatusBadRequest || !strings.Contains(page, "access_denied") {
			t.Errorf("the browser's page: %d %q", status, page)
		}
		if code := c.exit(t); code != exitInvalid || !strings.Contains(c.stderr.String(), "the provider answered access_denied (the user said no)") {
			t.Errorf("exit %d, stderr %q", code, c.stderr.String())
		}
	})

	t.Run("timeout", func(t *testing.T) {
		c := startConnect(t, "-no-browser", "-timeout", "300ms", "crm")
		if code := c.exit(t); code != exitInvalid || !strings.Contains(c.stderr.String(), "-timeout passed") {
			t.Errorf("exit %d, stderr %q", code, c.stderr.String())
		}
	})

	t.Run("json", func(t *testing.T) {
		c := startConnect(t, "-no-browser", "-format", "json", "crm")
		deadline := time.Now().Add(10 * time.Second)
		for !authURLLine.MatchString(c.stderr.String()) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		m := authURLLine.FindStringSubmatch(c.stderr.String())
		if m == nil {
			t.Fatalf("no auth URL on stderr: %q", c.stderr.String())
		}
		auth, _ := url.Parse(m[1])
		q := auth.Query()
		idp.mu.Lock()
		idp.challenge = q.Get("code_challenge")
		idp.mu.Unlock()
		browserGet(t, q.Get("redirect_uri")+"?"+url.Values{"state": {q.Get("state")}, "code": {connectTestCode}}.Encode())
		var answer struct {
			Connected bool                   `json:"connected"`
			Status    map[string]interface{} `json:"status"`
		}
		if code := c.exit(t); code != exitOK || json.Unmarshal([]byte(c.stdout.String()), &answer) != nil || !answer.Connected || answer.Status["health"] != "ok" {
			t.Errorf("exit %d, stdout %q", code, c.stdout.String())
		}
	})
}

// TestConnectDevice: -device prints the user code and waits for the
// plugin's polling to end: ok, or the provider's refusal.
func TestConnectDevice(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	idp := newCLIIdP(t)
	bindForConnect(t, fv, idp)

	idp.mu.Lock()
	idp.device = []string{"pending", "ok"}
	idp.mu.Unlock()
	c := startConnect(t, "-device", "crm")
	if uc := c.await(t, userCodeLine); uc != "WDJB-MJHT" {
		t.Errorf("user code %q", uc)
	}
	if code := c.exit(t); code != exitOK || !strings.Contains(c.stdout.String(), "https://idp.example/device") || !strings.Contains(c.stdout.String(), "Connected: handle crm is ok") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, c.stdout.String(), c.stderr.String())
	}
	if strings.Contains(c.stdout.String()+c.stderr.String(), connectTestDC) {
		t.Error("the output carries the device code")
	}

	idp.mu.Lock()
	idp.device = []string{"denied"}
	idp.mu.Unlock()
	c = startConnect(t, "-device", "crm")
	if code := c.exit(t); code != exitInvalid || !strings.Contains(c.stderr.String(), "the device grant ended with access_denied") {
		t.Errorf("denied: exit %d, stderr %q", code, c.stderr.String())
	}
}

// TestIntegration_Connect runs flowcred connect against the real Vault with
// the plugin and the real OAuth2 server, approving at the server's
// development login and consent pages (and its device page).
func TestIntegration_Connect(t *testing.T) {
	vaulttest.Require(t)
	o := oauthtest.Start(t)
	v := vaulttest.Start(t, vaulttest.Options{})
	env(t, v.Addr, v.Token)
	if err := o.SetDeviceInterval(time.Second, 0); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"cli_code", "cli_device"} {
		if _, err := v.Client.Logical().Write(v.Mount+"/bindings/"+h, map[string]interface{}{
			"kind": "oauth2.refresh_token", "token_url": o.TokenURL, "auth_style": "header",
			"client_id": oauthtest.ClientConnect, "client_secret": oauthtest.SecretConnect,
			"authorization_url": o.AuthorizationURL, "device_authorization_url": o.DeviceAuthorizationURL,
			"scopes": "openid api",
		}); err != nil {
			t.Fatal(err)
		}
	}
	mount := "-mount=" + v.Mount

	c := startConnect(t, mount, "-no-browser", "cli_code")
	redirect, err := oauthtest.Approve(c.await(t, authURLLine))
	if err != nil {
		t.Fatal(err)
	}
	if status, page := browserGet(t, redirect); status != http.StatusOK || !strings.Contains(page, "Connected") {
		t.Fatalf("the CLI's page: %d %q", status, page)
	}
	if code := c.exit(t); code != exitOK || !strings.Contains(c.stdout.String(), "Connected: handle cli_code is ok (granted scopes: openid api)") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, c.stdout.String(), c.stderr.String())
	}

	printed := c.stdout.String() + c.stderr.String()
	c = startConnect(t, mount, "-device", "cli_device")
	if err := o.ApproveDevice(c.await(t, userCodeLine)); err != nil {
		t.Fatal(err)
	}
	if code := c.exit(t); code != exitOK || !strings.Contains(c.stdout.String(), o.DeviceURL) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, c.stdout.String(), c.stderr.String())
	}

	for _, h := range []string{"cli_code", "cli_device"} {
		sec, err := vaulttest.ReadToken(v.Client, v.Mount, h, 0)
		if err != nil || sec.Data["access_token"] == "" {
			t.Fatalf("token/%s after connect: %v", h, err)
		}
	}
	// Neither run printed a secret the server issued.
	printed += c.stdout.String() + c.stderr.String()
	issued, err := o.Issued(oauthtest.ClientConnect)
	if err != nil {
		t.Fatal(err)
	}
	if len(issued) < 4 {
		t.Errorf("the server lists %d tokens and codes issued, want at least 4", len(issued))
	}
	for _, it := range issued {
		if strings.Contains(printed, it.Value) {
			t.Errorf("flowcred connect printed a %s", it.Kind)
		}
	}
}
