package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// TestIntegration_ApplyValidateToken runs the CLI against a real Vault with
// the plugin: apply, validate (failing, then passing once the secrets are
// stored), token, and the exit codes of Vault's real refusals.
func TestIntegration_ApplyValidateToken(t *testing.T) {
	vaulttest.Require(t)
	s := vaulttest.Start(t, vaulttest.Options{})
	env(t, s.Addr, s.Token)
	p := writeFile(t, deploymentYAML)
	mount := "-mount=" + s.Mount

	r := runCLI(t, "apply", mount, "-f", p)
	noSecrets(t, r)
	if r.code != exitOK || !strings.Contains(r.stdout, "binding google_sales (google.oauth2): created") ||
		!strings.Contains(r.stdout, `warning: secret "gcp_refresh_token" (field refresh_token_secret) does not exist yet`) {
		t.Fatalf("apply: %+v", r)
	}
	r = runCLI(t, "validate", mount, "-f", p)
	if r.code != exitInvalid || !strings.Contains(r.stdout, "error: node push_crm, handle crm: missing_secret") {
		t.Fatalf("validate before secrets: %+v", r)
	}

	for name, val := range map[string]string{"gcp_client_id": "client-id", "gcp_client_secret": testClientSecret, "gcp_refresh_token": testRefreshToken} {
		t.Setenv("SECRET_VALUE", val)
		if r := runCLI(t, "secret", "put", mount, "-from-env", "SECRET_VALUE", name); r.code != exitOK {
			t.Fatalf("secret put %s: %+v", name, r)
		}
	}
	tokenFile := filepath.Join(t.TempDir(), "crm-token")
	if err := os.WriteFile(tokenFile, []byte(testAPIToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "secret", "put", mount, "-from-file", tokenFile, "crm_token"); r.code != exitOK {
		t.Fatalf("secret put crm_token: %+v", r)
	}

	r = runCLI(t, "validate", mount, "-f", p, "-format", "json")
	var answer struct {
		Valid bool `json:"valid"`
	}
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &answer) != nil || !answer.Valid {
		t.Fatalf("validate after secrets: %+v", r)
	}

	r = runCLI(t, "token", mount, "crm")
	noSecrets(t, r)
	if r.code != exitOK || !strings.Contains(r.stdout, "lease_duration  1800s (30m0s)") || !strings.Contains(r.stdout, "headers         X-Api-Key") {
		t.Fatalf("token: %+v", r)
	}
	if r := runCLI(t, "token", mount, "-show-token", "crm"); r.code != exitOK || !strings.Contains(r.stdout, testAPIToken+"\n") {
		t.Fatalf("token -show-token: %+v", r)
	}
	oneLineError(t, runCLI(t, "token", mount, "unbound"), exitInvalid, `no binding for handle "unbound"`)

	// A second apply of the same file changes nothing.
	r = runCLI(t, "apply", mount, "-f", p)
	if r.code != exitOK || !strings.Contains(r.stdout, "0 created, 0 updated, 0 deleted, 2 unchanged, 0 refused") {
		t.Fatalf("second apply: %+v", r)
	}

	// The example connector policy grants token/google_sales and nothing else.
	policy, err := os.ReadFile("../../examples/agent/connector-google_sales.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Client.Sys().PutPolicy("connector-google_sales", strings.ReplaceAll(string(policy), "flowcred/", s.Mount+"/")); err != nil {
		t.Fatal(err)
	}
	sec, err := s.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"connector-google_sales"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", sec.Auth.ClientToken)
	oneLineError(t, runCLI(t, "token", mount, "crm"), exitVault, "permission denied")
	oneLineError(t, runCLI(t, "validate", mount, "-f", p), exitVault, "Vault answered 403: permission denied")
	oneLineError(t, runCLI(t, "apply", mount, "-f", p), exitVault, "permission denied")

	t.Setenv("VAULT_TOKEN", s.Token)
	oneLineError(t, runCLI(t, "validate", "-mount=not-mounted", "-f", p), exitVault, "404")
}
