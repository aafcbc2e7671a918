package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mitchellh/go-homedir"

	"github.com/flowcred/vault-plugin-flowcred/internal/fakevault"
)

// Each test has its own HOME (env): the token helper must not see an
// earlier test's.
func init() { homedir.DisableCache = true }

// writeLog records the writes that reached the fake Vault, telling dry runs
// (dry_run=true) from real writes, and every request's namespace header.
type writeLog struct {
	mu         sync.Mutex
	real, dry  []string // "PUT path", "DELETE path"
	namespaces []string
}

func recordWrites(fv *fakevault.Server) *writeLog {
	l := &writeLog{}
	fv.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		path := strings.TrimPrefix(r.URL.Path, "/v1/")
		l.mu.Lock()
		defer l.mu.Unlock()
		l.namespaces = append(l.namespaces, r.Header.Get("X-Vault-Namespace"))
		switch r.Method {
		case http.MethodPut, http.MethodPost:
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var data map[string]interface{}
			_ = json.Unmarshal(body, &data)
			if data["dry_run"] == true {
				l.dry = append(l.dry, "PUT "+path)
			} else {
				l.real = append(l.real, "PUT "+path)
			}
		case http.MethodDelete:
			l.real = append(l.real, "DELETE "+path)
		}
		return false
	})
	return l
}

func (l *writeLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.real, l.dry, l.namespaces = nil, nil, nil
}

func (l *writeLog) realWrites() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]string(nil), l.real...)
	sort.Strings(out)
	return out
}

// tokenEndpoint is a loopback refresh-token endpoint counting its requests.
func tokenEndpoint(t *testing.T) (string, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at-%d-for-cli-tests","token_type":"Bearer","expires_in":3600}`, c)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/token", &n
}

func deployFile(tokenURL, description string) string {
	return `bindings:
  api:
    kind: oauth2.refresh_token
    client_id_secret: api_client_id
    client_secret_secret: api_client_secret
    refresh_token_secret: api_refresh_token
    token_url: ` + tokenURL + `
    scopes: read write
    description: ` + description + `
  crm:
    kind: api_token
    token_secret: crm_token
    header: X-Api-Key
    ttl: 30m
nodes:
  - id: fetch
    credential: api
    requires: oauth2.refresh_token
    scopes: [read]
`
}

func setDeploySecrets(t *testing.T) {
	t.Setenv("FC_api_client_id", "client-1")
	t.Setenv("FC_api_client_secret", testClientSecret)
	t.Setenv("FC_api_refresh_token", testRefreshToken)
	t.Setenv("FC_crm_token", testAPIToken)
}

