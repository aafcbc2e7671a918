// Command flowcred manages flowcred bindings from a deployment file and
// inspects credential material, talking to Vault like the vault CLI does
// (VAULT_ADDR, VAULT_TOKEN or the vault CLI's token helper, VAULT_NAMESPACE,
// VAULT_CACERT, ...).
//
//	flowcred plan -f deployment.yaml           show what apply would change
//	flowcred apply -f deployment.yaml          make Vault's bindings match the file
//	flowcred validate -f deployment.yaml       check the file's nodes against the bindings
//	flowcred token [-show-token] HANDLE        show a handle's material (not its token)
//	flowcred connect [-device] HANDLE          obtain a binding's refresh token through the plugin
//	flowcred secret put NAME -from-file PATH   store a secret value bindings can reference
//	flowcred version                           print the CLI's version
//
// Exit codes: 0 success; 1 the deployment is not valid (validate found an
// error, the plugin refused a binding, the handle has no usable material);
// 2 usage or input error (flags, missing or malformed file, unknown key,
// secret value in the file); 3 Vault error (no token, unreachable, sealed,
// permission denied, server error); 4 plan -detailed-exitcode: changes
// pending.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const (
	exitOK      = 0
	exitInvalid = 1
	exitUsage   = 2
	exitVault   = 3
	// exitChanges: plan -detailed-exitcode found changes to apply
	// (terraform's idea; its number 2 is taken here by usage errors).
	exitChanges = 4
)

// stdin answers apply -prune's confirmation; tests replace it.
var stdin io.Reader = os.Stdin

const usageText = `Usage: flowcred <command> [flags]

Commands:
  plan      -f FILE [-secrets-from-env PREFIX] [-prune] [-detailed-exitcode]
                                                show what apply would change (writes nothing)
  apply     -f FILE [-secrets-from-env PREFIX] [-prune [-auto-approve]]
                                                make Vault's bindings match the file
  validate  -f FILE                             check the file's nodes against its and Vault's bindings
  token     [-show-token] HANDLE                show a handle's credential material
  connect   [-device] [-no-browser] [-scopes S] [-port N] [-timeout D] HANDLE
                                                connect a binding: approve in a browser (or with a code on another device)
  secret put (-from-file PATH | -from-env VAR) NAME
                                                store a secret value (never from the command line)
  version                                       print the CLI's version

Every command takes -format text|json, -mount (default flowcred), -address
and -namespace. Vault is reached like the vault CLI does: VAULT_ADDR,
VAULT_TOKEN (or the vault CLI's token helper: ~/.vault-token after vault
login), VAULT_NAMESPACE, VAULT_CACERT, VAULT_MAX_RETRIES, ...

Exit codes: 0 ok; 1 not valid (validation error, binding refused, handle not
usable); 2 usage or input error; 3 Vault error (no token, unreachable, denied);
4 plan -detailed-exitcode: changes pending.
Run 'flowcred <command> -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "plan":
		return cmdPlan(rest, stdout, stderr)
	case "apply":
		return cmdApply(rest, stdout, stderr)
	case "validate":
		return cmdValidate(rest, stdout, stderr)
	case "token":
		return cmdToken(rest, stdout, stderr)
	case "connect":
		return runConnect(rest, stdout, stderr)
	case "secret":
		if len(rest) == 0 || rest[0] != "put" {
			return usageErr(stderr, "secret", "the only subcommand is put: flowcred secret put (-from-file PATH | -from-env VAR) NAME")
		}
		return cmdSecretPut(rest[1:], stdout, stderr)
	case "version":
		return cmdVersion(rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		return usageErr(stderr, "", fmt.Sprintf("unknown command %q (plan, apply, validate, token, connect, secret put, version; flowcred -h)", cmd))
	}
}

// usageErr prints a one-line usage error and returns exitUsage.
func usageErr(stderr io.Writer, cmd, msg string) int {
	prefix := "flowcred"
	if cmd != "" {
		prefix += " " + cmd
	}
	fmt.Fprintf(stderr, "%s: %s\n", prefix, msg)
	return exitUsage
}

// failf prints a one-line error and returns code.
func failf(stderr io.Writer, code int, format string, args ...interface{}) int {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(stderr, "flowcred: %s\n", strings.Join(strings.Fields(msg), " "))
	return code
}

// commandFlags is a flag set with the flags every command shares.
type commandFlags struct {
	*flag.FlagSet
	mount     *string
	address   *string
	namespace *string
	format    *string
	help      string
}

func newFlags(name, help string) *commandFlags {
	fs := flag.NewFlagSet("flowcred "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &commandFlags{
		FlagSet:   fs,
		mount:     fs.String("mount", "flowcred", "path the flowcred plugin is mounted at"),
		address:   fs.String("address", "", "Vault's address (default $VAULT_ADDR)"),
		namespace: fs.String("namespace", "", "Vault namespace (default $VAULT_NAMESPACE)"),
		format:    fs.String("format", "text", "output: text, or json"),
		help:      help,
	}
}

// json reports whether the output is JSON.
func (f *commandFlags) json() bool { return *f.format == "json" }

// parse parses flags that may come before or after positional arguments
// (flowcred token google_sales -show-token). It returns the positional
// arguments, or an exit code when parsing ended the command.
func (f *commandFlags) parse(args []string, stdout, stderr io.Writer) ([]string, int, bool) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.printUsage(stdout)
				return nil, exitOK, false
			}
			return nil, usageErr(stderr, strings.TrimPrefix(f.Name(), "flowcred "), err.Error()+" (see -h)"), false
		}
		args = f.Args()
		if len(args) == 0 {
			if *f.format != "text" && *f.format != "json" {
				return nil, usageErr(stderr, strings.TrimPrefix(f.Name(), "flowcred "), fmt.Sprintf("-format %q: use text or json", *f.format)), false
			}
			return pos, 0, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (f *commandFlags) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\nFlags:\n", f.help)
	f.SetOutput(w)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}

func (f *commandFlags) mountPath() string { return strings.Trim(*f.mount, "/") }
