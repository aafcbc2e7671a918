package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// auditWrites counts the audit log's requests that write under the mount
// (create, update, delete) and are not dry runs, from line skip on; it
// returns them and the number of lines read.
func auditWrites(t *testing.T, path, mount string, skip int) ([]string, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var out []string
	n := 0
	for sc.Scan() {
		n++
		if n <= skip {
			continue
		}
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Operation string                 `json:"operation"`
				Path      string                 `json:"path"`
				Data      map[string]interface{} `json:"data"`
			} `json:"request"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Type != "request" || !strings.HasPrefix(e.Request.Path, mount+"/") {
			continue
		}
		switch e.Request.Operation {
		case "create", "update", "delete":
			if e.Request.Data["dry_run"] != true {
				out = append(out, e.Request.Operation+" "+e.Request.Path)
			}
		}
	}
	return out, n
}

// TestIntegration_DeployTool is issue 16's "done when" on a real Vault and
// the real OAuth2 server: re-applying an unchanged file makes no write (the
// audit log) and no upstream call (the server's counters); plan shows what
// apply then does, refusals included; prune; missing_scopes from the
// scopes the server granted.
func TestIntegration_DeployTool(t *testing.T) {
	vaulttest.Require(t)
	idp := oauthtest.Start(t)
	s := vaulttest.Start(t, vaulttest.Options{AuditFile: true})
	env(t, s.Addr, s.Token)
	mount := "-mount=" + s.Mount
	t.Setenv("IT_api_client_id", oauthtest.ClientRTBasic)
	t.Setenv("IT_api_client_secret", oauthtest.SecretRTBasic)
	rt := idp.Mint(t, oauthtest.ClientRTBasic)
	t.Setenv("IT_api_refresh_token", rt)
	noValue := func(r result) {
		t.Helper()
		noSecrets(t, r)
		if strings.Contains(r.stdout+r.stderr, rt) || strings.Contains(r.stdout+r.stderr, oauthtest.SecretRTBasic) {
			t.Fatalf("output carries a secret value: %+v", r)
		}
	}
	t.Setenv("IT_crm_token", testAPIToken)
	file := writeFile(t, `bindings:
  api:
    kind: oauth2.refresh_token
    client_id_secret: api_client_id
    client_secret_secret: api_client_secret
    refresh_token_secret: api_refresh_token
    token_url: `+idp.TokenURL+`
    auth_style: header
  crm:
    kind: api_token
    token_secret: crm_token
    header: X-Api-Key
nodes:
  - id: fetch
    credential: api
    requires: oauth2.refresh_token
    scopes: api
  - id: admin
    credential: api
    requires: oauth2.refresh_token
    scopes: [api, admin]
`)
	r := runCLI(t, "plan", mount, "-f", file, "-secrets-from-env", "IT_", "-detailed-exitcode")
	noValue(r)
	if r.code != exitChanges || !strings.Contains(r.stdout, "Plan: 2 to create, 0 to update, 0 to delete, 0 unchanged, 0 refused; secrets: 4 to create") {
		t.Fatalf("plan: %+v", r)
	}
	r = runCLI(t, "apply", mount, "-f", file, "-secrets-from-env", "IT_")
	noValue(r)
	if r.code != exitOK || !strings.Contains(r.stdout, "2 created, 0 updated, 0 deleted, 0 unchanged, 0 refused; secrets: 4 created") {
		t.Fatalf("apply: %+v", r)
	}
	if r := runCLI(t, "token", mount, "api"); r.code != exitOK {
		t.Fatalf("token: %+v", r)
	}

	// Re-apply, unchanged: no write, no upstream call, the token still cached.
	if err := idp.ResetStats(); err != nil {
		t.Fatal(err)
	}
	first, mark := auditWrites(t, s.AuditPath, s.Mount, 0)
	if !containsStr(first, "create "+s.Mount+"/bindings/api") || !containsStr(first, "update "+s.Mount+"/secrets/api_refresh_token") {
		t.Fatalf("the audit log does not show the first apply's writes: %v", first)
	}
	r = runCLI(t, "plan", mount, "-f", file, "-secrets-from-env", "IT_", "-detailed-exitcode")
	if r.code != exitOK {
		t.Fatalf("plan of the applied file: %+v", r)
	}
	r = runCLI(t, "apply", mount, "-f", file, "-secrets-from-env", "IT_", "-format", "json")
	noValue(r)
	if r.code != exitOK || !strings.Contains(r.stdout, `"changes_pending": false`) {
		t.Fatalf("re-apply -format json: %+v", r)
	}
	r = runCLI(t, "apply", mount, "-f", file, "-secrets-from-env", "IT_")
	if r.code != exitOK || !strings.Contains(r.stdout, "0 created, 0 updated, 0 deleted, 2 unchanged, 0 refused; secrets: 0 created, 0 updated, 4 unchanged") {
		t.Fatalf("re-apply: %+v", r)
	}
	if r := runCLI(t, "token", mount, "api"); r.code != exitOK {
		t.Fatalf("token: %+v", r)
	}
	writes, _ := auditWrites(t, s.AuditPath, s.Mount, mark)
	if len(writes) != 0 {
		t.Fatalf("plan and re-apply of an unchanged file wrote: %v", writes)
	}
	if st := idp.MustStats(t); len(st.TokenRequests) != 0 {
		t.Fatalf("re-apply made upstream requests: %v", st.TokenRequests)
	}

	// missing_scopes: the server granted "openid offline_access api".
	r = runCLI(t, "validate", mount, "-f", file)
	if r.code != exitInvalid || !strings.Contains(r.stdout, "error: node admin, handle api: missing_scopes") ||
		!strings.Contains(r.stdout, `"admin"`) || !strings.Contains(r.stdout, "granted scopes") || strings.Contains(r.stdout, "node fetch") {
		t.Fatalf("validate: %+v", r)
	}

	// Refusals: plan says what apply says, binding by binding.
	bad := writeFile(t, `bindings:
  http_url:
    kind: oauth2.client_credentials
    client_id_secret: api_client_id
    client_secret_secret: api_client_secret
    token_url: http://idp.example/token
  incomplete:
    kind: oauth2.client_credentials
    client_id_secret: api_client_id
    token_url: https://idp.example/token
  crm:
    kind: oauth2.client_credentials
    client_id_secret: api_client_id
    client_secret_secret: api_client_secret
    token_url: https://idp.example/token
  cred_header:
    kind: api_token
    token_secret: crm_token
    extra_headers:
      X-Api-Key: x
    header: X-Api-Key
  bad_scope:
    kind: oauth2.client_credentials
    client_id_secret: api_client_id
    client_secret_secret: api_client_secret
    token_url: https://idp.example/token
    scopes: ['a"b']
`)
	plan := runCLI(t, "plan", mount, "-f", bad)
	apply := runCLI(t, "apply", mount, "-f", bad)
	if plan.code != exitInvalid || apply.code != exitInvalid || plan.stderr != apply.stderr || strings.Count(plan.stderr, ": refused: ") != 5 {
		t.Fatalf("refusals differ or are missing:\nplan:  %+v\napply: %+v", plan, apply)
	}

	// Prune: a binding the file does not name goes, with -auto-approve.
	if _, err := s.Client.Logical().Write(s.Mount+"/bindings/stray", map[string]interface{}{"kind": "api_token", "token_secret": "crm_token"}); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "apply", mount, "-f", file, "-prune", "-auto-approve")
	if r.code != exitOK || !strings.Contains(r.stdout, "binding stray (api_token): deleted") || !strings.Contains(r.stdout, "2 unchanged") {
		t.Fatalf("apply -prune: %+v", r)
	}
	if sec, err := s.Client.Logical().Read(s.Mount + "/bindings/stray"); err != nil || sec != nil {
		t.Fatalf("stray binding still there: %v %v", sec, err)
	}
}
