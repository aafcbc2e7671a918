package reliability

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// TestInputLimits sends oversized and malformed input through Vault's HTTP
// API: each is a 400 that names the field, with a short message (never the
// value), and nothing is stored: no new binding or secret appears, and an
// existing binding refused an update keeps its values.
func TestInputLimits(t *testing.T) {
	t.Parallel()
	v := vaultServer(t, vaulttest.Options{})
	m := func(p string) string { return v.Mount + "/" + p }
	c := v.Client

	existing := map[string]interface{}{
		"kind": "oauth2.client_credentials", "client_id": "limits-client", "client_secret": "limits-secret-0123456789",
		"token_url": "https://idp.example.test/token", "scopes": "a,b", "extra_headers": map[string]string{"x-team": "sales"},
	}
	if _, err := c.Logical().Write(m("bindings/lim_existing"), existing); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write(m("secrets/lim_secret"), map[string]interface{}{"value": "limits-stored-0123456789"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write(m("bindings/lim_ref"), map[string]interface{}{"kind": "api_token", "token_secret": "lim_secret"}); err != nil {
		t.Fatal(err)
	}
	before, err := c.Logical().Read(m("bindings/lim_existing"))
	if err != nil {
		t.Fatal(err)
	}

	headers := func(n int) map[string]string {
		out := map[string]string{}
		for i := 0; i < n; i++ {
			out[fmt.Sprintf("x-h%02d", i)] = "v"
		}
		return out
	}
	scopes := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf("scope%d", i)
		}
		return strings.Join(s, ",")
	}
	apiToken := func(extra map[string]interface{}) map[string]interface{} {
		d := map[string]interface{}{"kind": "api_token", "token": "limits-token-0123456789"}
		for k, v := range extra {
			d[k] = v
		}
		return d
	}
	cc := func(extra map[string]interface{}) map[string]interface{} {
		d := map[string]interface{}{"kind": "oauth2.client_credentials", "client_id": "c", "client_secret": "limits-secret-0123456789",
			"token_url": "https://idp.example.test/token"}
		for k, v := range extra {
			d[k] = v
		}
		return d
	}
	big := func(n int) string { return strings.Repeat("A", n) }

	cases := []struct {
		name, path string
		data       map[string]interface{}
		field      string
	}{
		{"70 KiB inline secret", "bindings/lim_new", apiToken(map[string]interface{}{"token": big(70 << 10)}), "token"},
		{"70 KiB inline client secret", "bindings/lim_new", cc(map[string]interface{}{"client_secret": big(70 << 10)}), "client_secret"},
		{"70 KiB stored secret", "secrets/lim_new", map[string]interface{}{"value": big(70 << 10)}, "value"},
		{"2 MiB request body (secret)", "bindings/lim_new", apiToken(map[string]interface{}{"token": big(2 << 20)}), "token"},
		{"2 MiB request body (description)", "bindings/lim_new", apiToken(map[string]interface{}{"description": big(2 << 20)}), "description"},
		{"2 MiB stored secret", "secrets/lim_new", map[string]interface{}{"value": big(2 << 20)}, "value"},
		{"33 extra_headers", "bindings/lim_new", apiToken(map[string]interface{}{"extra_headers": headers(33)}), "extra_headers"},
		{"header name with a space", "bindings/lim_new", apiToken(map[string]interface{}{"extra_headers": map[string]string{"bad name": "v"}}), "extra_headers"},
		{"header name with a colon", "bindings/lim_new", apiToken(map[string]interface{}{"extra_headers": map[string]string{"x:y": "v"}}), "extra_headers"},
		{"header name with CR LF", "bindings/lim_new", apiToken(map[string]interface{}{"extra_headers": map[string]string{"x\r\nInjected": "v"}}), "extra_headers"},
		{"header name not ASCII", "bindings/lim_new", apiToken(map[string]interface{}{"extra_headers": map[string]string{"x-ü": "v"}}), "extra_headers"},
		{"empty header name", "bindings/lim_new", apiToken(map[string]interface{}{"extra_headers": map[string]string{"": "v"}}), "extra_headers"},
		{"header value with CR LF", "bindings/lim_new", apiToken(map[string]interface{}{"extra_headers": map[string]string{"x-ok": "v\r\nInjected: 1"}}), "extra_headers"},
		{"api_token header name invalid", "bindings/lim_new", apiToken(map[string]interface{}{"header": "X Api Key"}), "header"},
		{"101 scopes", "bindings/lim_new", cc(map[string]interface{}{"scopes": scopes(101)}), "scopes"},
		{"33 token_params", "bindings/lim_new", cc(map[string]interface{}{"token_params": headers(33)}), "token_params"},
		// The same refusals on an update leave the existing binding alone.
		{"update: 33 extra_headers", "bindings/lim_existing", map[string]interface{}{"extra_headers": headers(33), "description": "changed"}, "extra_headers"},
		{"update: 101 scopes", "bindings/lim_existing", map[string]interface{}{"scopes": scopes(101), "description": "changed"}, "scopes"},
		{"update: 70 KiB client secret", "bindings/lim_existing", map[string]interface{}{"client_secret": big(70 << 10), "description": "changed"}, "client_secret"},
		{"update: invalid header name", "bindings/lim_existing", map[string]interface{}{"extra_headers": map[string]string{"a b": "v"}, "description": "changed"}, "extra_headers"},
		{"update: 70 KiB stored secret", "secrets/lim_secret", map[string]interface{}{"value": big(70 << 10)}, "value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Logical().Write(m(tc.path), tc.data)
			if respStatus(err) != http.StatusBadRequest {
				t.Fatalf("want a 400, got %v", err)
			}
			msg := respMessage(err)
			if !strings.Contains(msg, tc.field) {
				t.Errorf("message %q does not name the field %s", msg, tc.field)
			}
			if len(msg) > 1024 {
				t.Errorf("message is %d bytes: it must not echo the value", len(msg))
			}
			if strings.Contains(msg, "AAAAAAAAAAAAAAAA") || strings.Contains(msg, "limits-secret") || strings.Contains(msg, "limits-token") {
				t.Errorf("message %q echoes a value", msg)
			}
		})
	}

	// Nothing was stored.
	for _, p := range []string{"bindings", "secrets"} {
		sec, err := c.Logical().List(m(p))
		if err != nil || sec == nil {
			t.Fatalf("list %s: %v", p, err)
		}
		var keys []string
		for _, k := range sec.Data["keys"].([]interface{}) {
			keys = append(keys, k.(string))
		}
		sort.Strings(keys)
		want := map[string]string{"bindings": "lim_existing,lim_ref", "secrets": "lim_secret"}[p]
		if strings.Join(keys, ",") != want {
			t.Errorf("list %s = %v after refused writes, want [%s]", p, keys, want)
		}
	}
	after, err := c.Logical().Read(m("bindings/lim_existing"))
	if err != nil || after == nil {
		t.Fatal(err)
	}
	for _, k := range []string{"description", "scopes", "extra_headers", "updated_at", "inline_fields"} {
		if fmt.Sprint(after.Data[k]) != fmt.Sprint(before.Data[k]) {
			t.Errorf("bindings/lim_existing %s changed by a refused update: %v -> %v", k, before.Data[k], after.Data[k])
		}
	}
	// The stored secret keeps its value: the binding referencing it serves it.
	tok, err := vaulttest.ReadToken(c, v.Mount, "lim_ref", 0)
	if err != nil || str(tok.Data, "access_token") != "limits-stored-0123456789" {
		t.Errorf("secrets/lim_secret changed by a refused update (%v)", err)
	}
}
