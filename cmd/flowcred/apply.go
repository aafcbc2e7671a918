package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/vault/api"
)

// googleTokenURL is the default token_url of the google.* kinds; a binding
// read shows it even when it was never set.
const googleTokenURL = "https://oauth2.googleapis.com/token"

func cmdPlan(args []string, stdout, stderr io.Writer) int {
	f := newFlags("plan", "flowcred plan -f FILE [-mount flowcred] [-secrets-from-env PREFIX] [-prune] [-detailed-exitcode] [-format text|json]")
	o := deployFlags(f, false)
	o.detailed = f.Bool("detailed-exitcode", false, "exit 4 when changes are pending (0: none; 1, 2, 3 as usual)")
	return runDeploy(f, o, args, false, stdout, stderr)
}

func cmdApply(args []string, stdout, stderr io.Writer) int {
	f := newFlags("apply", "flowcred apply -f FILE [-mount flowcred] [-secrets-from-env PREFIX] [-prune [-auto-approve]] [-dry-run] [-format text|json]")
	o := deployFlags(f, true)
	o.dryRun = f.Bool("dry-run", false, "show what would change and write nothing (flowcred plan)")
	return runDeploy(f, o, args, true, stdout, stderr)
}

// deployOpts are the flags plan and apply share.
type deployOpts struct {
	file, prefix                         *string
	prune, autoApprove, detailed, dryRun *bool
}

func deployFlags(f *commandFlags, apply bool) deployOpts {
	o := deployOpts{
		file:   f.String("f", "", "deployment file (YAML with bindings:); - reads stdin"),
		prefix: f.String("secrets-from-env", "", "store each referenced secret NAME from the environment variable PREFIX+NAME (or PREFIX+NAME in upper case) when it is set and its value differs from the stored one (compared by fingerprint)"),
		prune:  f.Bool("prune", false, "also delete the mount's bindings that the file does not name"),
		// Each command sets the flags it has; the others stay false.
		autoApprove: new(bool), detailed: new(bool), dryRun: new(bool),
	}
	if apply {
		o.autoApprove = f.Bool("auto-approve", false, "with -prune: delete without asking for confirmation")
	}
	return o
}

// runDeploy is plan (apply false, or apply -dry-run) and apply.
func runDeploy(f *commandFlags, o deployOpts, args []string, apply bool, stdout, stderr io.Writer) int {
	name := strings.TrimPrefix(f.Name(), "flowcred ")
	pos, code, ok := f.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	if *o.dryRun {
		apply = false
	}
	switch {
	case len(pos) > 0:
		return usageErr(stderr, name, fmt.Sprintf("unexpected argument %q; the file is given with -f", pos[0]))
	case *o.file == "":
		return usageErr(stderr, name, "-f FILE is required")
	}
	d, code := loadOrFail(*o.file, stderr)
	if d == nil {
		return code
	}
	if !d.hasBindings {
		if *o.prune {
			return failf(stderr, exitUsage, "%s has no bindings:; -prune would delete every binding of the mount (write bindings: {} to mean that)", *o.file)
		}
		if !f.json() {
			fmt.Fprintf(stdout, "%s has no bindings; nothing to %s\n", *o.file, name)
			return exitOK
		}
	}
	c, err := newVaultClient(f)
	if err != nil {
		return failf(stderr, exitVault, "%s", err)
	}
	dp := &deployer{c: c, mount: f.mountPath()}
	rep := &deployReport{Applied: apply, Mount: dp.mount, Secrets: []secretChange{}, Bindings: []bindingChange{}}
	fail := func(ve *vaultError) int { return failf(stderr, ve.code, "%s", ve) }

	var deletes []bindingChange
	if *o.prune {
		var ve *vaultError
		if deletes, ve = dp.planPrune(d); ve != nil {
			return fail(ve)
		}
		if apply && len(deletes) > 0 && !*o.autoApprove {
			if code, ok := confirmPrune(deletes, dp.mount, *o.file, stderr); !ok {
				return code
			}
		}
	}
	if *o.prefix != "" {
		secrets, ve := dp.planSecrets(*o.prefix, d.referencedSecrets(), func(w string) { fmt.Fprintln(stderr, w) })
		if ve != nil {
			return fail(ve)
		}
		if apply {
			if ve := dp.writeSecrets(secrets); ve != nil {
				return fail(ve)
			}
		}
		rep.Secrets = secrets
	}
	for _, b := range d.bindings {
		ch, ve := dp.planBinding(b)
		if ve != nil {
			return fail(ve)
		}
		if !apply {
			dropPlannedSecretWarnings(&ch, rep.Secrets)
		} else if ch.Action == actionCreate || ch.Action == actionUpdate {
			if ve := dp.writeBinding(&ch); ve != nil {
				return fail(ve)
			}
		}
		rep.Bindings = append(rep.Bindings, ch)
	}
	for _, ch := range deletes {
		if apply {
			if ve := dp.deleteBinding(&ch); ve != nil {
				return fail(ve)
			}
		}
		rep.Bindings = append(rep.Bindings, ch)
	}

	if f.json() {
		printReportJSON(stdout, rep)
	} else {
		printReport(stdout, stderr, rep, *o.prefix != "")
	}
	switch {
	case rep.counts()[actionRefused] > 0:
		return exitInvalid
	case *o.detailed && rep.pending():
		return exitChanges
	}
	return exitOK
}

// confirmPrune asks on stdin before apply -prune deletes anything; nothing
// is written until it is answered yes.
func confirmPrune(deletes []bindingChange, mount, file string, stderr io.Writer) (int, bool) {
	handles := make([]string, len(deletes))
	for i, d := range deletes {
		handles[i] = d.Handle
	}
	fmt.Fprintf(stderr, "flowcred apply -prune deletes %s of mount %s that %s does not name: %s\nType yes to go on: ",
		plural(len(deletes), "binding"), mount, file, strings.Join(handles, ", "))
	answer, err := bufio.NewReader(stdin).ReadString('\n')
	answer = strings.TrimSpace(answer)
	switch {
	case answer == "yes":
		return exitOK, true
	case answer == "" && err != nil:
		return failf(stderr, exitUsage, "-prune: no confirmation on standard input; answer yes, or pass -auto-approve; nothing was written"), false
	default:
		return failf(stderr, exitUsage, "-prune not confirmed (answered %q); nothing was written", truncate(answer, 20)), false
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
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