// Issue 16 items 1 and 2: plan shows what apply then does, without writing;
// re-applying an unchanged file writes nothing, keeps the cached token
// (no upstream request) and does not rewrite unchanged secrets.
func TestPlanThenIdempotentApply(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	log := recordWrites(fv)
	tokenURL, upstream := tokenEndpoint(t)
	setDeploySecrets(t)
	p := writeFile(t, deployFile(tokenURL, "first"))

	r := runCLI(t, "plan", "-f", p, "-secrets-from-env", "FC_", "-detailed-exitcode")
	noSecrets(t, r)
	if r.code != exitChanges {
		t.Fatalf("plan of a new deployment: exit %d, want %d: %+v", r.code, exitChanges, r)
	}
	for _, want := range []string{
		"secret api_client_secret: create (from $FC_api_client_secret)",
		"binding api (oauth2.refresh_token): create",
		"  + scopes: [read write]",
		"binding crm (api_token): create",
		`  + token_secret: "crm_token"`,
		"Plan: 2 to create, 0 to update, 0 to delete, 0 unchanged, 0 refused; secrets: 4 to create, 0 to update, 0 unchanged",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("plan output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "does not exist yet") {
		t.Fatalf("plan warns about secrets it would store:\n%s", r.stdout)
	}
	if w := log.realWrites(); len(w) != 0 {
		t.Fatalf("plan wrote: %v", w)
	}

	r = runCLI(t, "apply", "-f", p, "-secrets-from-env", "FC_")
	noSecrets(t, r)
	if r.code != exitOK || !strings.Contains(r.stdout, "binding api (oauth2.refresh_token): created") ||
		!strings.Contains(r.stdout, "secret api_refresh_token: created (from $FC_api_refresh_token)") ||
		!strings.Contains(r.stdout, "2 created, 0 updated, 0 deleted, 0 unchanged, 0 refused") {
		t.Fatalf("apply: %+v", r)
	}
	if r := runCLI(t, "token", "api"); r.code != exitOK {
		t.Fatalf("token: %+v", r)
	}
	if upstream.Load() != 1 {
		t.Fatalf("%d upstream requests, want 1", upstream.Load())
	}

	// Unchanged: plan says so (exit 0 with -detailed-exitcode); apply
	// writes nothing, secrets included, and the token stays cached.
	log.reset()
	r = runCLI(t, "plan", "-f", p, "-secrets-from-env", "FC_", "-detailed-exitcode")
	if r.code != exitOK || !strings.Contains(r.stdout, "binding api (oauth2.refresh_token): unchanged") ||
		!strings.Contains(r.stdout, "secret api_refresh_token: unchanged") {
		t.Fatalf("plan of an applied file: %+v", r)
	}
	r = runCLI(t, "apply", "-f", p, "-secrets-from-env", "FC_")
	if r.code != exitOK || !strings.Contains(r.stdout, "0 created, 0 updated, 0 deleted, 2 unchanged, 0 refused") {
		t.Fatalf("re-apply: %+v", r)
	}
	if w := log.realWrites(); len(w) != 0 {
		t.Fatalf("re-applying an unchanged file wrote: %v", w)
	}
	if r := runCLI(t, "token", "api"); r.code != exitOK || upstream.Load() != 1 {
		t.Fatalf("after re-apply: %d upstream requests, want 1 (%+v)", upstream.Load(), r)
	}

	// A change: plan names the field, apply writes exactly that binding.
	changed := writeFile(t, deployFile(tokenURL, "second"))
	r = runCLI(t, "plan", "-f", changed, "-detailed-exitcode")
	if r.code != exitChanges || !strings.Contains(r.stdout, "binding api (oauth2.refresh_token): update") ||
		!strings.Contains(r.stdout, `  ~ description: "first" -> "second"`) || !strings.Contains(r.stdout, "binding crm (api_token): unchanged") {
		t.Fatalf("plan of a change: %+v", r)
	}
	log.reset()
	r = runCLI(t, "apply", "-f", changed)
	if r.code != exitOK || !strings.Contains(r.stdout, "binding api (oauth2.refresh_token): updated") {
		t.Fatalf("apply of a change: %+v", r)
	}
	if w := log.realWrites(); len(w) != 1 || w[0] != "PUT flowcred/bindings/api" {
		t.Fatalf("apply of one change wrote %v", w)
	}

	// A changed secret value is written; the others are not.
	t.Setenv("FC_crm_token", "new-"+testAPIToken)
	log.reset()
	r = runCLI(t, "apply", "-f", changed, "-secrets-from-env", "FC_")
	if r.code != exitOK || !strings.Contains(r.stdout, "secret crm_token: updated (from $FC_crm_token)") || strings.Contains(r.stdout, "new-") {
		t.Fatalf("apply of a changed secret: %+v", r)
	}
	if w := log.realWrites(); len(w) != 1 || w[0] != "PUT flowcred/secrets/crm_token" {
		t.Fatalf("apply of one changed secret wrote %v", w)
	}
}

// Plan runs the plugin's own write-time checks: what apply refuses, plan
// refuses, with the same message, and neither writes a refused binding.
func TestPlanRefusesWhatApplyRefuses(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	fv.Write(t, "flowcred/bindings/was_token", map[string]interface{}{"kind": "api_token", "token": testAPIToken})
	p := writeFile(t, `bindings:
  good:
    kind: api_token
    token_secret: t
  http_url:
    kind: oauth2.client_credentials
    client_id_secret: id
    client_secret_secret: s
    token_url: http://idp.example/token
  incomplete:
    kind: oauth2.client_credentials
    client_id_secret: id
    token_url: https://idp.example/token
  cred_header:
    kind: api_token
    token_secret: t
    extra_headers:
      Authorization: Basic x
  bad_scope:
    kind: oauth2.client_credentials
    client_id_secret: id
    client_secret_secret: s
    token_url: https://idp.example/token
    scopes: ['a"b']
  crlf_header:
    kind: api_token
    token_secret: t
    extra_headers:
      x-team: "a\r\nb"
  bad_auth_style:
    kind: oauth2.client_credentials
    client_id_secret: id
    client_secret_secret: s
    token_url: https://idp.example/token
    auth_style: sometimes
  reserved_param:
    kind: oauth2.client_credentials
    client_id_secret: id
    client_secret_secret: s
    token_url: https://idp.example/token
    token_params:
      grant_type: password
  bad_scheme:
    kind: api_token
    token_secret: t
    scheme: "two words"
  bad_auth_url:
    kind: oauth2.refresh_token
    client_id_secret: id
    refresh_token_secret: rt
    token_url: https://idp.example/token
    authorization_url: http://idp.example/authorize
  was_token:
    kind: oauth2.client_credentials
    client_id_secret: id
    client_secret_secret: s
    token_url: https://idp.example/token
`)
	refusals := func(out string) map[string]string {
		m := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if i := strings.Index(line, ": refused: "); i > 0 && strings.HasPrefix(line, "binding ") {
				h := strings.Fields(line)[1]
				m[h] = line[i+len(": refused: "):]
			}
		}
		return m
	}
	plan := runCLI(t, "plan", "-f", p, "-detailed-exitcode")
	if plan.code != exitInvalid {
		t.Fatalf("plan: exit %d: %+v", plan.code, plan)
	}
	apply := runCLI(t, "apply", "-f", p)
	if apply.code != exitInvalid || !strings.Contains(apply.stdout, "binding good (api_token): created") {
		t.Fatalf("apply: %+v", apply)
	}
	pr, ar := refusals(plan.stdout+plan.stderr), refusals(apply.stdout+apply.stderr)
	if len(pr) != 10 {
		t.Fatalf("plan refused %d bindings, want 10: %v\n%s%s", len(pr), pr, plan.stdout, plan.stderr)
	}
	for h, msg := range pr {
		if ar[h] != msg {
			t.Errorf("binding %s: plan says %q, apply says %q", h, msg, ar[h])
		}
	}
	for h, want := range map[string]string{"http_url": "invalid token_url", "incomplete": "invalid client_secret: required", "was_token": "invalid kind", "bad_auth_url": "invalid authorization_url"} {
		if !strings.Contains(pr[h], want) {
			t.Errorf("binding %s: refusal %q lacks %q", h, pr[h], want)
		}
	}
	if r := runCLI(t, "apply", "-f", p); !strings.Contains(r.stdout, "binding good (api_token): unchanged") {
		t.Fatalf("second apply: %+v", r)
	}
}

