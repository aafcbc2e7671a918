package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
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
	line       int
}

// fileDoc is the file's shape; unknown keys are refused (KnownFields).
type fileDoc struct {
	Bindings yaml.Node  `yaml:"bindings"`
	Nodes    []fileNode `yaml:"nodes"`
}

type fileNode struct {
	ID         string    `yaml:"id"`
	Credential string    `yaml:"credential"`
	Requires   yaml.Node `yaml:"requires"`
}

// inputError lists problems with the deployment file, one per line.
type inputError struct{ problems []string }

func (e *inputError) Error() string { return strings.Join(e.problems, "\n") }

// loadDeployment reads and checks a deployment file. Errors are
// *inputError (the file is wrong) or a plain error (it cannot be read).
func loadDeployment(path string) (*deployment, error) {
	raw, err := readBounded(path, maxDeploymentBytes)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, &inputError{[]string{path + ": the file is empty; expected bindings: and/or nodes:"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var doc fileDoc
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &inputError{[]string{path + ": the file has no YAML document"}}
		}
		return nil, &inputError{yamlProblems(path, err)}
	}
	// A second, lenient pass only to learn where each node starts.
	var lines struct {
		Nodes []yaml.Node `yaml:"nodes"`
	}
	_ = yaml.Unmarshal(raw, &lines)
	nodeLines := make([]int, len(doc.Nodes))
	for i := range nodeLines {
		if i < len(lines.Nodes) {
			nodeLines[i] = lines.Nodes[i].Line
		}
	}
	c := &checker{path: path}
	d := &deployment{path: path}
	d.bindings = c.bindings(&doc.Bindings)
	d.nodes = c.nodes(doc.Nodes, nodeLines)
	if len(c.problems) > 0 {
		return nil, &inputError{c.problems}
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

var (
	yamlLineRe    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlUnknownRe = regexp.MustCompile(`^field (\S+) not found in type main\.(\w+)$`)
)

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
		if sm := yamlUnknownRe.FindStringSubmatch(m); sm != nil {
			switch sm[2] {
			case "fileDoc":
				m = fmt.Sprintf("unknown top-level key %q (known: bindings, nodes)", sm[1])
			case "fileNode":
				m = fmt.Sprintf("unknown key %q in a node (known: id, credential, requires)", sm[1])
			}
		}
		m = strings.ReplaceAll(m, "main.fileNode", "a node")
		m = strings.ReplaceAll(m, "[]main.fileNode", "a list of nodes")
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
