// Command licencecheck is the licence gate run by scripts/check-licences.sh (issue 18 item 1).
//
// For each build target it runs `go list -deps -json` (offline: the script sets GOPROXY=off, so
// everything comes from the module cache) and then checks two things:
//
//   - every compiled source file (GoFiles, CgoFiles, SFiles, C/C++/H/F/M files, EmbedFiles) of a
//     non-standard package: each SPDX-License-Identifier expression in a comment must be satisfied
//     by the allow-list (OR needs one allowed side, AND needs both);
//   - every module (and any licence file between a package directory and its module root): its
//     LICENSE/LICENCE/COPYING file(s) must be recognised by text fingerprints as allow-listed
//     licences.
//
// Why hand-written: tools such as google/go-licenses classify a module's LICENSE file only. They
// pass github.com/hashicorp/vault/sdk v0.24+ (an MPL-2.0 LICENSE) although its
// physical/path_error.go, which sdk/logical imports, carries `SPDX-License-Identifier: BUSL-1.1`.
// This program uses only the standard library, so it builds offline too.
//
// Exit status: 0 pass, 1 a licence check failed, 2 usage or `go list` error.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// defaultAllow is the allow-list: OSI-approved licences that may be compiled into the binaries.
const defaultAllow = "MPL-2.0,Apache-2.0,MIT,BSD-2-Clause,BSD-3-Clause,ISC"

type module struct {
	Path, Version, Dir string
	Main               bool
	Replace            *module
}

type pkg struct {
	ImportPath, Dir string
	Standard        bool
	Module          *module
	// The compiled files: .go, cgo, assembly, C/C++/headers/Fortran/ObjC, and go:embed files.
	GoFiles, CgoFiles, SFiles, CFiles, CXXFiles []string
	HFiles, FFiles, MFiles, EmbedFiles          []string
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// file is one compiled source file and where it comes from.
type file struct {
	label   string          // module@version/relative/path, for messages
	targets map[string]bool // build targets that compile it
}

type modInfo struct {
	m       *module
	targets map[string]bool
}

func main() {
	dir := flag.String("C", ".", "directory (module) to run go list in")
	allowS := flag.String("allow", defaultAllow, "comma-separated SPDX identifiers that are allowed")
	platforms := flag.String("platforms", "", "space-separated GOOS/GOARCH pairs to list for (default: the host's)")
	var exempt listFlag
	verbose := flag.Bool("v", false, "list each module with its licence")
	flag.Var(&exempt, "exempt", "MODULE=REASON: skip the licence-file check of MODULE (its files' SPDX headers are still checked); repeatable")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: licencecheck [-C dir] [-allow list] [-platforms 'os/arch ...'] [-exempt mod=reason] target...")
		os.Exit(2)
	}
	allow := map[string]bool{}
	for _, id := range strings.Split(*allowS, ",") {
		allow[strings.TrimSpace(id)] = true
	}
	exempts := map[string]string{}
	for _, e := range exempt {
		mod, reason, ok := strings.Cut(e, "=")
		if !ok || reason == "" {
			fmt.Fprintf(os.Stderr, "licencecheck: -exempt %q: want MODULE=REASON\n", e)
			os.Exit(2)
		}
		exempts[mod] = reason
	}
	plats := strings.Fields(*platforms)
	if len(plats) == 0 {
		plats = []string{runtime.GOOS + "/" + runtime.GOARCH}
	}
	os.Exit(run(os.Stdout, *dir, flag.Args(), plats, allow, exempts, *verbose))
}

