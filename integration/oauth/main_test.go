// Package oauth holds the OAuth2 integration suite: the flowcred plugin in a
// real Vault (internal/vaulttest) against a real OAuth2 server (panva's
// oidc-provider, internal/oauthtest), and Vault Agent rendering token reads.
//
// Run it with scripts/test.sh, or by hand:
//
//	FLOWCRED_INTEGRATION=1 FLOWCRED_VAULT_BIN=$(bash scripts/get-vault.sh) \
//	FLOWCRED_PLUGIN_BIN=/tmp/x/vault-plugin-flowcred go test -race ./integration/oauth/
//
// One dev Vault and one OAuth2 server are shared by the package (started by
// the first test that needs them, stopped by TestMain). Tests that count
// token requests at the shared OAuth2 server hold serialMu, so no other
// counting test runs at the same time; each uses its own handles and its own
// FaultProxy in front of the token endpoint, whose request counter counts
// exactly that test's upstream calls. The Vault Agent test mostly waits, so
// it runs in parallel with them on its own mount and its own OAuth2 server.
package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// The shared servers, started once by env.
var shared struct {
	once  sync.Once
	err   error
	vault *vaulttest.Server
	oauth *oauthtest.Server
}

// serialMu is held by every test that counts requests at the shared OAuth2
// server or changes its token lifetimes (SetTTL is server-wide).
var serialMu sync.Mutex

// defaultAccessTTL is the OAuth2 server's access-token lifetime outside the
// tests that shorten it.
const defaultAccessTTL = time.Hour

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.oauth != nil {
		_ = shared.oauth.Close()
	}
	if shared.vault != nil {
		shared.vault.Close()
	}
	os.Exit(code)
}

// env returns the shared Vault (plugin at flowcred/) and OAuth2 server,
// skipping the test when integration tests are off or node is missing.
func env(t *testing.T) (*vaulttest.Server, *oauthtest.Server) {
	t.Helper()
	vaulttest.Require(t)
	requireNode(t)
	shared.once.Do(func() {
		v, err := vaulttest.New(vaulttest.Options{})
		if err != nil {
			shared.err = fmt.Errorf("starting vault: %w", err)
			return
		}
		shared.vault = v
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		o, err := oauthtest.StartProcess(ctx, "")
		if err != nil {
			shared.err = fmt.Errorf("starting the oauth server: %w", err)
			return
		}
		shared.oauth = o
		// Background refresh runs from Vault's periodic tick at a moment
		// the tests do not control; on this mount it would add upstream
		// requests to the counts. The Agent test's own mount keeps it on.
		if _, err := v.Client.Logical().Write(v.Mount+"/config", map[string]interface{}{
			"background_refresh": false,
		}); err != nil {
			shared.err = fmt.Errorf("configuring %s/config: %w", v.Mount, err)
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	shared.vault.LogOnFailure(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("oauth server stderr (tail):\n%s", lastLines(shared.oauth.Stderr(), 40))
		}
	})
	return shared.vault, shared.oauth
}

func requireNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv(oauthtest.RequireNodeEnv) != "" {
			t.Fatalf("node not found on PATH (%v) and %s is set", err, oauthtest.RequireNodeEnv)
		}
		t.Skipf("node not found on PATH (%v); the OAuth2 integration tests need Node.js >= 20", err)
	}
}

// serial marks the test parallel (so the Agent test can overlap it) and
// then makes it wait for every other serial test. Call it first: the lock
// is released after the test's other cleanups.
func serial(t *testing.T) {
	t.Helper()
	t.Parallel()
	serialMu.Lock()
	t.Cleanup(serialMu.Unlock)
}

// setAccessTTL changes the OAuth2 server's access-token lifetime and puts
// the default back when the test ends. Only serial tests call it.
func setAccessTTL(t *testing.T, o *oauthtest.Server, d time.Duration) {
	t.Helper()
	if err := o.SetTTL(d, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := o.SetTTL(defaultAccessTTL, 0); err != nil {
			t.Errorf("restoring the access-token TTL: %v", err)
		}
	})
}

// newProxy puts a FaultProxy in front of o's token endpoint for one test.
func newProxy(t *testing.T, o *oauthtest.Server) *oauthtest.FaultProxy {
	t.Helper()
	p := oauthtest.NewFaultProxy(o.TokenURL)
	t.Cleanup(p.Close)
	return p
}

func totalRequests(st oauthtest.Stats) int {
	n := 0
	for _, c := range st.TokenRequests {
		n += c
	}
	return n
}

// writeBinding writes bindings/<handle> on mount and deletes it when the
// test ends (which also drops it from the plugin's background schedule).
func writeBinding(t *testing.T, c *api.Client, mount, handle string, data map[string]interface{}) {
	t.Helper()
	if _, err := c.Logical().Write(mount+"/bindings/"+handle, data); err != nil {
		t.Fatalf("writing binding %s: %v", handle, err)
	}
	t.Cleanup(func() {
		if _, err := c.Logical().Delete(mount + "/bindings/" + handle); err != nil {
			t.Logf("deleting binding %s: %v", handle, err)
		}
	})
}

func mustReadToken(t *testing.T, c *api.Client, mount, handle string, minTTL int) *api.Secret {
	t.Helper()
	sec, err := vaulttest.ReadToken(c, mount, handle, minTTL)
	if err != nil {
		t.Fatalf("reading token/%s (min_ttl=%d): %v", handle, minTTL, err)
	}
	return sec
}

