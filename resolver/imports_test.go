package resolver_test

import (
	"os/exec"
	"strings"
	"testing"
)

const vaultSDK = "github.com/hashicorp/vault/sdk"

// goListDeps is `go list -deps pkg`: every package pkg's non-test build
// imports, directly or not.
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	return strings.Fields(string(out))
}

func withPrefix(pkgs []string, prefix string) []string {
	var out []string
	for _, p := range pkgs {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			out = append(out, p)
		}
	}
	return out
}

// TestImports_NoVaultSDK (issue 17, item 5): a connector importing the
// resolver does not build the Vault SDK (the plugin framework, its gRPC and
// its licence terms). vault/api is allowed; it does not import the SDK
// either, which this checks too.
func TestImports_NoVaultSDK(t *testing.T) {
	deps := goListDeps(t, "github.com/flowcred/vault-plugin-flowcred/resolver")
	if len(withPrefix(deps, "github.com/hashicorp/vault/api")) == 0 {
		t.Fatal("go list shows no vault/api in the resolver's imports: the check is not looking at the right package")
	}
	if sdk := withPrefix(deps, vaultSDK); len(sdk) > 0 {
		t.Fatalf("importing the resolver builds %s (go list -deps ./resolver | grep vault/sdk); keep the resolver free of the SDK", strings.Join(sdk, ", "))
	}
	// The check can fail: the plugin itself is built on the SDK.
	if len(withPrefix(goListDeps(t, "github.com/flowcred/vault-plugin-flowcred/cmd/vault-plugin-flowcred"), vaultSDK)) == 0 {
		t.Fatal("go list finds no SDK in the plugin either: the check is broken")
	}
}
