package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Problems of the validate answer (design.md, "Validation"; "Validation
// gains scopes") that are errors; the others are warnings.
var errorProblems = map[string]bool{"missing": true, "kind_mismatch": true, "missing_secret": true, "missing_scopes": true}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	f := newFlags("validate", "flowcred validate -f FILE [-mount flowcred] [-format text|json]")
	file := f.String("f", "", "deployment file (YAML with nodes: {id, credential, requires, scopes}); - reads stdin")
	pos, code, ok := f.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case len(pos) > 0:
		return usageErr(stderr, "validate", fmt.Sprintf("unexpected argument %q; the file is given with -f", pos[0]))
	case *file == "":
		return usageErr(stderr, "validate", "-f FILE is required")
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
		req := map[string]interface{}{"node": n.id, "handle": n.credential, "kind": kind}
		if len(n.scopes) > 0 {
			req["scopes"] = n.scopes
		}
		reqs = append(reqs, req)
	}
	c, err := newVaultClient(f)
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
	for i := range problems {
		problems[i].Source = "vault"
	}
	// The file's own problems, unless Vault reports the same one.
	for _, p := range fileProblems(d) {
		if !hasProblem(problems, p) {
			problems = append(problems, p)
			if errorProblems[p.Problem] {
				valid = false
			}
		}
	}

	if f.json() {
		out, _ := json.MarshalIndent(map[string]interface{}{"valid": valid, "problems": problems}, "", "  ")
		fmt.Fprintln(stdout, string(out))
	} else {
		printProblems(stdout, problems, d, f.mountPath())
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

// problem is one entry of the validate answer, or one the file's own
// bindings show (Source "file").
type problem struct {
	Node          string   `json:"node"`
	Handle        string   `json:"handle"`
	RequiredKind  string   `json:"required_kind"`
	BoundKind     string   `json:"bound_kind"`
	Problem       string   `json:"problem"`
	Detail        string   `json:"detail"`
	MissingScopes []string `json:"missing_scopes,omitempty"`
	// Source is "vault" (the plugin's answer about Vault's bindings) or
	// "file" (the nodes against the file's own bindings).
	Source string `json:"source"`
}

func parseProblems(raw interface{}) []problem {
	b, err := json.Marshal(raw)
	if err != nil {
		return nil
	}
	out := []problem{}
	_ = json.Unmarshal(b, &out)
	return out
}

func hasProblem(list []problem, p problem) bool {
	for _, q := range list {
		if q.Node == p.Node && q.Handle == p.Handle && q.Problem == p.Problem {
			return true
		}
	}
	return false
}

// fileProblems checks each node against the file's own binding of its
// handle: its kind, and whether its configured scopes include the node's.
func fileProblems(d *deployment) []problem {
	var out []problem
	for _, n := range d.nodes {
		b := d.binding(n.credential)
		if b == nil {
			continue
		}
		p := problem{Node: n.id, Handle: n.credential, RequiredKind: strings.Join(n.kinds, " | "), BoundKind: b.kind, Source: "file"}
		if !containsStr(n.kinds, b.kind) {
			p.Problem = "kind_mismatch"
			p.Detail = fmt.Sprintf("%s:%d: bindings.%s is kind %s, and node %q (line %d) requires %s",
				d.path, b.line, b.handle, b.kind, n.id, n.line, strings.Join(n.kinds, " or "))
			out = append(out, p)
			continue
		}
		if missing := missingFromFile(n, b); len(missing) > 0 {
			p.Problem, p.MissingScopes = "missing_scopes", missing
			p.Detail = fmt.Sprintf("%s:%d: node %q needs scopes %s, which bindings.%s.scopes does not include",
				d.path, n.line, n.id, quoteJoin(missing), b.handle)
			out = append(out, p)
		}
	}
	return out
}

// missingFromFile lists the node's scopes that the file's binding does not
// configure. A binding that configures no scopes asks for what its grant
// has, which only Vault knows (granted scopes): nil, as for a kind without
// scopes.
func missingFromFile(n node, b *binding) []string {
	configured, _ := b.fields["scopes"].([]string)
	if len(n.scopes) == 0 || len(configured) == 0 || !kinds[b.kind].Accepts("scopes") {
		return nil
	}
	have := map[string]bool{}
	for _, v := range configured {
		have[v] = true
	}
	var missing []string
	for _, s := range n.scopes {
		if !have[s] && !containsStr(missing, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

func quoteJoin(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func printProblems(w io.Writer, problems []problem, d *deployment, mount string) {
	for _, p := range problems {
		level := "warning"
		if errorProblems[p.Problem] {
			level = "error"
		}
		bound := p.BoundKind
		if bound == "" {
			bound = "(none)"
		}
		where := ""
		if p.Source == "file" {
			where = " (in the file)"
		}
		fmt.Fprintf(w, "%s: node %s, handle %s: %s%s\n", level, p.Node, p.Handle, p.Problem, where)
		fmt.Fprintf(w, "  required kind: %s\n", p.RequiredKind)
		fmt.Fprintf(w, "  bound kind:    %s\n", bound)
		if p.Detail != "" {
			fmt.Fprintf(w, "  detail:        %s\n", p.Detail)
		}
		fmt.Fprintf(w, "  to do:         %s\n", remedy(p, d, mount))
	}
}

// remedy says what an operator does about a problem, knowing what the
// file has: it never says to add a binding the file already has.
func remedy(p problem, d *deployment, mount string) string {
	fb := d.binding(p.Handle)
	switch p.Problem {
	case "missing":
		if fb != nil {
			return fmt.Sprintf("bindings.%s is in %s but not in Vault: run flowcred apply -f %s", p.Handle, d.path, d.path)
		}
		return fmt.Sprintf("bind the handle: add bindings.%s (kind %s) to the deployment file and run flowcred apply",
			p.Handle, strings.Split(p.RequiredKind, " | ")[0])
	case "kind_mismatch":
		switch {
		case p.Source == "file" || (fb != nil && fb.kind == p.BoundKind):
			return fmt.Sprintf("change bindings.%s.kind in %s to %s, or point node %s at a handle of that kind; a binding's kind cannot change in Vault (delete it, then apply)",
				p.Handle, d.path, p.RequiredKind, p.Node)
		case fb != nil:
			return fmt.Sprintf("the file binds %s as kind %s, Vault as kind %s, and a kind cannot change: delete it (vault delete %s/bindings/%s, or flowcred apply -prune after taking it out of the file), then apply the file",
				p.Handle, fb.kind, p.BoundKind, mount, p.Handle)
		}
		return fmt.Sprintf("point node %s at a handle of kind %s, or bind another handle; a binding's kind cannot change (delete it and apply again)",
			p.Node, p.RequiredKind)
	case "missing_scopes":
		if fb == nil {
			return "add the scopes to the binding's scopes (a refresh token granted without them needs a new authorization), or point the node at a handle that has them"
		}
		configured, _ := fb.fields["scopes"].([]string)
		if p.Source == "vault" && len(configured) > 0 && len(missingFromFile(node{scopes: p.MissingScopes}, fb)) == 0 {
			return fmt.Sprintf("bindings.%s.scopes in %s includes them: run flowcred apply -f %s; a refresh token granted without them needs a new authorization (connect the binding again)", p.Handle, d.path, d.path)
		}
		return fmt.Sprintf("add the scopes to bindings.%s.scopes in %s and apply; a refresh token granted without them needs a new authorization (connect the binding again)", p.Handle, d.path)
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
