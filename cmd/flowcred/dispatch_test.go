package main

import (
	"strings"
	"testing"
)

// Every subcommand is reachable from run and listed in the usage.
func TestDispatch_EveryCommand(t *testing.T) {
	usage := runCLI(t, "-h")
	for _, cmd := range []string{"plan", "apply", "validate", "token", "connect", "secret", "version"} {
		if !strings.Contains(usage.stdout+usage.stderr, "  "+cmd+" ") {
			t.Errorf("usage does not list %s", cmd)
		}
		r := runCLI(t, cmd, "-h")
		if strings.Contains(r.stderr, "unknown command") {
			t.Errorf("%s: %s", cmd, r.stderr)
		}
	}
}