func run(w io.Writer, dir string, targets, plats []string, allow map[string]bool, exempts map[string]string, verbose bool) int {
	files := map[string]*file{}    // by absolute path
	mods := map[string]*modInfo{}  // by module path
	pkgDirs := map[string]string{} // package dir -> module dir
	for _, plat := range plats {
		goos, goarch, _ := strings.Cut(plat, "/")
		for _, t := range targets {
			pkgs, err := goList(dir, t, goos, goarch)
			if err != nil {
				fmt.Fprintf(w, "licencecheck: ERROR: %v\n", err)
				return 2
			}
			for _, p := range pkgs {
				if p.Standard {
					continue // Go's standard library is exempt (BSD-3-Clause, shipped with the toolchain)
				}
				if p.Module == nil {
					fmt.Fprintf(w, "licencecheck: ERROR: package %s is in no module\n", p.ImportPath)
					return 2
				}
				m := p.Module
				if m.Dir == "" && m.Replace != nil {
					m.Dir = m.Replace.Dir
				}
				mi := mods[m.Path]
				if mi == nil {
					mi = &modInfo{m: m, targets: map[string]bool{}}
					mods[m.Path] = mi
				}
				mi.targets[t] = true
				pkgDirs[p.Dir] = m.Dir
				for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.SFiles, p.CFiles, p.CXXFiles, p.HFiles, p.FFiles, p.MFiles, p.EmbedFiles} {
					for _, name := range list {
						abs := filepath.Join(p.Dir, name)
						f := files[abs]
						if f == nil {
							f = &file{label: label(m, abs), targets: map[string]bool{}}
							files[abs] = f
						}
						f.targets[t] = true
					}
				}
			}
		}
	}

	var fails []string
	fail := func(format string, args ...any) { fails = append(fails, fmt.Sprintf(format, args...)) }

	// Modules: the licence file(s) at each module root.
	modCounts := map[string]int{}
	var exemptNotes []string
	for _, path := range sortedKeys(mods) {
		mi := mods[path]
		name := path
		if mi.m.Version != "" {
			name += " " + mi.m.Version
		}
		reason, isExempt := exempts[path]
		ids, problems := licenceFiles(mi.m.Dir, allow)
		if isExempt {
			delete(exempts, path)
			if len(ids) > 0 && len(problems) == 0 {
				exemptNotes = append(exemptNotes, fmt.Sprintf("module %s is exempt (%s) but now has an allowed licence (%s): drop the exemption", name, reason, strings.Join(ids, "+")))
			} else {
				exemptNotes = append(exemptNotes, fmt.Sprintf("module %s: licence file not checked (exempt: %s)", name, reason))
			}
			modCounts["exempt"]++
			continue
		}
		for _, pr := range problems {
			fail("module %s (%s): %s [in %s]", name, mi.m.Dir, pr, joinKeys(mi.targets))
		}
		if len(ids) == 0 && len(problems) == 0 {
			fail("module %s (%s): no licence file (LICENSE, LICENCE, COPYING, with .md/.txt/... or -MIT/-APACHE suffix) at the module root [in %s]", name, mi.m.Dir, joinKeys(mi.targets))
		}
		if len(ids) > 0 {
			modCounts[strings.Join(ids, "+")]++
		}
		if verbose {
			fmt.Fprintf(w, "licencecheck: module %s: %s\n", name, strings.Join(append(ids, problems...), ", "))
		}
	}
	for mod := range exempts {
		exemptNotes = append(exemptNotes, fmt.Sprintf("exemption for %s matches no module in the build: drop it", mod))
	}

	// Licence files below a module root, on the way to a compiled package (vendored code).
	seenDir := map[string]bool{}
	for _, pd := range sortedKeys(pkgDirs) {
		root := pkgDirs[pd]
		for d := pd; d != root && strings.HasPrefix(d, root+string(filepath.Separator)) && !seenDir[d]; d = filepath.Dir(d) {
			seenDir[d] = true
			_, problems := licenceFiles(d, allow)
			for _, pr := range problems {
				fail("directory %s: %s", d, pr)
			}
		}
	}

	// Files: SPDX-License-Identifier expressions.
	spdxCounts := map[string]int{}
	nSPDX := 0
	for _, abs := range sortedKeys(files) {
		f := files[abs]
		hits, err := spdxInFile(abs)
		if err != nil {
			fail("%s: %v", f.label, err)
			continue
		}
		if len(hits) > 0 {
			nSPDX++
		}
		for _, h := range hits {
			spdxCounts[h.expr]++
			ok, err := spdxAllowed(h.expr, allow)
			switch {
			case err != nil:
				fail("%s:%d: SPDX-License-Identifier: %s: cannot parse (%v) [in %s]", f.label, h.line, h.expr, err, joinKeys(f.targets))
			case !ok:
				fail("%s:%d: SPDX-License-Identifier: %s is not on the allow-list [in %s]", f.label, h.line, h.expr, joinKeys(f.targets))
			}
		}
	}

	fmt.Fprintf(w, "licencecheck: targets %s on %s, offline (GOPROXY=%s)\n", strings.Join(targets, " "), strings.Join(plats, " "), os.Getenv("GOPROXY"))
	fmt.Fprintf(w, "licencecheck: %d modules checked, %d compiled files checked (%d with an SPDX identifier)\n", len(mods), len(files), nSPDX)
	fmt.Fprintf(w, "licencecheck: module licences: %s\n", counts(modCounts))
	fmt.Fprintf(w, "licencecheck: file SPDX identifiers: %s\n", counts(spdxCounts))
	for _, n := range exemptNotes {
		fmt.Fprintf(w, "licencecheck: note: %s\n", n)
	}
	if len(fails) > 0 {
		for _, f := range fails {
			fmt.Fprintf(w, "licencecheck: FAIL: %s\n", f)
		}
		fmt.Fprintf(w, "licencecheck: FAIL: %d problem(s); allowed licences: %s\n", len(fails), joinKeys(allow))
		return 1
	}
	fmt.Fprintln(w, "licencecheck: PASS")
	return 0
}

// goList lists the dependencies of target, as `go list -deps -json` reports them.
func goList(dir, target, goos, goarch string) ([]pkg, error) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,Standard,Module,GoFiles,CgoFiles,SFiles,CFiles,CXXFiles,HFiles,FFiles,MFiles,EmbedFiles", target)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps %s (GOOS=%s GOARCH=%s, in %s): %v\n%s", target, goos, goarch, dir, err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs, nil
		} else if err != nil {
			return nil, fmt.Errorf("go list -deps %s: decoding: %v", target, err)
		}
		pkgs = append(pkgs, p)
	}
}

func label(m *module, abs string) string {
	rel, err := filepath.Rel(m.Dir, abs)
	if err != nil {
		rel = abs
	}
	l := m.Path
	if m.Version != "" {
		l += "@" + m.Version
	}
	return l + "/" + filepath.ToSlash(rel)
}