func TestApplyPrune(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	for _, h := range []string{"keep", "extra1", "extra2"} {
		fv.Write(t, "flowcred/bindings/"+h, map[string]interface{}{"kind": "api_token", "token_secret": "t"})
	}
	p := writeFile(t, "bindings:\n  keep:\n    kind: api_token\n    token_secret: t\n")
	log := recordWrites(fv)

	r := runCLI(t, "plan", "-f", p, "-prune", "-detailed-exitcode")
	if r.code != exitChanges || !strings.Contains(r.stdout, "binding extra1 (api_token): delete") ||
		!strings.Contains(r.stdout, "Plan: 0 to create, 0 to update, 2 to delete, 1 unchanged, 0 refused") {
		t.Fatalf("plan -prune: %+v", r)
	}
	// Without -prune nothing is deleted, and plan does not mention them.
	if r := runCLI(t, "apply", "-f", p); r.code != exitOK || strings.Contains(r.stdout, "extra1") {
		t.Fatalf("apply: %+v", r)
	}
	// Not confirmed: nothing is written or deleted.
	stdin = strings.NewReader("no\n")
	t.Cleanup(func() { stdin = os.Stdin })
	r = runCLI(t, "apply", "-f", p, "-prune")
	if r.code != exitUsage || !strings.Contains(r.stderr, "extra1, extra2") || !strings.Contains(r.stderr, "not confirmed") {
		t.Fatalf("apply -prune answered no: %+v", r)
	}
	stdin = strings.NewReader("")
	if r := runCLI(t, "apply", "-f", p, "-prune"); r.code != exitUsage || !strings.Contains(r.stderr, "-auto-approve") {
		t.Fatalf("apply -prune without a terminal: %+v", r)
	}
	if w := log.realWrites(); len(w) != 0 {
		t.Fatalf("unconfirmed prune wrote %v", w)
	}
	stdin = strings.NewReader("yes\n")
	r = runCLI(t, "apply", "-f", p, "-prune")
	if r.code != exitOK || !strings.Contains(r.stdout, "binding extra1 (api_token): deleted") ||
		!strings.Contains(r.stdout, "0 created, 0 updated, 2 deleted, 1 unchanged, 0 refused") {
		t.Fatalf("apply -prune confirmed: %+v", r)
	}
	if w := log.realWrites(); len(w) != 2 || w[0] != "DELETE flowcred/bindings/extra1" {
		t.Fatalf("prune wrote %v", w)
	}
	fv.Write(t, "flowcred/bindings/extra3", map[string]interface{}{"kind": "api_token", "token": testAPIToken})
	if r := runCLI(t, "apply", "-f", p, "-prune", "-auto-approve"); r.code != exitOK || !strings.Contains(r.stdout, "binding extra3 (api_token): deleted") {
		t.Fatalf("apply -prune -auto-approve: %+v", r)
	}
	// A file without bindings: never prunes the whole mount.
	nodesOnly := writeFile(t, "nodes:\n  - id: a\n")
	if r := runCLI(t, "apply", "-f", nodesOnly, "-prune", "-auto-approve"); r.code != exitUsage || !strings.Contains(r.stderr, "no bindings:") {
		t.Fatalf("prune with a file without bindings: %+v", r)
	}
	if r := runCLI(t, "plan", "-f", p, "-prune", "-detailed-exitcode"); r.code != exitOK {
		t.Fatalf("plan after prune: %+v", r)
	}
}

