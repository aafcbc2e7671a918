package integration

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPI_LiveSpec reads Vault's own spec (sys/internal/specs/openapi)
// with the plugin mounted: every flowcred path with its operations, every
// operation with a response, every response field described, and Vault
// building it without "multiple framework.Path instances generated the same
// path" (the catch-all paths that once shadowed the real ones).
func TestOpenAPI_LiveSpec(t *testing.T) {
	s := env(t)
	resp, err := s.Client.Logical().ReadRaw("sys/internal/specs/openapi")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Description string `json:"description"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	prefix := "/" + s.Mount + "/"
	want := map[string]string{
		"bindings/":                            "get",
		"bindings/{handle}":                    "delete get post",
		"bindings/{handle}/refresh":            "post",
		"bindings/{handle}/authorize":          "post",
		"bindings/{handle}/authorize/complete": "post",
		"bindings/{handle}/device":             "post",
		"callback":                             "get",
		"config":                               "get post",
		"health":                               "get",
		"metrics":                              "get",
		"secrets/":                             "get",
		"secrets/{name}":                       "delete get post",
		"token/{handle}":                       "get",
		"validate":                             "post",
	}
	got := map[string]string{}
	refs := map[string]bool{}
	for p, ops := range doc.Paths {
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		var names []string
		for name, raw := range ops {
			switch name {
			case "get", "post", "delete":
			default:
				continue // "parameters" and the like
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", name, p, err)
			}
			names = append(names, name)
			if op.Summary == "" {
				t.Errorf("%s %s: no summary", name, p)
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s %s: no response", name, p)
			}
			for _, r := range op.Responses {
				for _, c := range r.Content {
					refs[strings.TrimPrefix(c.Schema.Ref, "#/components/schemas/")] = true
				}
			}
		}
		sort.Strings(names)
		got[rel] = strings.Join(names, " ")
	}
	for p, ops := range want {
		if got[p] != ops {
			t.Errorf("%s%s: operations %q, want %q", prefix, p, got[p], ops)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s%s: a path the test does not know", prefix, p)
		}
	}
	for name := range refs {
		for f, prop := range doc.Components.Schemas[name].Properties {
			if prop.Description == "" && name != "StandardListResponse" {
				t.Errorf("%s.%s: no description", name, f)
			}
		}
	}
	if log, err := os.ReadFile(s.LogPath); err == nil && strings.Contains(string(log), "multiple framework.Path instances generated the same path") {
		t.Error(`Vault logged "multiple framework.Path instances generated the same path" building the spec`)
	}
}

// operation is the part of an OpenAPI operation the test reads.
type operation struct {
	Summary   string `json:"summary"`
	Responses map[string]struct {
		Content map[string]struct {
			Schema struct {
				Ref string `json:"$ref"`
			} `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}
