// Package leakcheck searches text and files for planted secret values: the
// check behind flowcred's "a secret value is never returned, logged, put in
// an error or in lease data" guarantee.
//
// A test plants every secret it writes (client secrets, refresh tokens,
// private keys, API tokens) and every secret it learns (access tokens from
// token reads, refresh tokens a provider rotated) under a name, then scans
// logs, audit logs, raw API answers and error messages:
//
//	set := leakcheck.New()
//	secret := set.Add("rt-basic client_secret", oauthtest.SecretRTBasic)
//	...
//	leaks, err := set.Scan(
//		leakcheck.File("vault server log", srv.LogPath),
//		leakcheck.Text("binding read bindings/crm", raw),
//	)
//
// A leak is reported by the value's name and where it was found, never by the
// value itself, so a failing test does not print the secret it protects.
package leakcheck

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
)

// minLineForm is the shortest line of a multi-line value (a PEM key) that is
// searched on its own: a base64 line of a key is 64 characters, and short
// lines could match by chance.
const minLineForm = 24

// Set is a list of planted secret values, each with a name. It is safe for
// concurrent use.
type Set struct {
	mu     sync.Mutex
	values []planted
	seen   map[string]bool
}

type planted struct {
	name  string
	value string
	forms []string
}

// New returns an empty set.
func New() *Set { return &Set{seen: map[string]bool{}} }

// Add plants value under name and returns value. Empty values and values
// already planted are ignored (the first name wins).
func (s *Set) Add(name, value string) string {
	if value == "" {
		return value
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[value] {
		return value
	}
	s.seen[value] = true
	s.values = append(s.values, planted{name: name, value: value, forms: Forms(value)})
	return value
}

// Len is the number of planted values.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.values)
}

// Names lists the planted values' names, sorted.
func (s *Set) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.values))
	for _, p := range s.values {
		out = append(out, p.name)
	}
	sort.Strings(out)
	return out
}

// Forms returns the encodings a leak of v would take in a log, a JSON
// answer or an HTTP request: v itself, JSON-escaped, URL-encoded (a form
// body), standard and URL-safe base64, and each long line of a multi-line
// value (the base64 lines of a PEM key; the BEGIN/END lines are not secret).
func Forms(v string) []string {
	forms := []string{v}
	add := func(f string) {
		for _, have := range forms {
			if have == f {
				return
			}
		}
		forms = append(forms, f)
	}
	if j, err := json.Marshal(v); err == nil {
		add(string(j[1 : len(j)-1]))
	}
	add(url.QueryEscape(v))
	if len(v) >= 12 {
		// base64 of a short value could occur by chance; of a long one it
		// is a leak (e.g. a token wrapped in a Basic header or a JWT).
		add(base64.StdEncoding.EncodeToString([]byte(v)))
		add(base64.RawURLEncoding.EncodeToString([]byte(v)))
	}
	if strings.Contains(v, "\n") {
		for _, line := range strings.Split(v, "\n") {
			line = strings.TrimSpace(line)
			// A JSON-escaped PEM has "\n" inside one line: split those too.
			for _, part := range strings.Split(line, `\n`) {
				if len(part) >= minLineForm && !strings.HasPrefix(part, "-----") {
					add(part)
				}
			}
		}
	}
	return forms
}

// Leak is a planted value found somewhere.
type Leak struct {
	// Name is the planted value's name (never the value).
	Name string
	// Where names the text or file it was found in.
	Where string
}

func (l Leak) String() string { return fmt.Sprintf("%s in %s", l.Name, l.Where) }

// Target is something to scan: a text or a file.
type Target struct {
	Where string
	text  string
	path  string
}

// Text is a target for a string already in memory (a raw API answer, an
// error message).
func Text(where, text string) Target { return Target{Where: where, text: text} }

// File is a target for a file read when scanned (a log, an audit log).
func File(where, path string) Target { return Target{Where: where, path: path} }

// Scan searches every target for every planted value. A file that cannot
// be read is an error (a missing log must not pass as a clean one).
func (s *Set) Scan(targets ...Target) ([]Leak, error) {
	s.mu.Lock()
	values := append([]planted(nil), s.values...)
	s.mu.Unlock()
	var leaks []Leak
	for _, t := range targets {
		text := t.text
		if t.path != "" {
			b, err := os.ReadFile(t.path)
			if err != nil {
				return leaks, fmt.Errorf("leakcheck: reading %s: %w", t.Where, err)
			}
			text = string(b)
		}
		for _, p := range values {
			for _, f := range p.forms {
				if strings.Contains(text, f) {
					leaks = append(leaks, Leak{Name: p.name, Where: t.Where})
					break
				}
			}
		}
	}
	return leaks, nil
}

// Find returns the names of the planted values found in text, sorted (nil
// when there are none).
func (s *Set) Find(text string) []string {
	leaks, _ := s.Scan(Text("text", text))
	var names []string
	for _, l := range leaks {
		names = append(names, l.Name)
	}
	sort.Strings(names)
	return names
}

// Report renders leaks one per line, by name and place.
func Report(leaks []Leak) string {
	lines := make([]string, len(leaks))
	for i, l := range leaks {
		lines[i] = "  " + l.String()
	}
	return strings.Join(lines, "\n")
}

// TB is the part of testing.TB that RequireNone uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// RequireNone fails the test if any planted value is found in the targets,
// naming each value and where it was found (never the value).
func (s *Set) RequireNone(tb TB, targets ...Target) {
	tb.Helper()
	leaks, err := s.Scan(targets...)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	if len(leaks) > 0 {
		tb.Fatalf("%d planted secret values found where they must never be:\n%s", len(leaks), Report(leaks))
	}
	tb.Logf("leakcheck: %d planted values, none in %d places scanned", s.Len(), len(targets))
}
