package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flowcred/vault-plugin-flowcred/internal/fakevault"
)

// Test secrets: constants, never real.
const (
	testClientSecret = "client-secret-for-cli-tests"
	testRefreshToken = "refresh-token-for-cli-tests"
	testAPIToken     = "api-token-for-cli-tests"
)

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line in-process.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// env points the CLI at addr with token, and isolates HOME so that a
// developer's ~/.vault-token is not used.
func env(t *testing.T, addr, token string) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("VAULT_ADDR", addr)
	t.Setenv("VAULT_TOKEN", token)
	t.Setenv("VAULT_MAX_RETRIES", "0")
	t.Setenv("VAULT_NAMESPACE", "")
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "deployment.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// oneLineError checks that stderr is exactly one line containing want.
func oneLineError(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d; stderr %q stdout %q", r.code, code, r.stderr, r.stdout)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("stderr is not one line: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr %q does not contain %q", r.stderr, want)
	}
}

func noSecrets(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{testClientSecret, testRefreshToken, testAPIToken} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("output carries a secret value: %q %q", r.stdout, r.stderr)
		}
	}
}

const deploymentYAML = `# a deployment: bindings in the seed's shape, and the nodes that use them
bindings:
  google_sales:
    kind: google.oauth2
    client_id_secret: gcp_client_id
    client_secret_secret: gcp_client_secret
    refresh_token_secret: gcp_refresh_token
    scopes: [https://www.googleapis.com/auth/spreadsheets]
    extra_headers:
      x-goog-user-project: sales-project
    description: Sales team's Google Sheets
  crm:
    kind: api_token
    token_secret: crm_token
    header: X-Api-Key
    scheme: ""
    ttl: 30m
nodes:
  - id: fetch_leads
    credential: google_sales
    requires: google.oauth2
  - id: push_crm
    credential: crm
    requires: [api_token, oauth2.client_credentials]
  - id: transform
`

func TestUsageErrors(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"apply"}, "-f FILE is required"},
		{[]string{"apply", "-f", "x.yaml", "extra"}, `unexpected argument "extra"`},
		{[]string{"apply", "-nope"}, "flag provided but not defined: -nope"},
		{[]string{"validate"}, "-f FILE is required"},
		{[]string{"plan"}, "-f FILE is required"},
		{[]string{"plan", "-f", "x.yaml", "-auto-approve"}, "flag provided but not defined: -auto-approve"},
		{[]string{"version", "-format", "yaml"}, `-format "yaml"`},
		{[]string{"validate", "-f", "x", "-format", "xml"}, `-format "xml"`},
		{[]string{"token"}, "give exactly one HANDLE"},
		{[]string{"token", "../sys"}, "not a valid handle"},
		{[]string{"secret"}, "the only subcommand is put"},
		{[]string{"secret", "put", "name"}, "give exactly one of -from-file PATH or -from-env VAR"},
		{[]string{"secret", "put", "name", "s3cr3t-on-argv"}, "never the command line"},
		{[]string{"secret", "put", "-from-env", "A", "-from-file", "b", "name"}, "give exactly one of"},
	}
	for _, c := range cases {
		r := runCLI(t, c.args...)
		oneLineError(t, r, exitUsage, c.want)
		if strings.Contains(r.stderr, "s3cr3t-on-argv") {
			t.Fatal("argv value echoed")
		}
	}
	if r := runCLI(t); r.code != exitUsage || !strings.Contains(r.stderr, "Usage: flowcred") {
		t.Fatalf("no args: %+v", r)
	}
	if r := runCLI(t, "apply", "-h"); r.code != exitOK || !strings.Contains(r.stdout, "-secrets-from-env") {
		t.Fatalf("apply -h: %+v", r)
	}
}

