package flowcred

// OpenBao compatibility (issue 18 item 5): flowcred must use no SDK call that OpenBao does not
// implement. OpenBao 2.6 answers these plugin-to-server calls with Unimplemented: identity
// tokens, events, rotation jobs and observations (facts.md). In github.com/hashicorp/vault/sdk
// v0.23.0 they are:
//
//	identity tokens  logical.SystemView.GenerateIdentityToken (gRPC SystemView.GenerateIdentityToken),
//	                 pluginutil.IdentityTokenRequest/Response, package helper/pluginidentityutil
//	rotation jobs    logical.SystemView.RegisterRotationJob, DeregisterRotationJob, GetRotationInformation,
//	                 framework.Backend.RotateCredential, logical.RotationOperation,
//	                 packages rotation and helper/automatedrotationutil
//	events           logical.EventSender(.SendEvent), logical.SendEvent, logical.NewEvent, EventData,
//	                 EventType, EventReceived, logical.BackendConfig.EventsSender,
//	                 framework.Backend.SendEvent, framework.ErrNoEvents (gRPC Events.SendEvent)
//	observations     logical.ObservationRecorder(.RecordObservationFromPlugin),
//	                 logical.BackendConfig.ObservationRecorder, framework.Backend.RecordObservation,
//	                 RecordObservationWithRequest, framework.ErrNoObservations (gRPC Observations.RecordObservation)
//
// The test parses every non-test .go file of the module with go/parser (no type checking) and
// flags, with file:line: any selector or composite-literal key with one of the method/field names
// below, whatever its receiver; the qualified identifiers above; and imports of the packages above.
// It walks the whole module except .git, testdata, node_modules and bench/ (a benchmark
// harness, not shipped); the internal/ test harnesses are included. A false positive (an
// unrelated type with one of these method names) is fixed by renaming it.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// openBaoUnimplementedNames are method and field names flagged on any receiver.
var openBaoUnimplementedNames = map[string]string{
	"GenerateIdentityToken":        "identity tokens",
	"RegisterRotationJob":          "rotation jobs",
	"DeregisterRotationJob":        "rotation jobs",
	"GetRotationInformation":       "rotation jobs",
	"RotateCredential":             "rotation jobs",
	"SendEvent":                    "events",
	"EventsSender":                 "events",
	"RecordObservation":            "observations",
	"RecordObservationWithRequest": "observations",
	"RecordObservationFromPlugin":  "observations",
	"ObservationRecorder":          "observations",
}

// openBaoUnimplementedIdents are identifiers flagged when qualified by an SDK package, by the
// package's path below the SDK root.
var openBaoUnimplementedIdents = map[string]map[string]string{
	"logical": {
		"EventSender": "events", "EventData": "events", "EventType": "events", "EventReceived": "events",
		"NewEvent": "events", "SendEvent": "events",
		"ObservationRecorder": "observations", "RotationOperation": "rotation jobs",
	},
	"framework":         {"ErrNoEvents": "events", "ErrNoObservations": "observations"},
	"helper/pluginutil": {"IdentityTokenRequest": "identity tokens", "IdentityTokenResponse": "identity tokens"},
}

// openBaoUnimplementedPkgs are SDK packages that exist only for these features.
var openBaoUnimplementedPkgs = map[string]string{
	"rotation":                     "rotation jobs",
	"helper/automatedrotationutil": "rotation jobs",
	"helper/pluginidentityutil":    "identity tokens",
}

// openBaoSDKRel returns an import path's path below the HashiCorp (or OpenBao) SDK root.
func openBaoSDKRel(importPath string) (string, bool) {
	for _, root := range []string{"github.com/hashicorp/vault/sdk/", "github.com/openbao/openbao/sdk/v2/"} {
		if rel, ok := strings.CutPrefix(importPath, root); ok {
			return rel, true
		}
	}
	return "", false
}

// openBaoFindings parses one file and returns its uses of APIs OpenBao does not implement.
func openBaoFindings(fset *token.FileSet, name string, src []byte) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []string
	report := func(n ast.Node, what, feature string) {
		out = append(out, fmt.Sprintf("%s: %s (%s: OpenBao does not implement it)", fset.Position(n.Pos()), what, feature))
	}
	sdkAlias := map[string]string{} // local package name -> path below the SDK root
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		rel, ok := openBaoSDKRel(path)
		if !ok {
			continue
		}
		if feature, bad := openBaoUnimplementedPkgs[rel]; bad {
			report(imp, "import "+path, feature)
		}
		local := rel[strings.LastIndex(rel, "/")+1:]
		if imp.Name != nil {
			local = imp.Name.Name
		}
		sdkAlias[local] = rel
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				if rel, isPkg := sdkAlias[x.Name]; isPkg {
					if feature, bad := openBaoUnimplementedIdents[rel][n.Sel.Name]; bad {
						report(n, x.Name+"."+n.Sel.Name, feature)
					}
					return true
				}
			}
			if feature, bad := openBaoUnimplementedNames[n.Sel.Name]; bad {
				report(n.Sel, "."+n.Sel.Name, feature)
			}
		case *ast.KeyValueExpr:
			if k, ok := n.Key.(*ast.Ident); ok {
				if feature, bad := openBaoUnimplementedNames[k.Name]; bad {
					report(k, k.Name+": (composite literal field)", feature)
				}
			}
		}
		return true
	})
	return out, nil
}

