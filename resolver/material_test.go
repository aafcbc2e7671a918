package resolver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

func sampleMaterial() *resolver.Material {
	return &resolver.Material{
		Handle:      "google_sales",
		Kind:        "google.oauth2",
		AccessToken: staticToken,
		TokenType:   "Bearer",
		ExpiresAt:   time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		Headers: map[string]string{
			"Authorization":       "Bearer " + staticToken,
			"x-goog-user-project": "sales-project",
		},
		LeaseID:       "flowcred/token/google_sales/abc",
		LeaseDuration: 55 * time.Minute,
	}
}

func TestMaterial_NeverPrintsToken(t *testing.T) {
	m := sampleMaterial()
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, m), fmt.Sprintf(verb, *m))
	}
	outputs = append(outputs, fmt.Sprint(m), fmt.Sprintln(*m), m.String(), m.GoString())
	outputs = append(outputs, fmt.Sprintf("%v", []*resolver.Material{m}), fmt.Sprintf("%+v", map[string]resolver.Material{"a": *m}))
	outputs = append(outputs, fmt.Sprintf("%v", struct{ M *resolver.Material }{m}))
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(js))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("resolved", "material", m)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("resolved", "material", *m)
	outputs = append(outputs, buf.String())

	for _, out := range outputs {
		if strings.Contains(out, staticToken) {
			t.Fatalf("token printed: %s", out)
		}
	}
	if s := fmt.Sprint(m); !strings.Contains(s, "google_sales") || !strings.Contains(s, "x-goog-user-project") || !strings.Contains(s, "[redacted]") {
		t.Fatalf("String lost the metadata: %s", s)
	}
	if s := fmt.Sprintf("%#v", m); !strings.HasPrefix(s, "resolver.Material{Handle:\"google_sales\"") {
		t.Fatalf("GoString: %s", s)
	}
}

func TestMaterial_Apply(t *testing.T) {
	m := sampleMaterial()
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	req.Header.Set("Authorization", "Bearer stale")
	m.Apply(req)
	if req.Header.Get("Authorization") != "Bearer "+staticToken || req.Header.Get("X-Goog-User-Project") != "sales-project" {
		t.Fatalf("headers %v", req.Header)
	}
	if vs := req.Header.Values("Authorization"); len(vs) != 1 {
		t.Fatalf("Authorization set %d times", len(vs))
	}

	// Without Headers, Apply builds Authorization from TokenType and AccessToken.
	bare := &resolver.Material{AccessToken: "abc", TokenType: "token"}
	req2, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	bare.Apply(req2)
	if got := req2.Header.Get("Authorization"); got != "token abc" {
		t.Fatalf("Authorization %q", got)
	}
}

func TestMaterial_Clone(t *testing.T) {
	m := sampleMaterial()
	c := m.Clone()
	c.Headers["Authorization"] = "changed"
	if m.Headers["Authorization"] == "changed" {
		t.Fatal("Clone shares Headers")
	}
	if (*resolver.Material)(nil).Clone() != nil {
		t.Fatal("nil Clone")
	}
}
