package terraform_test

import (
	"os"
	"os/exec"
	"testing"
)

// TestTerraformFormatted runs `terraform fmt -check` on the example.
// terraform validate would need the Vault provider, which cannot be
// downloaded offline. Skipped when terraform is not installed.
func TestTerraformFormatted(t *testing.T) {
	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not installed")
	}
	cmd := exec.Command(tf, "fmt", "-check", "-diff", ".")
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "CHECKPOINT_DISABLE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("terraform fmt -check: %v\n%s", err, out)
	}
}
