package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

// connectorExamples are the non-Go connectors of docs/connectors.md, each
// with the commands it needs.
var connectorExamples = []struct {
	name  string
	argv  []string // run in examples/connectors
	needs []string
}{
	{"curl", []string{"bash", "flowcred.sh"}, []string{"bash", "curl", "jq"}},
	{"node", []string{"node", "flowcred.mjs"}, []string{"node"}},
	{"python", []string{"python3", "flowcred.py"}, []string{"python3"}},
}

// apiRecorder is a connector's API: it records the credential headers of
// each request and answers 200 when they are the material's.
type apiRecorder struct {
	srv       *httptest.Server
	want      map[string]string
	mu        sync.Mutex
	got, good int
}

func newAPIRecorder(t *testing.T, want map[string]string) *apiRecorder {
	a := &apiRecorder{want: want}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := true
		for k, v := range a.want {
			ok = ok && r.Header.Get(k) == v
		}
		a.mu.Lock()
		a.got++
		if ok {
			a.good++
		}
		a.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *apiRecorder) counts() (got, good int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got, a.good
}

// TestConnectorExamples runs examples/connectors (curl and jq, Node fetch,
// Python's standard library) against the real Vault and plugin, with the
// connector policy's token: a good handle (headers injected, cached until
// 90% of the lease, read again after), an unbound handle (404 branch) and a
// handle whose grant the provider refuses (needs_reauth branch). A missing
// interpreter skips its example.
func TestConnectorExamples(t *testing.T) {
	s := env(t)
	dir, err := filepath.Abs("../examples/connectors")
	require.NoError(t, err)

	tok := plant("conn_ex_token")
	write(t, "bindings/conn_ex_good", map[string]interface{}{
		"kind": "api_token", "token": tok, "ttl": 3,
		"extra_headers": map[string]interface{}{"X-Team": "connectors"},
	})
	write(t, "bindings/conn_ex_long", map[string]interface{}{"kind": "api_token", "token": tok, "ttl": "1h"})
	// A provider that refuses the grant: the first read finds no cached
	// token, so the plugin answers 400 "needs_reauth: ...".
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
	}))
	t.Cleanup(idp.Close)
	write(t, "bindings/conn_ex_reauth", map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": "conn-ex-client", "client_secret": plant("conn_ex_client_secret"),
		"refresh_token": plant("conn_ex_refresh_token"), "token_url": idp.URL + "/token",
	})
	t.Cleanup(func() {
		for _, h := range []string{"conn_ex_good", "conn_ex_long", "conn_ex_reauth"} {
			_, _ = s.Client.Logical().Delete(mp("bindings/" + h))
		}
	})

	// A second mount of the plugin with token_leases=false: answers carry
	// data.ttl instead of a lease.
	mounts, err := s.Client.Sys().ListMounts()
	require.NoError(t, err)
	main, ok := mounts[s.Mount+"/"]
	require.True(t, ok, "mount %s not listed", s.Mount)
	unleased := s.Mount + "-conn-ex-unleased"
	require.NoError(t, s.Client.Sys().Mount(unleased, &api.MountInput{Type: main.Type, Config: api.MountConfigInput{PluginVersion: main.PluginVersion}}))
	t.Cleanup(func() { _ = s.Client.Sys().Unmount(unleased) })
	_, err = s.Client.Logical().Write(unleased+"/config", map[string]interface{}{"token_leases": false})
	require.NoError(t, err)
	_, err = s.Client.Logical().Write(unleased+"/bindings/conn_ex_good", map[string]interface{}{
		"kind": "api_token", "token": tok, "ttl": 3,
		"extra_headers": map[string]interface{}{"X-Team": "connectors"},
	})
	require.NoError(t, err)

	// The connector's token can read these handles' tokens and nothing else.
	require.NoError(t, s.Client.Sys().PutPolicy("conn-ex", `path "`+mp("token/conn_ex_*")+`" { capabilities = ["read"] }
path "`+unleased+`/token/conn_ex_*" { capabilities = ["read"] }`))
	sec, err := s.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"conn-ex"}, TTL: "10m"})
	require.NoError(t, err)
	vaultEnv := []string{"VAULT_ADDR=" + s.Addr, "VAULT_TOKEN=" + sec.Auth.ClientToken, "FLOWCRED_MOUNT=" + s.Mount}

	for _, ex := range connectorExamples {
		t.Run(ex.name, func(t *testing.T) {
			for _, c := range ex.needs {
				if _, err := exec.LookPath(c); err != nil {
					t.Skipf("%s not found in PATH: the %s example needs %s", c, ex.name, strings.Join(ex.needs, ", "))
				}
			}
			run := func(t *testing.T, env []string, args ...string) (string, int) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, ex.argv[0], append(ex.argv[1:], args...)...)
				cmd.Dir = dir
				cmd.Env = append(append(exampleEnv(), vaultEnv...), env...)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				code := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					code = ee.ExitCode()
				} else {
					require.NoError(t, err, "running %s", ex.name)
				}
				for what, text := range map[string]string{"stdout": string(out), "stderr": stderr.String()} {
					requireNoPlanted(t, ex.name+" "+what, text)
					require.NotContains(t, text, sec.Auth.ClientToken, "the %s example's %s carries the Vault token", ex.name, what)
				}
				if stderr.Len() > 0 {
					t.Logf("%s stderr: %s", ex.name, stderr.String())
				}
				return string(out), code
			}

			t.Run("good handle: cached until 90% of the lease, then read again", func(t *testing.T) {
				a := newAPIRecorder(t, map[string]string{"Authorization": "Bearer " + tok, "X-Team": "connectors"})
				// A 3s lease: the call at 1.5s is served from the cache, the one at 3s reads again.
				out, code := run(t, []string{"FLOWCRED_CALLS=3", "FLOWCRED_CALL_INTERVAL=1.5"}, "conn_ex_good", a.srv.URL)
				require.Equal(t, 0, code, out)
				require.Equal(t, "call 1: HTTP 200\ncall 2: HTTP 200\ncall 3: HTTP 200\nok handle=conn_ex_good vault_reads=2 calls=3\n", out)
				got, good := a.counts()
				require.Equal(t, 3, got)
				require.Equal(t, 3, good, "every call carries the material's headers")
			})

			t.Run("no lease (token_leases=false): cached until 90% of data.ttl", func(t *testing.T) {
				a := newAPIRecorder(t, map[string]string{"Authorization": "Bearer " + tok, "X-Team": "connectors"})
				out, code := run(t, []string{"FLOWCRED_MOUNT=" + unleased, "FLOWCRED_CALLS=3", "FLOWCRED_CALL_INTERVAL=1.5"}, "conn_ex_good", a.srv.URL)
				require.Equal(t, 0, code, out)
				require.Equal(t, "call 1: HTTP 200\ncall 2: HTTP 200\ncall 3: HTTP 200\nok handle=conn_ex_good vault_reads=2 calls=3\n", out)
			})

			t.Run("good handle: one read for many calls", func(t *testing.T) {
				a := newAPIRecorder(t, map[string]string{"Authorization": "Bearer " + tok})
				out, code := run(t, []string{"FLOWCRED_CALLS=5"}, "conn_ex_long", a.srv.URL)
				require.Equal(t, 0, code, out)
				require.True(t, strings.HasSuffix(out, "ok handle=conn_ex_long vault_reads=1 calls=5\n"), out)
			})

			t.Run("unbound handle: the 404 branch", func(t *testing.T) {
				out, code := run(t, nil, "conn_ex_unbound")
				require.Equal(t, 2, code, out)
				require.True(t, strings.HasPrefix(out, `not_bound: handle conn_ex_unbound has no binding: no binding for handle "conn_ex_unbound"`), out)
			})

			t.Run("refused grant: the needs_reauth branch", func(t *testing.T) {
				out, code := run(t, nil, "conn_ex_reauth")
				require.Equal(t, 3, code, out)
				require.True(t, strings.HasPrefix(out, "needs_reauth: ask an operator to connect the binding: needs_reauth: "), out)
				require.Contains(t, out, "invalid_grant")
			})

			t.Run("no read permission: another error", func(t *testing.T) {
				out, code := run(t, nil, "crm_not_granted")
				require.Equal(t, 1, code, out)
				require.True(t, strings.HasPrefix(out, "error: HTTP 403: "), out)
			})
		})
	}
}