// -format json on every command.
func TestFormatJSONEveryCommand(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	t.Setenv("CRM", testAPIToken)
	p := writeFile(t, "bindings:\n  crm:\n    kind: api_token\n    token_secret: crm_token\nnodes:\n  - id: n\n    credential: crm\n    requires: api_token\n")
	for _, args := range [][]string{
		{"secret", "put", "-from-env", "CRM", "crm_token"},
		{"plan", "-f", p},
		{"apply", "-f", p},
		{"apply", "-f", p, "-dry-run"},
		{"validate", "-f", p},
		{"token", "crm"},
		{"version"},
	} {
		r := runCLI(t, append(args, "-format", "json")...)
		noSecrets(t, r)
		var out map[string]interface{}
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &out) != nil {
			t.Fatalf("%v -format json: %+v", args, r)
		}
	}
	r := runCLI(t, "apply", "-f", p, "-format", "json")
	var out struct {
		Applied  bool `json:"applied"`
		Bindings []struct {
			Handle, Action string
		} `json:"bindings"`
	}
	if json.Unmarshal([]byte(r.stdout), &out) != nil || !out.Applied || len(out.Bindings) != 1 || out.Bindings[0].Action != "unchanged" {
		t.Fatalf("apply -format json: %s", r.stdout)
	}
	oneLineError(t, runCLI(t, "plan", "-f", p, "-format", "yaml"), exitUsage, `-format "yaml"`)
}

func TestAddressAndNamespaceFlags(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, "http://127.0.0.1:1", fakevault.RootToken)
	log := recordWrites(fv)
	p := writeFile(t, "bindings:\n  crm:\n    kind: api_token\n    token_secret: t\n")
	if r := runCLI(t, "apply", "-f", p, "-address", fv.Addr, "-namespace", "team-a"); r.code != exitOK {
		t.Fatalf("apply -address: %+v", r)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.namespaces) == 0 {
		t.Fatal("no request reached -address")
	}
	for _, ns := range log.namespaces {
		if ns != "team-a" && ns != "team-a/" {
			t.Fatalf("namespace header %q, want team-a", ns)
		}
	}
}

// The token comes through vault/api's token helper support: an external
// helper named in the Vault CLI's config file.
func TestTokenFromTokenHelper(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, "")
	home := os.Getenv("HOME")
	helper := filepath.Join(home, "helper.sh")
	if err := os.WriteFile(helper, []byte("#!/bin/sh\n[ \"$1\" = get ] && printf %s '"+fakevault.RootToken+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".vault"), []byte(fmt.Sprintf("token_helper = %q\n", helper)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, "bindings:\n  crm:\n    kind: api_token\n    token_secret: t\n")
	if r := runCLI(t, "apply", "-f", p); r.code != exitOK {
		t.Fatalf("apply with a token helper: %+v", r)
	}
}

