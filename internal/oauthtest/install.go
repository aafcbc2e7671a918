// Locating testdata/oauth-server and installing its node modules.

package oauthtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ModuleRoot walks up from the working directory to the directory holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("oauthtest: go.mod not found in the working directory or any parent")
		}
		dir = parent
	}
}

// ServerDir returns the testdata/oauth-server directory (or $OAUTHTEST_SERVER_DIR).
func ServerDir() (string, error) {
	if d := os.Getenv(ServerDirEnv); d != "" {
		return filepath.Abs(d)
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "testdata", "oauth-server")
	if _, err := os.Stat(filepath.Join(dir, "server.js")); err != nil {
		return "", fmt.Errorf("oauthtest: %s/server.js not found: %w", dir, err)
	}
	return dir, nil
}

// EnsureNodeModules runs `npm ci --no-audit --no-fund` in dir unless its
// node_modules already holds the exact dependency versions package.json
// pins. A file lock serializes concurrent callers (parallel test packages).
func EnsureNodeModules(ctx context.Context, dir string) error {
	if nodeModulesCurrent(dir) {
		return nil
	}
	unlock, err := lockFile(ctx, filepath.Join(os.TempDir(), "flowcred-oauthtest-"+shortHash(dir)+".lock"))
	if err != nil {
		return fmt.Errorf("oauthtest: locking for npm ci: %w", err)
	}
	defer unlock()
	if nodeModulesCurrent(dir) { // someone else installed while we waited
		return nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return fmt.Errorf("oauthtest: %s/node_modules needs installing but npm is not on PATH: %w", dir, err)
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("oauthtest: npm ci in %s: %w\n%s", dir, err, out)
	}
	if !nodeModulesCurrent(dir) {
		return fmt.Errorf("oauthtest: npm ci in %s succeeded but dependencies still look missing\n%s", dir, out)
	}
	return nil
}

// nodeModulesCurrent reports whether every dependency in dir/package.json is
// installed, at the exact version when package.json pins one.
func nodeModulesCurrent(dir string) bool {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return false
	}
	for name, want := range pkg.Dependencies {
		var dep struct {
			Version string `json:"version"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "node_modules", filepath.FromSlash(name), "package.json"))
		if err != nil || json.Unmarshal(b, &dep) != nil {
			return false
		}
		if isExactVersion(want) && dep.Version != want {
			return false
		}
	}
	return true
}

func isExactVersion(v string) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if !(r == '.' || r == '-' || r == '+' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return v[0] >= '0' && v[0] <= '9'
}

func shortHash(s string) string {
	// FNV-1a; only needs to separate checkouts on one machine.
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return fmt.Sprintf("%016x", h)
}
