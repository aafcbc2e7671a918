package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Problems of the validate answer (design.md, "Validation").
var errorProblems = map[string]bool{"missing": true, "kind_mismatch": true, "missing_secret": true}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	f := newFlags("validate", "flowcred validate -f FILE [-mount flowcred] [-format text|json]")
	file := f.String("f", "", "deployment file (YAML with nodes: {id, credential, requires}); - reads stdin")
	format := f.String("format", "text", "output: text, or json (the plugin's answer, for pipelines)")
	pos, code, ok := f.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case len(pos) > 0:
		return usageErr(stderr, "validate", fmt.Sprintf("unexpected argument %q; the file is given with -f", pos[0]))
	case *file == "":
		return usageErr(stderr, "validate", "-f FILE is required")
	case *format != "text" && *format != "json":
		return usageErr(stderr, "validate", fmt.Sprintf("-format %q: use text or json", *format))
	}
	d, code := loadOrFail(*file, stderr)
	if d == nil {
		return code
	}
	if len(d.nodes) == 0 {
		return failf(stderr, exitUsage, "%s: no node has a credential; nothing to validate", *file)
	}
	reqs := make([]interface{}, 0, len(d.nodes))
	for _, n := range d.nodes {
		var kind interface{} = n.kinds
		if len(n.kinds) == 1 {
			kind = n.kinds[0]
		}
		reqs = append(reqs, map[string]interface{}{"node": n.id, "handle": n.credential, "kind": kind})
	}
	c, err := newVaultClient()
	if err != nil {
		return failf(stderr, exitVault, "%s", err)
	}
	path := f.mountPath() + "/validate"
	resp, err := write(c, path, map[string]interface{}{"requirements": reqs})
	if err != nil {
		ve := describeVaultErr(c, "writing "+path, err)
		return failf(stderr, ve.code, "%s", ve)
	}
	if resp == nil || resp.Data == nil {
		return failf(stderr, exitVault, "%s: Vault returned no answer; is the flowcred plugin mounted at %s?", path, f.mountPath())
	}
	valid, _ := resp.Data["valid"].(bool)
	problems := parseProblems(resp.Data["problems"])

	if *format == "json" {
		out, _ := json.MarshalIndent(map[string]interface{}{"valid": valid, "problems": problemsOrEmpty(resp.Data["problems"])}, "", "  ")
		fmt.Fprintln(stdout, string(out))
	} else {
		printProblems(stdout, problems)
		errs, warns := 0, 0
		for _, p := range problems {
			if errorProblems[p.Problem] {
				errs++
			} else {
				warns++
			}
		}
		verdict := "valid"
		if !valid {
			verdict = "NOT valid"
		}
		fmt.Fprintf(stdout, "%s: %s, %s, %s\n", verdict, plural(len(reqs), "requirement"), plural(errs, "error"), plural(warns, "warning"))
	}
	if !valid {
		return exitInvalid
	}
	return exitOK
}

// problem is one entry of the validate answer.
type problem struct {
	Node         string `json:"node"`
	Handle       string `json:"handle"`
	RequiredKind string `json:"required_kind"`
	BoundKind    string `json:"bound_kind"`
	Problem      string `json:"problem"`
	Detail       string `json:"detail"`
}

func parseProblems(raw interface{}) []problem {
	b, err := json.Marshal(raw)
	if err != nil {
		return nil
	}
	var out []problem
	_ = json.Unmarshal(b, &out)
	return out
}

func problemsOrEmpty(raw interface{}) interface{} {
	if raw == nil {
		return []interface{}{}
	}
	return raw
}

func printProblems(w io.Writer, problems []problem) {
	for _, p := range problems {
		level := "warning"
		if errorProblems[p.Problem] {
			level = "error"
		}
		bound := p.BoundKind
		if bound == "" {
			bound = "(none)"
		}
		fmt.Fprintf(w, "%s: node %s, handle %s: %s\n", level, p.Node, p.Handle, p.Problem)
		fmt.Fprintf(w, "  required kind: %s\n", p.RequiredKind)
		fmt.Fprintf(w, "  bound kind:    %s\n", bound)
		if p.Detail != "" {
			fmt.Fprintf(w, "  detail:        %s\n", p.Detail)
		}
		fmt.Fprintf(w, "  to do:         %s\n", remedy(p))
	}
}

// remedy says what an operator does about a problem.
func remedy(p problem) string {
	switch p.Problem {
	case "missing":
		return fmt.Sprintf("bind the handle: add bindings.%s (kind %s) to the deployment file and run flowcred apply",
			p.Handle, strings.Split(p.RequiredKind, " | ")[0])
	case "kind_mismatch":
		return fmt.Sprintf("point node %s at a handle of kind %s, or bind another handle; a binding's kind cannot change (delete it and apply again)",
			p.Node, p.RequiredKind)
	case "missing_secret":
		return "store each referenced secret: flowcred secret put NAME -from-file PATH (or apply -secrets-from-env PREFIX)"
	case "needs_reauth":
		return "re-authorize: obtain a new refresh token (or fix the client credentials), store it with flowcred secret put, and read the token again"
	default:
		return "see detail"
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
