package reliability

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// TestACLs checks Vault's ACLs with real, non-root tokens: a policy on
// flowcred/token/<handle> grants that handle's material and nothing else,
// and a policy on flowcred/token/* grants material only: no binding, no
// secret, no config, no validate, no refresh, no write.
func TestACLs(t *testing.T) {
	t.Parallel()
	v := vaultServer(t, vaulttest.Options{})
	m := func(p string) string { return v.Mount + "/" + p }
	root := v.Client
	for _, w := range []struct {
		path string
		data map[string]interface{}
	}{
		{"secrets/acl_s", map[string]interface{}{"value": "acl-secret-value-0123456789"}},
		{"bindings/acl_a", map[string]interface{}{"kind": "api_token", "token": "acl-a-token-0123456789", "description": "a"}},
		{"bindings/acl_b", map[string]interface{}{"kind": "api_token", "token_secret": "acl_s", "description": "b"}},
	} {
		if _, err := root.Logical().Write(m(w.path), w.data); err != nil {
			t.Fatal(err)
		}
	}

	client := func(name, policy string) *api.Client {
		t.Helper()
		if err := root.Sys().PutPolicy(name, policy); err != nil {
			t.Fatal(err)
		}
		tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}, TTL: "15m", NoDefaultPolicy: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.ClientWithToken(tok.Auth.ClientToken)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	onlyA := client("flowcred-acl-a", `path "`+m("token/acl_a")+`" { capabilities = ["read"] }`)
	allTokens := client("flowcred-acl-tokens", `path "`+m("token/*")+`" { capabilities = ["read"] }`)

	type call struct{ op, path string }
	// Everything a material reader must not do.
	forbidden := []call{
		{"list", "bindings"}, {"read", "bindings/acl_a"}, {"read", "bindings/acl_b"},
		{"write", "bindings/acl_a"}, {"write", "bindings/acl_new"}, {"delete", "bindings/acl_a"},
		{"write", "bindings/acl_a/refresh"}, {"write", "bindings/acl_b/refresh"},
		{"list", "secrets"}, {"read", "secrets/acl_s"}, {"write", "secrets/acl_s"}, {"write", "secrets/acl_new"}, {"delete", "secrets/acl_s"},
		{"read", "config"}, {"write", "config"},
		{"write", "validate"},
		{"list", "token"},
	}
	do := func(c *api.Client, cl call) (*api.Secret, error) {
		switch cl.op {
		case "read":
			return c.Logical().Read(m(cl.path))
		case "list":
			return c.Logical().List(m(cl.path))
		case "delete":
			return c.Logical().Delete(m(cl.path))
		}
		data := map[string]interface{}{"description": "changed by a reader"}
		switch {
		case strings.HasPrefix(cl.path, "secrets/"):
			data = map[string]interface{}{"value": "overwritten-by-a-reader"}
		case strings.HasPrefix(cl.path, "bindings/acl_new"):
			data = map[string]interface{}{"kind": "api_token", "token": "planted-by-a-reader"}
		case strings.HasSuffix(cl.path, "/refresh"):
			data = nil
		case cl.path == "config":
			data = map[string]interface{}{"http_timeout": 5}
		case cl.path == "validate":
			data = map[string]interface{}{"requirements": []map[string]string{{"node": "n", "handle": "acl_a", "kind": "api_token"}}}
		}
		return c.Logical().Write(m(cl.path), data)
	}
	requireDenied := func(t *testing.T, c *api.Client, cl call) {
		t.Helper()
		sec, err := do(c, cl)
		if respStatus(err) != http.StatusForbidden {
			t.Errorf("%s %s: got %v (data %v), want 403 permission denied", cl.op, cl.path, err, sec != nil)
		}
	}
	requireToken := func(t *testing.T, c *api.Client, handle string) {
		t.Helper()
		sec, err := vaulttest.ReadToken(c, v.Mount, handle, 0)
		if err != nil {
			t.Fatalf("token/%s: %v", handle, err)
		}
		if str(sec.Data, "handle") != handle || str(sec.Data, "access_token") == "" {
			t.Errorf("token/%s: handle %q, access_token set %v", handle, str(sec.Data, "handle"), str(sec.Data, "access_token") != "")
		}
	}

	t.Run("one handle", func(t *testing.T) {
		requireToken(t, onlyA, "acl_a")
		requireDenied(t, onlyA, call{"read", "token/acl_b"})
		requireDenied(t, onlyA, call{"read", "token/acl_nobody"})
		for _, cl := range forbidden {
			requireDenied(t, onlyA, cl)
		}
		// Other spellings of another handle's path are not granted either.
		for _, p := range []string{"token/acl_b", "token//acl_b", "token/./acl_b", "token/acl_a/../acl_b", "token/acl_b/", "token/ACL_B", "token/acl_a%2F..%2Facl_b"} {
			status, handle := rawRead(t, v, onlyA.Token(), m(p))
			if status == http.StatusOK && handle != "acl_a" {
				t.Errorf("GET %s with the acl_a policy: 200 serving %q", p, handle)
			}
		}
	})

	t.Run("every token, nothing else", func(t *testing.T) {
		requireToken(t, allTokens, "acl_a")
		requireToken(t, allTokens, "acl_b")
		for _, cl := range forbidden {
			requireDenied(t, allTokens, cl)
		}
	})

	// The denied writes changed nothing.
	if sec, err := root.Logical().Read(m("bindings/acl_new")); err != nil || sec != nil {
		t.Errorf("bindings/acl_new exists after denied writes (%v)", err)
	}
	if sec, err := root.Logical().Read(m("secrets/acl_new")); err != nil || sec != nil {
		t.Errorf("secrets/acl_new exists after denied writes (%v)", err)
	}
	for h, want := range map[string]string{"acl_a": "a", "acl_b": "b"} {
		sec, err := root.Logical().Read(m("bindings/" + h))
		if err != nil || sec == nil || str(sec.Data, "description") != want {
			t.Errorf("bindings/%s after denied writes: %v %v", h, err, sec)
		}
	}
	sec, err := vaulttest.ReadToken(root, v.Mount, "acl_b", 0)
	if err != nil || str(sec.Data, "access_token") != "acl-secret-value-0123456789" {
		t.Errorf("token/acl_b after denied writes: the referenced secret changed or is unreadable (%v)", err)
	}
	cfg, err := root.Logical().Read(m("config"))
	if err != nil || cfg == nil || cfg.Data["http_timeout"] == json.Number("5") {
		t.Errorf("config after denied writes: %v %v", err, cfg)
	}
}

// rawRead GETs a path exactly as given (no client-side cleaning) and
// returns the status and the served handle, if any.
func rawRead(t *testing.T, v *vaulttest.Server, token, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, v.Addr+"/v1/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	c := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out struct {
		Data map[string]interface{} `json:"data"`
	}
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, str(out.Data, "handle")
}
