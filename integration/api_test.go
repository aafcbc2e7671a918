package integration

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// bindingFields are the fields design.md declares on bindings/<handle>.
var bindingFields = func() []string {
	secretCapable := []string{"client_id", "client_secret", "refresh_token", "credentials_json", "private_key", "token"}
	fields := []string{
		"kind", "description", "extra_headers", "ttl",
		"scopes", "token_url", "auth_style", "token_params",
		"client_email", "private_key_id", "subject", "target_audience",
		"key_id", "issuer", "audience", "header", "scheme",
	}
	for _, f := range secretCapable {
		fields = append(fields, f, f+"_secret")
	}
	sort.Strings(fields)
	return fields
}()

// `vault path-help flowcred/bindings/x` documents every field the path
// declares, each with a description.
func TestPathHelpDocumentsBindingFields(t *testing.T) {
	s := env(t)
	h, err := s.Client.Help(mp("bindings/x"))
	require.NoError(t, err)
	require.NotEmpty(t, strings.TrimSpace(h.Help))

	// The OpenAPI document of the path: every parameter and request body
	// property has a description, and the declared fields are all there.
	paths, _ := h.OpenAPI["paths"].(map[string]interface{})
	item, ok := paths["/bindings/{handle}"].(map[string]interface{})
	require.True(t, ok, "no /bindings/{handle} in the OpenAPI paths: %v", keysOf(paths))
	documented := map[string]string{}
	params, _ := item["parameters"].([]interface{})
	for _, p := range params {
		pm := p.(map[string]interface{})
		documented[pm["name"].(string)] = str(pm, "description")
	}
	post, ok := item["post"].(map[string]interface{})
	require.True(t, ok, "no post operation on /bindings/{handle}")
	schema := requestSchema(t, h.OpenAPI, post)
	props, _ := schema["properties"].(map[string]interface{})
	require.NotEmpty(t, props, "request body has no properties")
	for name, p := range props {
		documented[name] = str(p.(map[string]interface{}), "description")
	}
	for name, desc := range documented {
		require.NotEmpty(t, strings.TrimSpace(desc), "field %q has no description", name)
	}
	require.Contains(t, documented, "handle")
	for _, f := range bindingFields {
		require.Contains(t, documented, f, "field %q is not documented", f)
	}

	// The CLI shows the same: the help text lists every field.
	out, err := s.CLI("path-help", mp("bindings/x"))
	require.NoError(t, err)
	for _, f := range append([]string{"handle"}, bindingFields...) {
		require.Contains(t, out, f, "vault path-help does not mention %q", f)
	}
}

// requestSchema returns the JSON request body schema of an operation,
// following a $ref into components.
func requestSchema(t *testing.T, doc map[string]interface{}, op map[string]interface{}) map[string]interface{} {
	t.Helper()
	body, _ := op["requestBody"].(map[string]interface{})
	content, _ := body["content"].(map[string]interface{})
	js, _ := content["application/json"].(map[string]interface{})
	schema, _ := js["schema"].(map[string]interface{})
	require.NotNil(t, schema, "no JSON request body schema")
	if ref, ok := schema["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		comps, _ := doc["components"].(map[string]interface{})
		schemas, _ := comps["schemas"].(map[string]interface{})
		schema, _ = schemas[name].(map[string]interface{})
		require.NotNil(t, schema, "unresolved schema reference %s", ref)
	}
	return schema
}

