// Package integration runs the foundation's end-to-end tests on a real Vault
// dev server with the flowcred plugin registered and enabled as operators do
// it (internal/vaulttest). One server serves the whole package; each test
// uses its own handle and secret names. Run with scripts/test.sh, or set
// FLOWCRED_INTEGRATION=1, FLOWCRED_VAULT_BIN and FLOWCRED_PLUGIN_BIN.
package integration

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/leakcheck"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// srv is the package's shared server; nil when integration tests are off.
var srv *vaulttest.Server

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if !vaulttest.Enabled() {
		return m.Run() // every test skips through vaulttest.Require
	}
	s, err := vaulttest.New(vaulttest.Options{AuditFile: true, LogLevel: "trace"})
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: starting vault: %v\n", err)
		return 1
	}
	srv = s
	defer s.Close()
	code := m.Run()
	// Every secret value any test planted must be absent, in every
	// encoding, from the audit log (Vault HMACs request and response data)
	// and from the server log (which includes the plugin's trace logs).
	for _, f := range []leakcheck.Target{leakcheck.File("audit log", s.AuditPath), leakcheck.File("server log", s.LogPath)} {
		leaks, err := planted.Scan(f)
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "--- FAIL: TestMain: %v\n", err)
			code = 1
		case len(leaks) > 0:
			fmt.Fprintf(os.Stderr, "--- FAIL: TestMain: planted secret values found in plaintext:\n%s\n", leakcheck.Report(leaks))
			code = 1
		case code == 0:
			fmt.Fprintf(os.Stderr, "integration: %d planted secret values, none in the %s\n", planted.Len(), f.Where)
		}
	}
	return code
}

// env returns the shared server, skipping the test when integration tests
// are off, and prints the server log if the test fails.
func env(t *testing.T) *vaulttest.Server {
	t.Helper()
	vaulttest.Require(t)
	if srv == nil {
		t.Fatal("integration: the shared server did not start (see TestMain's output)")
	}
	srv.LogOnFailure(t)
	return srv
}

// planted holds every secret value the tests wrote, so that reads, the
// audit log and the server log can be searched for them (internal/leakcheck).
var planted = leakcheck.New()

// plant returns a fresh, unique secret value and remembers it.
func plant(label string) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return planted.Add(label, "fcsecret-"+label+"-"+hex.EncodeToString(b))
}

// requireNoPlanted fails if text contains any planted value (naming the
// values, never printing them).
func requireNoPlanted(t *testing.T, what, text string) {
	t.Helper()
	if leaks := planted.Find(text); len(leaks) > 0 {
		t.Fatalf("%s contains planted secret values (%s)", what, strings.Join(leaks, ", "))
	}
}

// mp is the plugin path under the mount: mp("token/a") = "flowcred/token/a".
func mp(path string) string { return srv.Mount + "/" + path }

func write(t *testing.T, path string, data map[string]interface{}) *api.Secret {
	t.Helper()
	s, err := srv.Client.Logical().Write(mp(path), data)
	require.NoError(t, err, "write %s", path)
	return s
}

func read(t *testing.T, path string) *api.Secret {
	t.Helper()
	s, err := srv.Client.Logical().Read(mp(path))
	require.NoError(t, err, "read %s", path)
	require.NotNil(t, s, "read %s: not found", path)
	return s
}

// readData reads path and returns its data, nil when it does not exist.
func readData(t *testing.T, path string) map[string]interface{} {
	t.Helper()
	s, err := srv.Client.Logical().Read(mp(path))
	require.NoError(t, err, "read %s", path)
	if s == nil {
		return nil
	}
	return s.Data
}

func list(t *testing.T, path string) []string {
	t.Helper()
	s, err := srv.Client.Logical().List(mp(path))
	require.NoError(t, err, "list %s", path)
	if s == nil {
		return nil
	}
	raw, _ := s.Data["keys"].([]interface{})
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		out = append(out, k.(string))
	}
	return out
}

func del(t *testing.T, path string) {
	t.Helper()
	_, err := srv.Client.Logical().Delete(mp(path))
	require.NoError(t, err, "delete %s", path)
}

// requireStatus checks that err is a Vault error answer with the given
// status whose message contains every want string, and returns the message.
func requireStatus(t *testing.T, err error, status int, want ...string) string {
	t.Helper()
	require.Error(t, err, "want a %d answer", status)
	var re *api.ResponseError
	require.True(t, errors.As(err, &re), "want a Vault error answer, got %T: %v", err, err)
	msg := strings.Join(re.Errors, "; ")
	require.Equal(t, status, re.StatusCode, "status of %s %s: %s", re.HTTPMethod, re.URL, msg)
	for _, w := range want {
		require.Contains(t, msg, w, "error message")
	}
	return msg
}

// rawGet reads a path with plain net/http and returns the status and the
// body exactly as Vault sent it.
func rawGet(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.Addr+"/v1/"+mp(path), nil)
	require.NoError(t, err)
	req.Header.Set("X-Vault-Token", srv.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// str returns data[key] as a string ("" when absent).
func str(data map[string]interface{}, key string) string {
	s, _ := data[key].(string)
	return s
}

// strMap converts a JSON object from a response into map[string]string.
func strMap(t *testing.T, v interface{}) map[string]string {
	t.Helper()
	m, ok := v.(map[string]interface{})
	require.True(t, ok, "want a JSON object, got %T (%v)", v, v)
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, ok := x.(string)
		require.True(t, ok, "value of %q: want a string, got %T", k, x)
		out[k] = s
	}
	return out
}

// strList converts a JSON array of strings from a response.
func strList(t *testing.T, v interface{}) []string {
	t.Helper()
	if v == nil {
		return nil
	}
	l, ok := v.([]interface{})
	require.True(t, ok, "want a JSON array, got %T (%v)", v, v)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}