// material is the data of a token read, parsed.
type material struct {
	Handle, Kind, AccessToken, TokenType string
	ExpiresAt                            time.Time
	ExpiresIn                            int64
	Headers                              map[string]string
}

// checkMaterial verifies the fields and lease of a token read and returns
// them parsed. maxLife bounds expires_in (the token's issued lifetime).
func checkMaterial(t *testing.T, sec *api.Secret, handle, kind string, maxLife time.Duration) material {
	t.Helper()
	d := sec.Data
	m := material{Headers: map[string]string{}}
	m.Handle, _ = d["handle"].(string)
	m.Kind, _ = d["kind"].(string)
	m.AccessToken, _ = d["access_token"].(string)
	m.TokenType, _ = d["token_type"].(string)
	if m.Handle != handle || m.Kind != kind {
		t.Errorf("handle, kind = %q, %q; want %q, %q", m.Handle, m.Kind, handle, kind)
	}
	if m.AccessToken == "" {
		t.Fatalf("token/%s: empty access_token", handle)
	}
	if m.TokenType != "Bearer" {
		t.Errorf("token_type = %q, want Bearer", m.TokenType)
	}
	raw, _ := d["expires_at"].(string)
	at, err := time.Parse(time.RFC3339, raw)
	if err != nil || !strings.HasSuffix(raw, "Z") {
		t.Fatalf("expires_at = %q: want RFC 3339 UTC (%v)", raw, err)
	}
	m.ExpiresAt = at
	m.ExpiresIn = jsonInt(t, d["expires_in"], "expires_in")
	if m.ExpiresIn <= 0 || m.ExpiresIn > int64(maxLife/time.Second) {
		t.Errorf("expires_in = %d, want in (0, %d]", m.ExpiresIn, int64(maxLife/time.Second))
	}
	// expires_at is whole seconds (truncated), expires_in whole seconds
	// left; both describe one instant within a couple of seconds.
	if diff := time.Until(at) - time.Duration(m.ExpiresIn)*time.Second; diff < -5*time.Second || diff > 5*time.Second {
		t.Errorf("expires_at %s and expires_in %d disagree by %s", raw, m.ExpiresIn, diff)
	}
	hdrs, ok := d["headers"].(map[string]interface{})
	if !ok {
		t.Fatalf("headers = %T, want a map", d["headers"])
	}
	for k, v := range hdrs {
		s, _ := v.(string)
		m.Headers[k] = s
	}
	if m.Headers["Authorization"] != "Bearer "+m.AccessToken {
		t.Errorf("headers.Authorization is not \"Bearer \" + access_token (len %d)", len(m.Headers["Authorization"]))
	}
	if sec.LeaseID == "" || sec.Renewable {
		t.Errorf("lease id %q renewable %v: want a non-renewable lease", sec.LeaseID, sec.Renewable)
	}
	if sec.LeaseDuration <= 0 || int64(sec.LeaseDuration) > m.ExpiresIn {
		t.Errorf("lease duration %d, want in (0, expires_in=%d]", sec.LeaseDuration, m.ExpiresIn)
	}
	return m
}

func jsonInt(t *testing.T, v interface{}, name string) int64 {
	t.Helper()
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			t.Fatalf("%s = %q: %v", name, n, err)
		}
		return i
	case float64:
		return int64(n)
	}
	t.Fatalf("%s = %v (%T), want a number", name, v, v)
	return 0
}

// readBinding returns bindings/<handle> data and its status object.
func readBinding(t *testing.T, c *api.Client, mount, handle string) (map[string]interface{}, map[string]interface{}) {
	t.Helper()
	sec, err := c.Logical().Read(mount + "/bindings/" + handle)
	if err != nil || sec == nil {
		t.Fatalf("reading binding %s: %v (nil: %v)", handle, err, sec == nil)
	}
	st, ok := sec.Data["status"].(map[string]interface{})
	if !ok {
		t.Fatalf("binding %s: status = %T, want an object", handle, sec.Data["status"])
	}
	return sec.Data, st
}

// responseStatus returns the HTTP status of a failed API call, or 0.
func responseStatus(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// rawGet reads a Vault path with plain net/http: the status as sent, and
// the decoded JSON body.
func rawGet(t *testing.T, v *vaulttest.Server, path string, q url.Values) (int, map[string]interface{}) {
	t.Helper()
	u := v.Addr + "/v1/" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", v.Token)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]interface{}{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("GET %s: %d with a body that is not JSON (%v)", path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, body
}

// jwtClaims decodes a JWT's payload without verifying it.
func jwtClaims(t *testing.T, tok string) map[string]interface{} {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT (%d parts)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decoding the JWT payload: %v", err)
	}
	claims := map[string]interface{}{}
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return claims
}

// waitPast sleeps until at has passed by margin.
func waitPast(at time.Time, margin time.Duration) {
	if d := time.Until(at.Add(margin)); d > 0 {
		time.Sleep(d)
	}
}

func containsString(list interface{}, s string) bool {
	l, _ := list.([]interface{})
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fingerprint identifies a token in failure messages without showing it.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return fmt.Sprintf("sha256:%x", sum[:6])
}
