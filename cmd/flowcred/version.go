package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is the CLI's version without the leading v. scripts/release.sh
// stamps it (-ldflags "-X main.version=0.2.0"), as it stamps the plugin's.
// An unstamped build reports the module version Go recorded (a go install
// of a tagged module, or a VCS pseudo-version), else 0.0.0-dev.
var version = ""

// versionString is the CLI's version with a leading v.
func versionString() string {
	v := version
	if v == "" {
		v = "0.0.0-dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return "v" + strings.TrimPrefix(v, "v")
}

// cmdVersion prints "flowcred vX.Y.Z (goVERSION GOOS/GOARCH)", or with
// -format json {"version", "go", "platform"}.
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	f := newFlags("version", "flowcred version")
	pos, code, ok := f.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageErr(stderr, "version", fmt.Sprintf("takes no arguments, got %q", pos[0]))
	}
	if f.json() {
		out, _ := json.MarshalIndent(map[string]string{
			"version": versionString(), "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH,
		}, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return exitOK
	}
	fmt.Fprintf(stdout, "flowcred %s (%s %s/%s)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
