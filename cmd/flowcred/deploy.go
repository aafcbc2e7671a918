package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxDeploymentBytes bounds the deployment file.
const maxDeploymentBytes = 4 << 20

// deployment is a checked deployment file.
type deployment struct {
	path     string
	bindings []binding // sorted by handle
	nodes    []node    // in file order
	// hasBindings: the file has a bindings: key (even an empty map);
	// -prune needs one, so that a file of nodes never empties a mount.
	hasBindings bool
}

// binding returns the file's binding of handle, or nil.
func (d *deployment) binding(handle string) *binding {
	for i := range d.bindings {
		if d.bindings[i].handle == handle {
			return &d.bindings[i]
		}
	}
	return nil
}

// binding is one entry of bindings:, ready to write.
type binding struct {
	handle string
	kind   string
	line   int
	// fields is the write payload except kind: strings, []string for
	// scopes, map[string]string for extra_headers and token_params, and a
	// string or int for ttl.
	fields map[string]interface{}
}

// node is one entry of nodes: that needs a credential.
type node struct {
	id         string
	credential string
	kinds      []string
	// scopes the node needs the credential to carry; nil: none.
	scopes []string
	line   int
}

// inputError lists problems with the deployment file, one per line.
type inputError struct{ problems []string }

func (e *inputError) Error() string { return strings.Join(e.problems, "\n") }

// loadDeployment reads and checks a deployment file. Errors are
// *inputError (the file is wrong: every problem found, each FILE:LINE:
// message) or a plain error (it cannot be read).
func loadDeployment(path string) (*deployment, error) {
	raw, err := readBounded(path, maxDeploymentBytes)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, &inputError{[]string{path + ": the file is empty; expected bindings: and/or nodes:"}}
	}
	// The file is decoded into nodes, not structs, so that every problem
	// (unknown keys included) is found in one pass; only a YAML syntax
	// error stops the check.
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &inputError{[]string{path + ": the file has no YAML document"}}
		}
		return nil, &inputError{yamlProblems(path, err)}
	}
	c := &checker{path: path}
	d := &deployment{path: path}
	top := &root
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	switch {
	case top.Kind == yaml.ScalarNode && top.Tag == "!!null":
	case top.Kind != yaml.MappingNode:
		c.addf(top.Line, "the file must be a map with bindings: and/or nodes:")
	default:
		seen := map[string]bool{}
		for i := 0; i+1 < len(top.Content); i += 2 {
			k, v := top.Content[i], top.Content[i+1]
			if seen[k.Value] {
				c.addf(k.Line, "%s: given twice", k.Value)
				continue
			}
			seen[k.Value] = true
			switch k.Value {
			case "bindings":
				d.hasBindings = true
				d.bindings = c.bindings(v)
			case "nodes":
				d.nodes = c.nodes(v)
			default:
				c.addf(k.Line, "unknown top-level key %q (known: bindings, nodes)", k.Value)
			}
		}
	}
	var second yaml.Node
	if err := dec.Decode(&second); !errors.Is(err, io.EOF) {
		line := second.Line // the --- that starts it
		if err != nil {
			line = 0
			if sm := yamlLineRe.FindStringSubmatch(err.Error()); sm != nil {
				line, _ = strconv.Atoi(sm[1])
			}
		}
		c.addf(line, "a second YAML document (after ---); a deployment file is one document")
	}
	if len(c.problems) > 0 {
		return nil, &inputError{c.sorted()}
	}
	return d, nil
}

// readBounded reads a file ("-" is stdin) of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return b, nil
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblems rewrites yaml.v3's errors as path:line: message.
func yamlProblems(path string, err error) []string {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		m = strings.TrimSpace(m)
		loc := path
		if sm := yamlLineRe.FindStringSubmatch(m); sm != nil {
			loc, m = path+":"+sm[1], sm[2]
		}
		out = append(out, loc+": "+m)
	}
	return out
}

// referencedSecrets lists the secret names the bindings reference, sorted.
func (d *deployment) referencedSecrets() []string {
	set := map[string]bool{}
	for _, b := range d.bindings {
		for f, v := range b.fields {
			if s, ok := v.(string); ok && strings.HasSuffix(f, secretRefSuffix) {
				set[s] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