// openBaoProductionFiles lists the module's non-test .go files, skipping .git, testdata,
// node_modules, bench/ and directories holding another module.
func openBaoProductionFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch {
			case path == ".":
			case d.Name() == "testdata", d.Name() == "node_modules", path == "bench", strings.HasPrefix(d.Name(), "."):
				return filepath.SkipDir
			default:
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestOpenBaoCompatNoUnimplementedSDKCalls(t *testing.T) {
	files := openBaoProductionFiles(t)
	// Guard against walking nothing: the plugin, the CLI and the resolver must all be covered.
	for _, must := range []string{"backend.go", filepath.Join("cmd", "vault-plugin-flowcred", "main.go"), filepath.Join("cmd", "flowcred", "main.go"), filepath.Join("resolver", "vault.go")} {
		found := false
		for _, f := range files {
			found = found || f == must
		}
		if !found {
			t.Fatalf("%s is not among the %d files checked", must, len(files))
		}
	}
	fset := token.NewFileSet()
	var all []string
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		findings, err := openBaoFindings(fset, path, src)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, findings...)
	}
	if len(all) > 0 {
		t.Errorf("the code uses SDK APIs that OpenBao does not implement (identity tokens, events, rotation jobs, observations):\n%s", strings.Join(all, "\n"))
	}
	t.Logf("checked %d non-test .go files for OpenBao-unimplemented SDK APIs", len(files))
}

// TestOpenBaoCompatChecker proves the checker flags each kind of use, and not ordinary calls.
func TestOpenBaoCompatChecker(t *testing.T) {
	const header = "package p\n\nimport (\n\t\"context\"\n\n\t\"github.com/hashicorp/vault/sdk/framework\"\n" +
		"\t\"github.com/hashicorp/vault/sdk/helper/pluginutil\"\n\tlg \"github.com/hashicorp/vault/sdk/logical\"\n)\n\n" +
		"var _ = pluginutil.PluginRunner{}\nvar _ context.Context\nvar _ framework.Backend\nvar _ lg.Request\n\n"
	for _, tc := range []struct {
		name, imports, body string
		want                []string // substrings, one per expected finding
	}{
		{"identity token", "", "func f(ctx context.Context, b *framework.Backend) {\n" +
			"\tb.System().GenerateIdentityToken(ctx, &pluginutil.IdentityTokenRequest{})\n}\n",
			[]string{"x.go:17:13: .GenerateIdentityToken (identity tokens", "x.go:17:41: pluginutil.IdentityTokenRequest (identity tokens"}},
		{"rotation job", "", "func f(ctx context.Context, s lg.SystemView) {\n\ts.RegisterRotationJob(ctx, nil)\n" +
			"\t_ = s.DeregisterRotationJob(ctx, nil)\n\t_ = &framework.Backend{RotateCredential: nil}\n\t_ = lg.RotationOperation\n}\n",
			[]string{".RegisterRotationJob (rotation jobs", ".DeregisterRotationJob (rotation jobs", "RotateCredential: (composite literal field) (rotation jobs", "lg.RotationOperation (rotation jobs"}},
		{"events", "", "func f(ctx context.Context, c *lg.BackendConfig, b *framework.Backend) {\n" +
			"\tvar s lg.EventSender = c.EventsSender\n\t_ = lg.SendEvent(ctx, s, \"x\")\n\t_ = b.SendEvent(ctx, \"x\", nil)\n}\n",
			[]string{"lg.EventSender (events", ".EventsSender (events", "lg.SendEvent (events", ".SendEvent (events"}},
		{"observations", "", "func f(ctx context.Context, c *lg.BackendConfig, b *framework.Backend) {\n" +
			"\t_ = c.ObservationRecorder\n\t_ = b.RecordObservation(ctx, \"x\", nil)\n}\n",
			[]string{".ObservationRecorder (observations", ".RecordObservation (observations"}},
		{"feature package", "\t\"github.com/hashicorp/vault/sdk/rotation\"\n", "var _ rotation.RotationJob\n",
			[]string{"import github.com/hashicorp/vault/sdk/rotation (rotation jobs"}},
		{"ordinary calls", "", "func f(ctx context.Context, b *framework.Backend) (bool, error) {\n" +
			"\t_, err := b.System().PluginEnv(ctx)\n\treturn b.System().LocalMount(), err\n}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(header, "import (\n", "import (\n"+tc.imports, 1) + tc.body
			got, err := openBaoFindings(token.NewFileSet(), "x.go", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d findings, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for _, w := range tc.want {
				found := false
				for _, g := range got {
					found = found || strings.Contains(g, w)
				}
				if !found {
					t.Errorf("no finding contains %q; got:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}