func keysOf(m map[string]interface{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// validate mixes ok, missing, kind mismatch, a list of accepted kinds and
// a missing secret: valid is false and exactly the expected problems come
// back, in request order, each with all its fields.
func TestValidateRequirements(t *testing.T) {
	env(t)
	write(t, "bindings/val_ok", map[string]interface{}{"kind": "api_token", "token": plant("val_ok")})
	write(t, "bindings/val_kind", map[string]interface{}{"kind": "api_token", "token": plant("val_kind")})
	write(t, "bindings/val_list", map[string]interface{}{
		"kind": "oauth2.client_credentials", "client_id": "c", "client_secret": plant("val_list"), "token_url": "https://a.example.com/t",
	})
	write(t, "bindings/val_nosecret", map[string]interface{}{"kind": "api_token", "token_secret": "val_gone"})

	resp := write(t, "validate", map[string]interface{}{"requirements": []interface{}{
		map[string]interface{}{"node": "n_ok", "handle": "val_ok", "kind": "api_token"},
		map[string]interface{}{"node": "n_missing", "handle": "val_absent", "kind": "google.oauth2"},
		map[string]interface{}{"node": "n_kind", "handle": "val_kind", "kind": "google.oauth2"},
		map[string]interface{}{"node": "n_list", "handle": "val_list", "kind": []interface{}{"oauth2.refresh_token", "oauth2.client_credentials"}},
		map[string]interface{}{"node": "n_secret", "handle": "val_nosecret", "kind": []interface{}{"api_token"}},
	}})
	require.Equal(t, false, resp.Data["valid"])
	raw := resp.Data["problems"].([]interface{})
	type problem struct{ node, handle, required, bound, problem string }
	var got []problem
	for _, r := range raw {
		m := r.(map[string]interface{})
		for _, k := range []string{"node", "handle", "required_kind", "bound_kind", "problem", "detail"} {
			require.Contains(t, m, k, "problem %v lacks %s", m, k)
		}
		require.NotEmpty(t, m["detail"])
		got = append(got, problem{str(m, "node"), str(m, "handle"), str(m, "required_kind"), str(m, "bound_kind"), str(m, "problem")})
	}
	require.Equal(t, []problem{
		{"n_missing", "val_absent", "google.oauth2", "", "missing"},
		{"n_kind", "val_kind", "google.oauth2", "api_token", "kind_mismatch"},
		{"n_secret", "val_nosecret", "api_token", "api_token", "missing_secret"},
	}, got)
	require.Contains(t, raw[2].(map[string]interface{})["detail"], "val_gone")

	// Only satisfied requirements: valid, no problems.
	resp = write(t, "validate", map[string]interface{}{"requirements": []interface{}{
		map[string]interface{}{"node": "n_ok", "handle": "val_ok", "kind": "api_token"},
		map[string]interface{}{"node": "n_list", "handle": "val_list", "kind": []interface{}{"google.oauth2", "oauth2.client_credentials"}},
	}})
	require.Equal(t, true, resp.Data["valid"])
	require.Empty(t, resp.Data["problems"])

	// A malformed requirement is a 400 naming it.
	_, err := srv.Client.Logical().Write(mp("validate"), map[string]interface{}{"requirements": []interface{}{
		map[string]interface{}{"node": "n", "handle": "val_ok", "kind": "no.such.kind"},
	}})
	requireStatus(t, err, 400, "requirements[0].kind", "no.such.kind")

	for _, h := range []string{"val_ok", "val_kind", "val_list", "val_nosecret"} {
		del(t, "bindings/"+h)
	}
}

// config: read, write, read back; a bad value is a 400 naming the field
// and changes nothing.
func TestConfigRoundTrip(t *testing.T) {
	env(t)
	orig := read(t, "config").Data
	for _, k := range []string{"refresh_margin", "default_token_lifetime", "http_timeout", "background_refresh", "background_window"} {
		require.Contains(t, orig, k)
	}
	t.Cleanup(func() {
		restore := map[string]interface{}{}
		for k, v := range orig {
			restore[k] = v
		}
		_, err := srv.Client.Logical().Write(mp("config"), restore)
		require.NoError(t, err)
	})

	write(t, "config", map[string]interface{}{
		"refresh_margin": "2m", "http_timeout": 10, "background_refresh": false, "default_token_lifetime": "15m",
	})
	got := read(t, "config").Data
	require.Equal(t, "120", string(numberOf(t, got["refresh_margin"])))
	require.Equal(t, "10", string(numberOf(t, got["http_timeout"])))
	require.Equal(t, "900", string(numberOf(t, got["default_token_lifetime"])))
	require.Equal(t, false, got["background_refresh"])
	require.Equal(t, orig["background_window"], got["background_window"], "an omitted field keeps its value")

	for _, tc := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"http_timeout": 0}, "http_timeout"},
		{map[string]interface{}{"refresh_margin": "-5s"}, "refresh_margin"},
		{map[string]interface{}{"background_window": "forever"}, "background_window"},
		{map[string]interface{}{"refresh_margn": "1m"}, "refresh_margn"},
	} {
		_, err := srv.Client.Logical().Write(mp("config"), tc.data)
		requireStatus(t, err, 400, tc.want)
		require.Equal(t, got, read(t, "config").Data, "a refused config write changed the config")
	}
}

func numberOf(t *testing.T, v interface{}) json.Number {
	t.Helper()
	n, ok := v.(json.Number)
	require.True(t, ok, "want a number, got %T (%v)", v, v)
	return n
}
