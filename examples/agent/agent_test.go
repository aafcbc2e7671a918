package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// agentTestToken is the api_token the binding serves; a test constant.
const agentTestToken = "agent-example-api-token"

// TestAgentRendersConnectorConfig runs the real vault agent with this
// directory's agent.hcl (paths rewritten to a temp dir, exit_after_auth
// added), authenticated by a token that has only connector-google_sales.hcl,
// and checks the rendered connector config.
func TestAgentRendersConnectorConfig(t *testing.T) {
	vaulttest.Require(t)
	s := vaulttest.Start(t, vaulttest.Options{})

	policy, err := os.ReadFile("connector-google_sales.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Client.Sys().PutPolicy("connector-google_sales", string(policy)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Logical().Write(s.Mount+"/bindings/google_sales", map[string]interface{}{
		"kind":          "api_token",
		"token":         agentTestToken,
		"extra_headers": map[string]interface{}{"x-goog-user-project": "sales-project"},
	}); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Client.Auth().Token().Create(&api.TokenCreateRequest{
		Policies: []string{"connector-google_sales"},
		TTL:      "1h",
	})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	etc, run := filepath.Join(dir, "etc")+"/", filepath.Join(dir, "run")+"/"
	for _, d := range []string{etc, run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(etc+"vault-token", []byte(secret.Auth.ClientToken), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("connector-config.json.ctmpl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(etc+"connector-config.json.ctmpl", tmpl, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile("agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		"/etc/flowcred/agent/", etc,
		"/run/flowcred/", run,
		`address = "http://127.0.0.1:8200"`, `address = "`+s.Addr+`"`,
	).Replace(string(cfg))
	if conf == string(cfg) || strings.Contains(conf, "/etc/flowcred") {
		t.Fatal("agent.hcl no longer has the paths this test rewrites")
	}
	conf += "\nexit_after_auth = true\n"
	confPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vaulttest.VaultBin(), "agent", "-config="+confPath)
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vault agent: %v\n%s", err, out)
	}

	rendered, err := os.ReadFile(run + "google_sales.json")
	if err != nil {
		t.Fatalf("no rendered config: %v\nagent output:\n%s", err, out)
	}
	var got struct {
		Handle        string            `json:"handle"`
		Kind          string            `json:"kind"`
		Authorization string            `json:"authorization"`
		Headers       map[string]string `json:"headers"`
		ExpiresAt     *string           `json:"expires_at"`
	}
	if err := json.Unmarshal(rendered, &got); err != nil {
		t.Fatalf("rendered config is not JSON: %v\n%s", err, rendered)
	}
	if got.Handle != "google_sales" || got.Kind != "api_token" || got.Authorization != "Bearer "+agentTestToken ||
		got.Headers["x-goog-user-project"] != "sales-project" || got.ExpiresAt != nil {
		t.Fatalf("rendered config: %s", rendered)
	}
	if fi, err := os.Stat(run + "google_sales.json"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("rendered file mode: %v %v", fi.Mode(), err)
	}
}
