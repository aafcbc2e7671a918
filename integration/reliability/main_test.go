// Package reliability is flowcred's reliability and security suite, run
// against a real Vault (internal/vaulttest) with the plugin, and a real
// OAuth2 server (internal/oauthtest):
//
//   - secret hygiene: no planted secret value in the server log at trace
//     level, the audit log, raw API answers, errors or lease data
//     (hygiene_test.go);
//   - ACLs with real tokens (acl_test.go);
//   - input limits against the real HTTP API (limits_test.go);
//   - rotation durability under plugin kills and Vault restarts on file
//     storage (soak_test.go; scripts/soak.sh N for a long run).
//
// Run it with scripts/test.sh, or by hand:
//
//	FLOWCRED_INTEGRATION=1 FLOWCRED_VAULT_BIN=$(bash scripts/get-vault.sh) \
//	FLOWCRED_PLUGIN_BIN=/tmp/x/vault-plugin-flowcred go test -race ./integration/reliability/
//
// Each test starts its own Vault (they differ in storage, log level and
// audit), so they run in parallel.
package reliability

import (
	"context"
	"encoding/json"
	"errors"
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

// sharedOAuth is one OAuth2 server for the tests that neither count
// requests at it nor change its settings. The soak starts its own.
var sharedOAuth struct {
	once sync.Once
	srv  *oauthtest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedOAuth.srv != nil {
		_ = sharedOAuth.srv.Close()
	}
	os.Exit(code)
}

// requireNode skips (or fails, with OAUTHTEST_REQUIRE_NODE) without node.
func requireNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv(oauthtest.RequireNodeEnv) != "" {
			t.Fatalf("node not found on PATH (%v) and %s is set", err, oauthtest.RequireNodeEnv)
		}
		t.Skipf("node not found on PATH (%v); these tests need Node.js >= 20 for the OAuth2 server", err)
	}
}

// oauthServer returns the package's shared OAuth2 server.
func oauthServer(t *testing.T) *oauthtest.Server {
	t.Helper()
	requireNode(t)
	sharedOAuth.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		sharedOAuth.srv, sharedOAuth.err = oauthtest.StartProcess(ctx, "")
	})
	if sharedOAuth.err != nil {
		t.Fatal(sharedOAuth.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("oauth server stderr (tail):\n%s", tail(sharedOAuth.srv.Stderr(), 40))
		}
	})
	return sharedOAuth.srv
}

// ownOAuthServer starts an OAuth2 server for one test (its counters are
// the test's alone).
func ownOAuthServer(t *testing.T) *oauthtest.Server {
	t.Helper()
	requireNode(t)
	return oauthtest.Start(t)
}

// vaultServer starts a Vault for the test with the plugin at flowcred/.
func vaultServer(t *testing.T, opts vaulttest.Options) *vaulttest.Server {
	t.Helper()
	vaulttest.Require(t)
	return vaulttest.Start(t, opts)
}

// gateProxy puts the one forwarding proxy (oauthtest.FaultProxy) in front of
// tokenURL for the test, detached: a request it forwards always completes at
// the provider, even when the client (the plugin) dies meanwhile; the
// provider has then rotated the refresh token whatever happens to the
// answer, as on a real network. The tests use its gate (CloseGate,
// OpenGate), HoldNext and Observe.
func gateProxy(t *testing.T, tokenURL string) *oauthtest.FaultProxy {
	t.Helper()
	p := oauthtest.NewFaultProxy(tokenURL)
	p.SetDetached(true)
	t.Cleanup(p.Close)
	return p
}

// tokenFields extracts the secret fields of a token response body.
func tokenFields(body []byte) (accessToken, refreshToken, idToken string) {
	var m struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
	}
	_ = json.Unmarshal(body, &m)
	return m.AccessToken, m.RefreshToken, m.IDToken
}

// respStatus is the HTTP status of a failed Vault call, 0 if it is not a
// Vault answer (connection refused, reset).
func respStatus(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// respMessage is the joined error messages of a Vault answer, or the error.
func respMessage(err error) string {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return strings.Join(re.Errors, "; ")
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func str(m map[string]interface{}, k string) string {
	s, _ := m[k].(string)
	return s
}

// bindingStatus reads bindings/<handle> and returns its status object.
func bindingStatus(t *testing.T, c *api.Client, mount, handle string) map[string]interface{} {
	t.Helper()
	sec, err := c.Logical().Read(mount + "/bindings/" + handle)
	if err != nil || sec == nil {
		t.Fatalf("reading binding %s: %v", handle, err)
	}
	st, ok := sec.Data["status"].(map[string]interface{})
	if !ok {
		t.Fatalf("binding %s: status = %T, want an object", handle, sec.Data["status"])
	}
	return st
}
