package main

import (
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })

	version = "0.2.0"
	r := runCLI(t, "version")
	want := "flowcred v0.2.0 (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if r.code != exitOK || r.stdout != want || r.stderr != "" {
		t.Fatalf("version: exit %d stdout %q stderr %q; want 0 and %q", r.code, r.stdout, r.stderr, want)
	}

	// A stamped version with its v is not doubled.
	version = "v0.2.0-rc.1"
	if r := runCLI(t, "version"); !strings.HasPrefix(r.stdout, "flowcred v0.2.0-rc.1 (") {
		t.Fatalf("version v0.2.0-rc.1: stdout %q", r.stdout)
	}

	// Unstamped (go test, go build in the tree): still a v-prefixed version.
	version = ""
	if got := versionString(); !regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+`).MatchString(got) {
		t.Fatalf("unstamped version %q, want vX.Y.Z...", got)
	}

	if r := runCLI(t, "version", "extra"); r.code != exitUsage || !strings.Contains(r.stderr, "takes no arguments") {
		t.Fatalf("version extra: exit %d stderr %q, want usage error", r.code, r.stderr)
	}
	if r := runCLI(t, "version", "-h"); r.code != exitOK || !strings.Contains(r.stdout, "Usage: flowcred version") {
		t.Fatalf("version -h: exit %d stdout %q", r.code, r.stdout)
	}
	if r := runCLI(t, "-h"); !strings.Contains(r.stdout, "version") {
		t.Fatalf("flowcred -h does not list version: %q", r.stdout)
	}
}