// Issue 16 item 4: every problem of a file in one run, a second document
// refused.
func TestDeploymentFileEveryProblemInOneRun(t *testing.T) {
	env(t, "http://127.0.0.1:1", "unused")
	p := writeFile(t, `bindings:
  a:
    kind: api_token
    token: `+testAPIToken+`
  b:
    kind: nope
nodez: []
nodes:
  - id: n1
    credentials: a
  - id: n2
    credential: a
    requires: api_token
    scopes: {x: y}
---
bindings: {}
`)
	r := runCLI(t, "validate", "-f", p)
	noSecrets(t, r)
	for _, want := range []string{
		"deployment.yaml:4: bindings.a.token: secret values do not belong",
		`deployment.yaml:6: bindings.b.kind: unknown kind "nope"`,
		`deployment.yaml:7: unknown top-level key "nodez"`,
		`deployment.yaml:10: unknown key "credentials" in a node`,
		"deployment.yaml:14: nodes[1] (n2): scopes must be a list of scopes",
		"deployment.yaml:15: a second YAML document",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if r.code != exitUsage || strings.Count(r.stderr, "\n") != 6 {
		t.Fatalf("want 6 problems, one per line, exit 2: %+v", r)
	}
}

// validate -f checks the nodes against the file's own bindings, and its
// advice never says to add a binding the file has.
func TestValidateAgainstTheFile(t *testing.T) {
	fv := fakevault.Start(t)
	env(t, fv.Addr, fakevault.RootToken)
	p := writeFile(t, `bindings:
  crm:
    kind: api_token
    token_secret: crm_token
  cc:
    kind: oauth2.client_credentials
    client_id_secret: id
    client_secret_secret: s
    token_url: https://idp.example/token
    scopes: [read]
nodes:
  - id: push
    credential: crm
    requires: oauth2.client_credentials
  - id: fetch
    credential: cc
    requires: oauth2.client_credentials
    scopes: read write
`)
	r := runCLI(t, "validate", "-f", p)
	if r.code != exitInvalid {
		t.Fatalf("%+v", r)
	}
	for _, want := range []string{
		"error: node push, handle crm: kind_mismatch (in the file)",
		"deployment.yaml:2: bindings.crm is kind api_token",
		"error: node fetch, handle cc: missing_scopes (in the file)",
		`"write"`,
		"error: node push, handle crm: missing",
		"to do:         bindings.crm is in " + p + " but not in Vault: run flowcred apply -f " + p,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("validate output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "add bindings.crm") || strings.Contains(r.stdout, "add bindings.cc") {
		t.Fatalf("advice to add a binding the file has:\n%s", r.stdout)
	}

	// Applied (what the plugin accepts of it): the plugin's missing_scopes.
	fixed := writeFile(t, `bindings:
  cc:
    kind: oauth2.client_credentials
    client_id_secret: id
    client_secret_secret: s
    token_url: https://idp.example/token
    scopes: [read]
nodes:
  - id: fetch
    credential: cc
    requires: oauth2.client_credentials
    scopes: read
  - id: admin
    credential: cc
    requires: oauth2.client_credentials
    scopes: [admin]
`)
	fv.Write(t, "flowcred/secrets/id", map[string]interface{}{"value": "client"})
	fv.Write(t, "flowcred/secrets/s", map[string]interface{}{"value": testClientSecret})
	if r := runCLI(t, "apply", "-f", fixed); r.code != exitOK {
		t.Fatalf("%+v", r)
	}
	r = runCLI(t, "validate", "-f", fixed, "-format", "json")
	var answer struct {
		Valid    bool `json:"valid"`
		Problems []struct {
			Node, Problem, Source string
		} `json:"problems"`
	}
	if r.code != exitInvalid || json.Unmarshal([]byte(r.stdout), &answer) != nil || answer.Valid {
		t.Fatalf("%+v", r)
	}
	// One problem for node admin (the file's and Vault's agree: reported once).
	if len(answer.Problems) != 1 || answer.Problems[0].Node != "admin" || answer.Problems[0].Problem != "missing_scopes" {
		t.Fatalf("problems: %+v", answer.Problems)
	}
}
