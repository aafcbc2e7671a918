package main

// Licence texts and SPDX expressions: how licencecheck recognises a licence.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// licenceNameRE matches licence file names. Files named LICENSE*.docs (e.g. in
// github.com/opencontainers/go-digest, CC-BY-SA-4.0) cover documentation, not code: skipped.
var licenceNameRE = regexp.MustCompile(`(?i)^(licen[cs]e|copying|unlicense)([-._][a-z0-9.-]*)?$`)

// licenceFiles classifies the licence files directly in dir. ids are the allowed licences found
// (sorted, deduplicated); problems name files that are unrecognised or not on the allow-list.
func licenceFiles(dir string, allow map[string]bool) (ids, problems []string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []string{err.Error()}
	}
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !licenceNameRE.MatchString(name) || strings.HasSuffix(strings.ToLower(name), ".docs") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		found := classify(string(data))
		if len(found) == 0 {
			problems = append(problems, fmt.Sprintf("licence file %s is not recognised as any allow-listed licence", name))
		}
		for _, id := range found {
			if !allow[id] {
				problems = append(problems, fmt.Sprintf("licence file %s is %s, which is not on the allow-list", name, id))
			} else if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids, problems
}

// fingerprints identify licence texts. They are matched against the text lower-cased with every
// run of non-alphanumerics turned into one space, so layout, comment markers and punctuation do
// not matter. A file may match several (e.g. go.yaml.in/yaml/v3: MIT and Apache-2.0); every
// match must be allowed. The non-allowed entries are there to name what was found.
var fingerprints = []struct {
	id        string
	all, none []string
}{
	{"MPL-2.0", []string{"mozilla public license version 2 0"}, nil},
	{"MPL-2.0", []string{"mozilla public license v 2 0"}, nil},
	{"Apache-2.0", []string{"apache license version 2 0"}, nil},
	{"MIT", []string{"permission is hereby granted free of charge to any person obtaining a copy", "the above copyright notice and this permission notice shall be included"}, nil},
	{"ISC", []string{"permission to use copy modify and", "distribute this software for any purpose with or without fee is hereby granted", "the above copyright notice and this permission notice appear in all copies"}, nil},
	{"BSD-4-Clause", []string{"redistribution and use in source and binary forms", "all advertising materials mentioning"}, nil},
	{"BSD-3-Clause", []string{"redistribution and use in source and binary forms", "redistributions of source code must retain", "endorse or promote products"}, []string{"all advertising materials mentioning"}},
	{"BSD-2-Clause", []string{"redistribution and use in source and binary forms", "redistributions of source code must retain", "redistributions in binary form must reproduce"}, []string{"endorse or promote", "all advertising materials mentioning"}},
	{"BUSL-1.1", []string{"business source license"}, nil},
	{"GPL-2.0", []string{"gnu general public license version 2 june 1991"}, nil},
	{"GPL-3.0", []string{"gnu general public license version 3 29 june 2007"}, nil},
	{"LGPL-2.1", []string{"gnu lesser general public license version 2 1 february 1999"}, nil},
	{"LGPL-3.0", []string{"gnu lesser general public license version 3 29 june 2007"}, nil},
	{"AGPL-3.0", []string{"gnu affero general public license version 3 19 november 2007"}, nil},
	{"SSPL-1.0", []string{"server side public license"}, nil},
	{"Elastic-2.0", []string{"elastic license 2 0"}, nil},
	{"Commons-Clause", []string{"commons clause"}, nil},
}

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

func normalise(text string) string {
	return " " + strings.TrimSpace(nonAlnum.ReplaceAllString(strings.ToLower(text), " ")) + " "
}

// classify returns the licences whose fingerprints text matches, sorted and deduplicated.
func classify(text string) []string {
	n := normalise(text)
	set := map[string]bool{}
next:
	for _, fp := range fingerprints {
		for _, s := range fp.all {
			if !strings.Contains(n, " "+s+" ") {
				continue next
			}
		}
		for _, s := range fp.none {
			if strings.Contains(n, " "+s+" ") {
				continue next
			}
		}
		set[fp.id] = true
	}
	return sortedKeys(set)
}

type spdxHit struct {
	line int
	expr string
}

var spdxRE = regexp.MustCompile(`(?i)^(.*?)spdx-license-identifier:\s*(.*?)\s*(\*/|-->)?\s*$`)

// spdxInFile returns the SPDX-License-Identifier expressions in comment lines of the file: the
// tag must follow nothing but a comment marker or whitespace, so a Go string literal holding the
// tag (a licence scanner's own source) is not taken for a header. Binary files are skipped.
func spdxInFile(path string) ([]spdxHit, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 || !bytes.Contains(bytes.ToLower(data), []byte("spdx-license-identifier")) {
		return nil, nil
	}
	var hits []spdxHit
	for i, line := range strings.Split(string(data), "\n") {
		m := spdxRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		prefix := strings.TrimSpace(m[1])
		switch prefix {
		case "", "//", "/*", "*", "#", "--", ";", "<!--":
		default:
			continue
		}
		hits = append(hits, spdxHit{line: i + 1, expr: m[2]})
	}
	return hits, nil
}

// spdxAllowed evaluates an SPDX licence expression against the allow-list. OR is satisfied by
// one allowed side, AND needs both; "ID WITH exception" is never allowed (no exception is on the
// list, so it must be reviewed and added); "ID+" counts as ID.
func spdxAllowed(expr string, allow map[string]bool) (bool, error) {
	p := &spdxParser{toks: strings.Fields(strings.NewReplacer("(", " ( ", ")", " ) ").Replace(expr)), allow: allow}
	v, err := p.or()
	if err == nil && p.i < len(p.toks) {
		err = fmt.Errorf("unexpected %q", p.toks[p.i])
	}
	return v && err == nil, err
}

type spdxParser struct {
	toks  []string
	i     int
	allow map[string]bool
}

func (p *spdxParser) peek() string {
	if p.i < len(p.toks) {
		return strings.ToUpper(p.toks[p.i])
	}
	return ""
}

func (p *spdxParser) or() (bool, error) {
	v, err := p.and()
	for err == nil && p.peek() == "OR" {
		p.i++
		var w bool
		w, err = p.and()
		v = v || w
	}
	return v, err
}

func (p *spdxParser) and() (bool, error) {
	v, err := p.atom()
	for err == nil && p.peek() == "AND" {
		p.i++
		var w bool
		w, err = p.atom()
		v = v && w
	}
	return v, err
}

func (p *spdxParser) atom() (bool, error) {
	switch t := p.peek(); t {
	case "":
		return false, errors.New("unexpected end of expression")
	case ")", "AND", "OR", "WITH":
		return false, fmt.Errorf("unexpected %q", p.toks[p.i])
	case "(":
		p.i++
		v, err := p.or()
		if err == nil && p.peek() != ")" {
			err = errors.New("missing )")
		}
		p.i++
		return v, err
	}
	v := p.allow[strings.TrimSuffix(p.toks[p.i], "+")]
	p.i++
	if p.peek() == "WITH" {
		if p.i+1 >= len(p.toks) {
			return false, errors.New("WITH without an exception")
		}
		p.i += 2
		v = false
	}
	return v, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func joinKeys[V any](m map[string]V) string { return strings.Join(sortedKeys(m), ", ") }

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
