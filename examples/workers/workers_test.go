package workers_test

import (
	"os/exec"
	"testing"
)

// TestWorkerRecipe keeps the Cloudflare Worker recipe honest without
// Cloudflare: the script must parse, and its caching logic passes its Node
// tests (test/token-cache.test.js, a fake Vault and a Map for DO storage).
// Skipped when node is not installed.
func TestWorkerRecipe(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	for _, args := range [][]string{{"--check", "src/index.js"}, {"--test", "test/"}} {
		out, err := exec.Command(node, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("node %v: %v\n%s", args, err, out)
		}
	}
}
