package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"
)

// googleTokenURL is the default token_url of the google.* kinds; a binding
// read shows it even when it was never set.
const googleTokenURL = "https://oauth2.googleapis.com/token"

func cmdApply(args []string, stdout, stderr io.Writer) int {
	f := newFlags("apply", "flowcred apply -f FILE [-mount flowcred] [-secrets-from-env PREFIX] [-dry-run]")
	file := f.String("f", "", "deployment file (YAML with bindings:); - reads stdin")
	prefix := f.String("secrets-from-env", "", "before writing bindings, store each referenced secret NAME from the environment variable PREFIX+NAME (or PREFIX+NAME in upper case) when it is set")
	dryRun := f.Bool("dry-run", false, "check the file and show what would be written, without writing")
	pos, code, ok := f.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageErr(stderr, "apply", fmt.Sprintf("unexpected argument %q; the file is given with -f", pos[0]))
	}
	if *file == "" {
		return usageErr(stderr, "apply", "-f FILE is required")
	}
	d, code := loadOrFail(*file, stderr)
	if d == nil {
		return code
	}
	if len(d.bindings) == 0 {
		fmt.Fprintf(stdout, "%s has no bindings; nothing to apply\n", *file)
		return exitOK
	}
	mount := f.mountPath()
	if *dryRun {
		for _, b := range d.bindings {
			fmt.Fprintf(stdout, "binding %s (%s): would write %s\n", b.handle, b.kind, strings.Join(sortedKeys(b.fields), ", "))
		}
		return exitOK
	}
	c, err := newVaultClient()
	if err != nil {
		return failf(stderr, exitVault, "%s", err)
	}
	if *prefix != "" {
		if code := putSecretsFromEnv(c, mount, *prefix, d.referencedSecrets(), stdout, stderr); code != exitOK {
			return code
		}
	}

	created, updated, refused := 0, 0, 0
	for _, b := range d.bindings {
		path := mount + "/bindings/" + b.handle
		existing, err := read(c, path)
		if err != nil {
			ve := describeVaultErr(c, "reading "+path, err)
			if ve.code == exitVault {
				return failf(stderr, exitVault, "%s", ve)
			}
			fmt.Fprintf(stderr, "binding %s: %s\n", b.handle, ve)
			refused++
			continue
		}
		payload := applyPayload(b, existing)
		resp, err := write(c, path, payload)
		if err != nil {
			ve := describeVaultErr(c, "writing "+path, err)
			if ve.code == exitVault {
				return failf(stderr, exitVault, "%s", ve)
			}
			fmt.Fprintf(stderr, "binding %s (%s): refused: %s\n", b.handle, b.kind, strings.TrimPrefix(ve.msg, "writing "+path+": "))
			refused++
			continue
		}
		verb := "created"
		if existing != nil {
			verb = "updated"
			updated++
		} else {
			created++
		}
		fmt.Fprintf(stdout, "binding %s (%s): %s\n", b.handle, b.kind, verb)
		if resp != nil {
			for _, w := range resp.Warnings {
				fmt.Fprintf(stdout, "  warning: %s\n", w)
			}
		}
	}
	fmt.Fprintf(stdout, "%d created, %d updated, %d refused\n", created, updated, refused)
	if refused > 0 {
		return exitInvalid
	}
	return exitOK
}

// loadOrFail loads the deployment, printing its problems on failure.
func loadOrFail(path string, stderr io.Writer) (*deployment, int) {
	d, err := loadDeployment(path)
	if err == nil {
		return d, exitOK
	}
	var ie *inputError
	if errors.As(err, &ie) {
		for _, p := range ie.problems {
			fmt.Fprintf(stderr, "flowcred: %s\n", p)
		}
		return nil, exitUsage
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, failf(stderr, exitUsage, "%s: no such file", path)
	}
	return nil, failf(stderr, exitUsage, "%s", err)
}

// applyPayload is the write that makes the stored binding match the file:
// the file's fields, plus a clearing value for each field the stored binding
// has and the file no longer gives. Inline secret values set outside the
// file (vault write ... client_secret=...) are kept, since the file cannot
// hold them; a reference in the file replaces them.
func applyPayload(b binding, existing *api.Secret) map[string]interface{} {
	payload := map[string]interface{}{"kind": b.kind}
	for k, v := range b.fields {
		payload[k] = v
	}
	if existing == nil || existing.Data == nil {
		return payload
	}
	if k, _ := existing.Data["kind"].(string); k != b.kind {
		return payload // the plugin refuses the kind change with its own message
	}
	for _, f := range kinds[b.kind].managedFields() {
		if _, inFile := b.fields[f]; inFile {
			continue
		}
		cur, set := existing.Data[f]
		if f == "scheme" && set && cur != "Bearer" {
			// Absent means the default, Bearer; "" would mean a bare token.
			payload[f] = "Bearer"
			continue
		}
		if !set || isEmptyValue(cur) {
			continue
		}
		switch f {
		case "ttl":
			payload[f] = 0
		case "extra_headers", "token_params":
			payload[f] = map[string]string{}
		case "scopes":
			payload[f] = []string{}
		case "token_url":
			if !(strings.HasPrefix(b.kind, "google.") && cur == googleTokenURL) {
				payload[f] = ""
			}
		default:
			payload[f] = ""
		}
	}
	return payload
}

func isEmptyValue(v interface{}) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []interface{}:
		return len(x) == 0
	case map[string]interface{}:
		return len(x) == 0
	case fmt.Stringer: // json.Number
		return x.String() == "0"
	}
	return false
}

// putSecretsFromEnv stores each referenced secret whose variable is set.
func putSecretsFromEnv(c *api.Client, mount, prefix string, names []string, stdout, stderr io.Writer) int {
	for _, name := range names {
		envName := prefix + name
		val, ok := os.LookupEnv(envName)
		if !ok {
			envName = strings.ToUpper(prefix + name)
			val, ok = os.LookupEnv(envName)
		}
		if !ok {
			continue
		}
		if val == "" {
			fmt.Fprintf(stderr, "secret %s: $%s is empty; not written\n", name, envName)
			continue
		}
		path := mount + "/secrets/" + name
		if _, err := write(c, path, map[string]interface{}{"value": val}); err != nil {
			ve := describeVaultErr(c, "writing "+path, err)
			return failf(stderr, ve.code, "%s", ve)
		}
		fmt.Fprintf(stdout, "secret %s: written from $%s\n", name, envName)
	}
	return exitOK
}

func sortedKeys(m map[string]interface{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