// exampleEnv is the test's environment without VAULT_* and FLOWCRED_*
// variables, which would change what the examples read.
func exampleEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "FLOWCRED_") {
			out = append(out, kv)
		}
	}
	return out
}

// errorsDoc is docs/errors.md, whose tables TestErrorsTable checks.
const errorsDoc = "../docs/errors.md"

var vaultWrapping = regexp.MustCompile(`^\d+ errors? occurred:\s*\*\s*`)

// vaultAnswer sends a request as token and returns the status and Vault's
// error message, with Vault's multi-error wrapping removed.
func vaultAnswer(t *testing.T, token, method, path string, body map[string]interface{}) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.Addr+"/v1/"+path, rd)
	require.NoError(t, err)
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out struct {
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal(raw, &out)
	msg := vaultWrapping.ReplaceAllString(strings.Join(out.Errors, "; "), "")
	return resp.StatusCode, strings.Join(strings.Fields(msg), " ")
}

// TestErrorsTable triggers the errors of docs/errors.md on the real Vault:
// each answers the documented status and message start, and the table has
// the row (by status and message start, with <h>, <s>, <f>, <k>, <v> as
// written there).
func TestErrorsTable(t *testing.T) {
	s := env(t)
	docBytes, err := os.ReadFile(errorsDoc)
	require.NoError(t, err)
	doc := string(docBytes)

	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/invalid_grant", "/invalid_scope":
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": strings.TrimPrefix(r.URL.Path, "/")})
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(idp.Close)
	refresh := func(endpoint string) map[string]interface{} {
		return map[string]interface{}{
			"kind": "oauth2.refresh_token", "client_id": "errt-client", "client_secret": plant("errt_client_secret"),
			"refresh_token": plant("errt_refresh_token"), "token_url": idp.URL + endpoint,
		}
	}
	write(t, "bindings/errt_reauth", refresh("/invalid_grant"))
	write(t, "bindings/errt_scope", refresh("/invalid_scope"))
	write(t, "bindings/errt_down", refresh("/down"))
	write(t, "bindings/errt_nosecret", map[string]interface{}{"kind": "api_token", "token_secret": "errt_missing"})
	write(t, "secrets/errt_ref", map[string]interface{}{"value": plant("errt_ref_value")})
	write(t, "bindings/errt_usesref", map[string]interface{}{"kind": "api_token", "token_secret": "errt_ref"})
	write(t, "secrets/errt_cr", map[string]interface{}{"value": plant("errt_cr_value") + "\r\nX-Injected: 1"})
	write(t, "bindings/errt_crh", map[string]interface{}{"kind": "api_token", "token_secret": "errt_cr"})
	t.Cleanup(func() {
		for _, p := range []string{"bindings/errt_reauth", "bindings/errt_scope", "bindings/errt_down", "bindings/errt_nosecret", "bindings/errt_usesref", "bindings/errt_crh", "secrets/errt_ref", "secrets/errt_cr"} {
			_, _ = s.Client.Logical().Delete(mp(p))
		}
	})
	sec, err := s.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "10m"})
	require.NoError(t, err)
	noPolicy := sec.Auth.ClientToken

	for _, c := range []struct {
		name         string
		token        string // "" is root
		method, path string // path under the mount, unless it starts with "/"
		body         map[string]interface{}
		status       int
		start        string // the message's start on this request
		doc          string // the row's message start in docs/errors.md; "" skips the row check
		suffix       string
	}{
		{"unbound handle", "", "GET", "token/errt_unbound", nil, 404, `no binding for handle "errt_unbound"`, `no binding for handle "<h>"`, ""},
		{"grant refused", "", "GET", "token/errt_reauth", nil, 400, `needs_reauth: handle "errt_reauth" needs re-authorization: provider answered invalid_grant`, `needs_reauth: handle "<h>" needs re-authorization:`, ""},
		{"request refused", "", "GET", "token/errt_scope", nil, 400, `handle "errt_scope": token request refused: provider answered invalid_scope`, `handle "<h>": token request refused:`, ""},
		{"provider down", "", "GET", "token/errt_down", nil, 502, `handle "errt_down": token endpoint answered HTTP 500`, `handle "<h>":`, ", and no cached token is valid"},
		{"missing secret", "", "GET", "token/errt_nosecret", nil, 400, `handle "errt_nosecret": field token_secret references secret "errt_missing", which does not exist`, `handle "<h>": field <f>_secret references secret "<s>", which does not exist`, ""},
		{"unusable secret", "", "GET", "token/errt_crh", nil, 400, `handle "errt_crh": invalid token_secret: secret "errt_cr" has a CR`, `handle "<h>": invalid token`, ""},
		{"negative min_ttl", "", "GET", "token/errt_unbound?min_ttl=-5", nil, 400, `Field validation failed: error converting input for field "min_ttl"`, `Field validation failed: error converting input for field "min_ttl"`, ""},
		{"min_ttl not a duration", "", "GET", "token/errt_unbound?min_ttl=abc", nil, 400, `Field validation failed: error converting input for field "min_ttl"`, `Field validation failed: error converting input for field "min_ttl"`, ""},
		{"unknown path", "", "GET", "errt_nosuch", nil, 404, "unsupported path", "unsupported path", ""},
		{"invalid handle", "", "GET", "token/-bad-", nil, 400, `invalid handle: "-bad-" is not a valid name`, "invalid handle:", ""},
		{"no policy", noPolicy, "GET", "token/errt_unbound", nil, 403, "permission denied", "permission denied", ""},
		{"nothing mounted", "", "GET", "/errt-not-mounted/token/x", nil, 404, "no handler for route", "no handler for route", ""},
		{"write to token/", "", "PUT", "token/errt_unbound", map[string]interface{}{}, 405, "unsupported operation", "unsupported operation", ""},
		{"refresh unbound", "", "PUT", "bindings/errt_unbound/refresh", nil, 404, `no binding for handle "errt_unbound"`, `no binding for handle "<h>"`, ""},
		{"refresh refused grant", "", "PUT", "bindings/errt_reauth/refresh", nil, 400, `needs_reauth: handle "errt_reauth"`, `needs_reauth: handle "<h>" needs re-authorization:`, ""},
		{"create without kind", "", "PUT", "bindings/errt_new", map[string]interface{}{"description": "x"}, 400, "invalid kind: required when creating a binding", "invalid kind: required when creating a binding", ""},
		{"unknown kind", "", "PUT", "bindings/errt_new", map[string]interface{}{"kind": "oauth3"}, 400, `invalid kind: unknown kind "oauth3"`, "invalid kind: unknown kind", ""},
		{"kind change", "", "PUT", "bindings/errt_nosecret", map[string]interface{}{"kind": "oauth2.refresh_token"}, 400, `invalid kind: is "api_token" and cannot be changed`, `invalid kind: is "<k>" and cannot be changed`, ""},
		{"field typo", "", "PUT", "bindings/errt_new", map[string]interface{}{"kind": "api_token", "token": plant("errt_typo"), "tokn": "x"}, 400, "invalid tokn: unknown field for kind api_token", "invalid <f>: unknown field for kind", ""},
		{"missing input", "", "PUT", "bindings/errt_new", map[string]interface{}{"kind": "api_token"}, 400, "invalid token: required by kind api_token", "invalid <f>: required by kind", ""},
		{"bad token_url", "", "PUT", "bindings/errt_new", map[string]interface{}{"kind": "oauth2.client_credentials", "client_id": "c", "client_secret": plant("errt_cs"), "token_url": "http://example.com/token"}, 400, "invalid token_url:", "invalid <f>:", ""},
		{"ttl not a duration", "", "PUT", "bindings/errt_new", map[string]interface{}{"kind": "api_token", "token": plant("errt_ttl"), "ttl": "abc"}, 400, `error converting input for field "ttl"`, `error converting input for field "<f>"`, ""},
		{"config not a bool", "", "PUT", "config", map[string]interface{}{"background_refresh": "maybe"}, 400, `Field validation failed: error converting input for field "background_refresh"`, `Field validation failed: error converting input for field "<f>"`, ""},
		{"config unknown field", "", "PUT", "config", map[string]interface{}{"refresh_margn": 60}, 400, `unknown field "refresh_margn"`, `unknown field "<f>"`, ""},
		{"invalid handle on write", "", "PUT", "bindings/-bad-", map[string]interface{}{"kind": "api_token"}, 400, "invalid handle:", "invalid handle:", ""},
		{"empty secret", "", "PUT", "secrets/errt_empty", map[string]interface{}{"value": ""}, 400, "missing value:", "missing value:", ""},
		{"secret unknown field", "", "PUT", "secrets/errt_empty", map[string]interface{}{"value": plant("errt_sv"), "valeu": "x"}, 400, `unknown field "valeu"`, `unknown field "<f>"`, ""},
		{"referenced secret delete", "", "DELETE", "secrets/errt_ref", nil, 400, `secret "errt_ref" is referenced by bindings`, `secret "<s>" is referenced by bindings`, ""},
		{"invalid secret name", "", "PUT", "secrets/-bad-", map[string]interface{}{"value": plant("errt_sv2")}, 400, "invalid name:", "invalid name:", ""},
		{"config out of range", "", "PUT", "config", map[string]interface{}{"http_timeout": 999999}, 400, `invalid http_timeout "999999": must be between`, `invalid <f> "<v>": must be between`, ""},
		{"validate bad request", "", "PUT", "validate", map[string]interface{}{"requirements": "x"}, 400, "invalid requirements: must be a list", "invalid requirements", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			token := c.token
			if token == "" {
				token = s.Token
			}
			path := mp(c.path)
			if strings.HasPrefix(c.path, "/") {
				path = strings.TrimPrefix(c.path, "/")
			}
			status, msg := vaultAnswer(t, token, c.method, path, c.body)
			requireNoPlanted(t, "error message", msg)
			require.Equal(t, c.status, status, "%s %s: %s", c.method, c.path, msg)
			require.True(t, strings.HasPrefix(msg, c.start), "%s %s: message %q, want it to start with %q", c.method, c.path, msg, c.start)
			require.True(t, strings.HasSuffix(msg, c.suffix), "message %q, want it to end with %q", msg, c.suffix)
			if c.doc != "" {
				row := fmt.Sprintf("| %d | `%s", c.status, c.doc)
				require.Contains(t, doc, row, "docs/errors.md has no row for this answer")
			}
		})
	}
}