func TestDeploymentFileErrors(t *testing.T) {
	env(t, "http://127.0.0.1:1", "unused")
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", "\n", "the file is empty"},
		{"bad yaml", "bindings:\n  x: [unclosed\n", "deployment.yaml:1: did not find expected"},
		{"unknown top-level key", "bindings: {}\nnodez: []\n", `deployment.yaml:2: unknown top-level key "nodez"`},
		{"unknown node key", "nodes:\n  - id: a\n    credentials: x\n", `deployment.yaml:3: unknown key "credentials" in a node`},
		{"unknown binding field", "bindings:\n  h:\n    kind: api_token\n    tokn_secret: s\n", `deployment.yaml:4: bindings.h.tokn_secret: unknown field for kind api_token`},
		{"field of another kind", "bindings:\n  h:\n    kind: api_token\n    token_secret: s\n    subject: me\n", "bindings.h.subject: not used by kind api_token (it belongs to google.service_account, oauth2.jwt_bearer)"},
		{"inline secret", "bindings:\n  h:\n    kind: google.oauth2\n    client_secret: " + testClientSecret + "\n", "bindings.h.client_secret: secret values do not belong in a deployment file; store it with `flowcred secret put NAME -from-file PATH` and write client_secret_secret: NAME"},
		{"inline token", "bindings:\n  h:\n    kind: api_token\n    token: " + testAPIToken + "\n", "write token_secret: NAME"},
		{"no kind", "bindings:\n  h:\n    token_secret: s\n", "bindings.h: kind is required"},
		{"unknown kind", "bindings:\n  h:\n    kind: aws.sigv4\n", `unknown kind "aws.sigv4"`},
		{"bad handle", "bindings:\n  ../x:\n    kind: api_token\n", "is not a valid handle"},
		{"bad ttl", "bindings:\n  h:\n    kind: api_token\n    token_secret: s\n    ttl: soon\n", `"soon" is not a duration`},
		{"bad requires", "nodes:\n  - id: a\n    credential: h\n    requires: google.oauth3\n", `deployment.yaml:2: nodes[0] (a): requires unknown kind "google.oauth3"`},
		{"credential without requires", "nodes:\n  - id: a\n    credential: h\n", "credential h has no requires"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, c.yaml)
			for _, cmd := range []string{"apply", "validate"} {
				r := runCLI(t, cmd, "-f", p)
				oneLineError(t, r, exitUsage, c.want)
				noSecrets(t, r)
			}
		})
	}
	r := runCLI(t, "apply", "-f", filepath.Join(t.TempDir(), "missing.yaml"))
	oneLineError(t, r, exitUsage, "missing.yaml: no such file")
}

func TestDeploymentFileReportsEveryProblem(t *testing.T) {
	p := writeFile(t, "bindings:\n  a:\n    kind: api_token\n    token: x\n  b:\n    kind: nope\n")
	r := runCLI(t, "apply", "-f", p)
	if r.code != exitUsage || strings.Count(r.stderr, "\n") != 2 {
		t.Fatalf("want two problems, one per line: %+v", r)
	}
}

