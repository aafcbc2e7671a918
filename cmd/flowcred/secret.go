package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSecretBytes is the plugin's limit on a stored secret.
const maxSecretBytes = 64 << 10

func cmdSecretPut(args []string, stdout, stderr io.Writer) int {
	f := newFlags("secret put", "flowcred secret put [-mount flowcred] (-from-file PATH | -from-env VAR) NAME")
	fromFile := f.String("from-file", "", "read the value from this file (- reads stdin); trailing newlines are dropped")
	fromEnv := f.String("from-env", "", "read the value from this environment variable")
	pos, code, ok := f.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case len(pos) != 1:
		return usageErr(stderr, "secret put", "give exactly one NAME (the value comes from -from-file or -from-env, never the command line)")
	case !validName(pos[0]):
		return usageErr(stderr, "secret put", fmt.Sprintf("%q is not a valid secret name (letters, digits, _, - and ., starting and ending with a letter or digit)", pos[0]))
	case (*fromFile == "") == (*fromEnv == ""):
		return usageErr(stderr, "secret put", "give exactly one of -from-file PATH or -from-env VAR")
	}
	name := pos[0]
	var value, source string
	if *fromFile != "" {
		b, err := readBounded(*fromFile, maxSecretBytes)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return failf(stderr, exitUsage, "%s: no such file", *fromFile)
		case err != nil:
			return failf(stderr, exitUsage, "%s", err)
		}
		value = strings.TrimRight(string(b), "\r\n")
		source = *fromFile
	} else {
		v, set := os.LookupEnv(*fromEnv)
		if !set {
			return failf(stderr, exitUsage, "environment variable %s is not set", *fromEnv)
		}
		value = v
		source = "$" + *fromEnv
	}
	if value == "" {
		return failf(stderr, exitUsage, "the value from %s is empty; not written", source)
	}
	c, err := newVaultClient(f)
	if err != nil {
		return failf(stderr, exitVault, "%s", err)
	}
	path := f.mountPath() + "/secrets/" + name
	if _, err := write(c, path, map[string]interface{}{"value": value}); err != nil {
		ve := describeVaultErr(c, "writing "+path, err)
		return failf(stderr, ve.code, "%s", ve)
	}
	if f.json() {
		out, _ := json.MarshalIndent(map[string]interface{}{"name": name, "source": source, "bytes": len(value), "written": true}, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return exitOK
	}
	fmt.Fprintf(stdout, "secret %s written from %s (%d bytes)\n", name, source, len(value))
	return exitOK
}