func TestVaultErrors(t *testing.T) {
	p := writeFile(t, deploymentYAML)

	t.Run("missing VAULT_TOKEN", func(t *testing.T) {
		env(t, "http://127.0.0.1:1", "")
		for _, args := range [][]string{{"apply", "-f", p}, {"validate", "-f", p}, {"token", "crm"}} {
			oneLineError(t, runCLI(t, args...), exitVault, "VAULT_TOKEN is not set")
		}
	})
	t.Run("token from ~/.vault-token", func(t *testing.T) {
		fv := fakevault.Start(t)
		env(t, fv.Addr, "")
		if err := os.WriteFile(filepath.Join(os.Getenv("HOME"), ".vault-token"), []byte(fakevault.RootToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := runCLI(t, "apply", "-f", p); r.code != exitOK {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		env(t, "http://127.0.0.1:1", "tok")
		for _, args := range [][]string{{"apply", "-f", p}, {"validate", "-f", p}, {"token", "crm"}} {
			oneLineError(t, runCLI(t, args...), exitVault, "127.0.0.1:1")
		}
		oneLineError(t, runCLI(t, "apply", "-f", p), exitVault, "connection refused")
	})
	t.Run("permission denied", func(t *testing.T) {
		fv := fakevault.Start(t)
		env(t, fv.Addr, "not-a-token")
		for _, args := range [][]string{{"apply", "-f", p}, {"validate", "-f", p}, {"token", "crm"}} {
			oneLineError(t, runCLI(t, args...), exitVault, "permission denied")
		}
	})
	t.Run("wrong mount", func(t *testing.T) {
		fv := fakevault.Start(t)
		env(t, fv.Addr, fakevault.RootToken)
		oneLineError(t, runCLI(t, "validate", "-mount", "elsewhere", "-f", p), exitVault, "404")
		oneLineError(t, runCLI(t, "token", "-mount", "elsewhere", "crm"), exitVault, "no handler for route")
	})
}

func TestApplyThenValidate(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	p := writeFile(t, deploymentYAML)

	r := runCLI(t, "apply", "-f", p)
	noSecrets(t, r)
	if r.code != exitOK {
		t.Fatalf("apply: %+v", r)
	}
	for _, want := range []string{
		"binding crm (api_token): created",
		"binding google_sales (google.oauth2): created",
		`warning: secret "gcp_client_secret" (field client_secret_secret) does not exist yet`,
		"2 created, 0 updated, 0 deleted, 0 unchanged, 0 refused",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("apply output lacks %q:\n%s", want, r.stdout)
		}
	}

	// The secrets are not stored yet: validate fails with missing_secret.
	r = runCLI(t, "validate", "-f", p)
	if r.code != exitInvalid {
		t.Fatalf("validate before secrets: %+v", r)
	}
	for _, want := range []string{
		"error: node fetch_leads, handle google_sales: missing_secret",
		"required kind: google.oauth2",
		"bound kind:    google.oauth2",
		"to do:         store each referenced secret: flowcred secret put NAME",
		"NOT valid: 2 requirements, 2 errors, 0 warnings",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("validate output lacks %q:\n%s", want, r.stdout)
		}
	}

	// Secrets, from the environment and from a file; never from argv.
	t.Setenv("FLOWCRED_SECRET_GCP_CLIENT_ID", "client-id-123")
	t.Setenv("FLOWCRED_SECRET_GCP_CLIENT_SECRET", testClientSecret)
	t.Setenv("FLOWCRED_SECRET_gcp_refresh_token", testRefreshToken)
	r = runCLI(t, "apply", "-f", p, "-secrets-from-env", "FLOWCRED_SECRET_")
	noSecrets(t, r)
	if r.code != exitOK || !strings.Contains(r.stdout, "secret gcp_client_secret: created (from $FLOWCRED_SECRET_GCP_CLIENT_SECRET)") ||
		!strings.Contains(r.stdout, "secret gcp_refresh_token: created (from $FLOWCRED_SECRET_gcp_refresh_token)") ||
		!strings.Contains(r.stdout, "binding google_sales (google.oauth2): unchanged") {
		t.Fatalf("apply -secrets-from-env: %+v", r)
	}
	tokenFile := filepath.Join(t.TempDir(), "crm-token")
	if err := os.WriteFile(tokenFile, []byte(testAPIToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "secret", "put", "crm_token", "-from-file", tokenFile)
	noSecrets(t, r)
	if r.code != exitOK || !strings.Contains(r.stdout, "secret crm_token written") {
		t.Fatalf("secret put: %+v", r)
	}

	r = runCLI(t, "validate", "-f", p)
	if r.code != exitOK || !strings.Contains(r.stdout, "valid: 2 requirements, 0 errors, 0 warnings") {
		t.Fatalf("validate after secrets: %+v", r)
	}
	r = runCLI(t, "validate", "-f", p, "-format", "json")
	var answer struct {
		Valid    bool          `json:"valid"`
		Problems []interface{} `json:"problems"`
	}
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &answer) != nil || !answer.Valid || answer.Problems == nil {
		t.Fatalf("validate -format json: %+v", r)
	}

	// The token command shows metadata; the token only on request. The
	// trailing newline of the secret file was dropped.
	r = runCLI(t, "token", "crm")
	noSecrets(t, r)
	for _, want := range []string{"kind            api_token", "headers         X-Api-Key", "expires_at      (no expiry)", "lease_duration  1800s (30m0s)", "(hidden; -show-token prints it)"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("token output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, "token", "crm", "-show-token")
	if r.code != exitOK || !regexp.MustCompile(`(?m)^access_token +`+testAPIToken+`$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^header X-Api-Key +`+testAPIToken+`$`).MatchString(r.stdout) {
		t.Fatalf("token -show-token: %+v", r)
	}
	r = runCLI(t, "token", "-format", "json", "crm")
	var tok map[string]interface{}
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &tok) != nil || tok["kind"] != "api_token" || tok["access_token"] != nil {
		t.Fatalf("token -format json: %+v", r)
	}
	oneLineError(t, runCLI(t, "token", "unbound"), exitInvalid, `no binding for handle "unbound"`)
}

func TestValidateProblems(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	fv.Write(t, "flowcred/bindings/crm", map[string]interface{}{"kind": "api_token", "token": testAPIToken})
	p := writeFile(t, `nodes:
  - id: push_crm
    credential: crm
    requires: oauth2.client_credentials
  - id: fetch_leads
    credential: google_sales
    requires: [google.oauth2, oauth2.refresh_token]
`)
	r := runCLI(t, "validate", "-f", p)
	noSecrets(t, r)
	if r.code != exitInvalid {
		t.Fatalf("%+v", r)
	}
	for _, want := range []string{
		"error: node push_crm, handle crm: kind_mismatch",
		"bound kind:    api_token",
		"to do:         point node push_crm at a handle of kind oauth2.client_credentials",
		"error: node fetch_leads, handle google_sales: missing",
		"required kind: google.oauth2 | oauth2.refresh_token",
		"bound kind:    (none)",
		"to do:         bind the handle: add bindings.google_sales (kind google.oauth2)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, "validate", "-f", p, "-format", "json")
	var answer struct {
		Valid    bool `json:"valid"`
		Problems []struct {
			Node, Handle, Problem string
		} `json:"problems"`
	}
	if r.code != exitInvalid || json.Unmarshal([]byte(r.stdout), &answer) != nil || answer.Valid || len(answer.Problems) != 2 {
		t.Fatalf("json: %+v", r)
	}

	noNodes := writeFile(t, "bindings: {}\nnodes:\n  - id: transform\n")
	oneLineError(t, runCLI(t, "validate", "-f", noNodes), exitUsage, "no node has a credential")
}

func TestApplyRefusedBinding(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	p := writeFile(t, `bindings:
  good:
    kind: api_token
    token_secret: t
  bad:
    kind: oauth2.client_credentials
    client_id_secret: id
    client_secret_secret: s
    token_url: http://example.com/token
`)
	r := runCLI(t, "apply", "-f", p)
	if r.code != exitInvalid {
		t.Fatalf("%+v", r)
	}
	if !strings.Contains(r.stderr, "binding bad (oauth2.client_credentials): refused: Vault answered 400: invalid token_url") ||
		!strings.Contains(r.stdout, "binding good (api_token): created") || !strings.Contains(r.stdout, "1 created, 0 updated, 0 deleted, 0 unchanged, 1 refused") {
		t.Fatalf("%+v", r)
	}
}

func TestApplyClearsRemovedFields(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	full := writeFile(t, deploymentYAML)
	if r := runCLI(t, "apply", "-f", full); r.code != exitOK {
		t.Fatalf("%+v", r)
	}
	// An inline secret set outside the file is kept by apply.
	fv.Write(t, "flowcred/bindings/crm", map[string]interface{}{"token": testAPIToken})
	slim := writeFile(t, `bindings:
  google_sales:
    kind: google.oauth2
    client_id_secret: gcp_client_id
    client_secret_secret: gcp_client_secret
    refresh_token_secret: gcp_refresh_token
  crm:
    kind: api_token
`)
	r := runCLI(t, "apply", "-f", slim)
	if r.code != exitOK {
		t.Fatalf("%+v", r)
	}
	g := readBinding(t, fv, "google_sales")
	for _, gone := range []string{"scopes", "extra_headers"} {
		if _, ok := g[gone]; ok {
			t.Errorf("google_sales still has %s: %v", gone, g[gone])
		}
	}
	if g["description"] != "" {
		t.Errorf("description not cleared: %v", g["description"])
	}
	c := readBinding(t, fv, "crm")
	if c["header"] != nil || c["token_secret"] != nil || c["scheme"] != "Bearer" || c["ttl"] != float64(0) {
		t.Errorf("crm not cleared: %v", c)
	}
	if fields, _ := c["inline_fields"].([]interface{}); len(fields) != 1 || fields[0] != "token" {
		t.Errorf("inline token not kept: %v", c["inline_fields"])
	}
}

func readBinding(t *testing.T, fv *fakevault.Server, handle string) map[string]interface{} {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fv.Addr+"/v1/flowcred/bindings/"+handle, nil)
	req.Header.Set("X-Vault-Token", fakevault.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data map[string]interface{} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Data == nil {
		t.Fatalf("reading binding %s: status %d %v", handle, resp.StatusCode, err)
	}
	return out.Data
}

// apply -dry-run is plan: it asks the plugin (so it refuses what apply
// refuses) and writes nothing.
func TestApplyDryRunWritesNothing(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	log := recordWrites(fv)
	r := runCLI(t, "apply", "-dry-run", "-f", writeFile(t, deploymentYAML))
	if r.code != exitOK || !strings.Contains(r.stdout, "binding crm (api_token): create") ||
		!strings.Contains(r.stdout, "Plan: 2 to create, 0 to update, 0 to delete, 0 unchanged, 0 refused") {
		t.Fatalf("%+v", r)
	}
	if w := log.realWrites(); len(w) != 0 {
		t.Fatalf("dry run wrote %v", w)
	}
}

func TestSecretPutFromEnv(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	t.Setenv("CRM_TOKEN", testAPIToken)
	r := runCLI(t, "secret", "put", "-from-env", "CRM_TOKEN", "crm_token")
	noSecrets(t, r)
	if r.code != exitOK || r.stdout != "secret crm_token written from $CRM_TOKEN (23 bytes)\n" {
		t.Fatalf("%+v", r)
	}
	oneLineError(t, runCLI(t, "secret", "put", "-from-env", "NOT_SET_ANYWHERE", "x"), exitUsage, "NOT_SET_ANYWHERE is not set")
	oneLineError(t, runCLI(t, "secret", "put", "-from-file", filepath.Join(t.TempDir(), "nope"), "x"), exitUsage, "no such file")
	t.Setenv("EMPTY_VALUE", "")
	oneLineError(t, runCLI(t, "secret", "put", "-from-env", "EMPTY_VALUE", "x"), exitUsage, "is empty")
}
