package flowcred

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/net/http/httpguts"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// fuzzSecret is planted in every fuzzed binding; no answer may carry it.
const fuzzSecret = "fz-7d1e-SECRET-VALUE"

// FuzzBindingWrite writes bindings with fuzzed field values. Every write
// must either succeed or be a 400 that does not echo the secret; a binding
// that was accepted must produce material whose headers are valid HTTP.
func FuzzBindingWrite(f *testing.F) {
	f.Add("api_token", "Authorization", "Bearer", "x-team", "sales", "https://idp.example/token", "a,b")
	f.Add("api_token", "X-Api-Key", "", "x-a", "1\r\nInjected: yes", "", "")
	f.Add("oauth2.refresh_token", "", "", "x goog", "v", "http://127.0.0.1:9/token", "openid")
	f.Add("oauth2.client_credentials", "", "", "Host", "evil", "http://10.0.0.1/token", `a"b`)
	f.Add("google.oauth2", "", "", "x-goog-user-project", "p\x00", "https://[::1]:1/t", "")
	f.Add("oauth2.jwt_bearer", "", "", "", "", "ftp://x", "s")
	f.Add("api_token", "Auth\norization", "Bea rer", "x-ok", strings.Repeat("v", 5000), "", "")
	b := getTestBackend(f, nil)
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, kind, header, scheme, xname, xvalue, tokenURL, scopes string) {
		handle := "h" + strings.Repeat("x", int(n.Add(1)%5))
		data := map[string]interface{}{"kind": kind}
		switch kind {
		case kindtable.APIToken:
			data["token"] = fuzzSecret
			data["header"] = header
			data["scheme"] = scheme
		case kindtable.OAuth2RefreshToken, kindtable.GoogleOAuth2:
			data["client_id"] = "c"
			data["client_secret"] = fuzzSecret
			data["refresh_token"] = fuzzSecret
			data["token_url"] = tokenURL
			data["scopes"] = scopes
		case kindtable.OAuth2ClientCreds:
			data["client_id"] = "c"
			data["client_secret"] = fuzzSecret
			data["token_url"] = tokenURL
			data["token_params"] = map[string]interface{}{xname: xvalue}
		default:
			data["token_url"] = tokenURL
		}
		if xname != "" {
			data["extra_headers"] = map[string]interface{}{xname: xvalue}
		}
		_, _ = b.do(t, logical.DeleteOperation, "bindings/"+handle, nil)
		resp, err := b.do(t, logical.UpdateOperation, "bindings/"+handle, data)
		if err != nil {
			t.Fatalf("a binding write must never be a 500: %v", err)
		}
		if resp != nil && resp.IsError() {
			if strings.Contains(resp.Error().Error(), fuzzSecret) {
				t.Fatalf("error echoes a secret: %v", resp.Error())
			}
			return
		}
		read, err := b.do(t, logical.ReadOperation, "bindings/"+handle, nil)
		if err != nil || read == nil {
			t.Fatalf("reading an accepted binding: %v", err)
		}
		raw, _ := json.Marshal(read.Data)
		if strings.Contains(string(raw), fuzzSecret) {
			t.Fatalf("binding read shows a secret")
		}
		if kind != kindtable.APIToken {
			return
		}
		tok, err := b.do(t, logical.ReadOperation, "token/"+handle, nil)
		if err != nil || tok.IsError() {
			t.Fatalf("token read of an accepted api_token binding failed: %v %v", err, tok.Error())
		}
		for name, value := range tok.Data["headers"].(map[string]string) {
			if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) || strings.ContainsAny(value, "\r\n") {
				t.Fatalf("invalid header in material: %q", name)
			}
		}
	})
}

// FuzzTokenResponse feeds fuzzed token-endpoint answers to a refresh. The
// plugin must classify every one (material, a 400-class answer or a
// 502-class error), never panic, and never echo the secrets it sent.
func FuzzTokenResponse(f *testing.F) {
	f.Add(200, "application/json", `{"access_token":"at","token_type":"bearer","expires_in":3600}`)
	f.Add(200, "application/json", `{"access_token":"at","refresh_token":"rt2","expires_in":"3600"}`)
	f.Add(400, "application/json", `{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`)
	f.Add(200, "application/x-www-form-urlencoded", "access_token=at&token_type=bearer&expires_in=60")
	f.Add(200, "text/plain", "access_token=%zz")
	f.Add(503, "text/html", "<html>down</html>")
	f.Add(200, "application/json", `{"access_token":"at`)
	f.Add(200, "application/json", `{"token_type":"bearer"}`)
	f.Add(429, "application/json", `{"error":"slow_down"}`)
	f.Add(200, "application/json", `{"access_token":"a.eyJleHAiOjF9.c"}`)
	f.Add(200, "application/json", `{"access_token":"at","expires_in":-5}`)

	var status atomic.Int64
	var ctype, body atomic.Value
	srv := oauthtest.StartTokenEndpoint(f, oauthtest.TokenOptions{})
	srv.Answer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype.Load().(string))
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(body.Load().(string)))
	})
	b := getTestBackend(f, nil)
	b.write(f, "bindings/fz", map[string]interface{}{
		"kind": kindtable.OAuth2RefreshToken, "client_id": "c", "client_secret": fuzzSecret,
		"refresh_token": fuzzSecret, "token_url": srv.TokenURL(), "auth_style": "params",
	})
	f.Fuzz(func(t *testing.T, code int, contentType, payload string) {
		if code < 200 || code > 599 {
			code = 200 + (abs(code) % 400)
		}
		status.Store(int64(code))
		ctype.Store(strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, contentType))
		body.Store(payload)
		b.handles.drop("fz")
		if hc := b.handles.peek("fz"); hc != nil {
			hc.lastFailure = nil
		}
		mat, err := b.material(context.Background(), b.s, "fz", readOpts{force: true})
		switch {
		case err != nil:
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("error echoes a secret")
			}
		case mat == nil || mat.accessToken == "":
			t.Fatalf("success without an access token")
		default:
			if !mat.expiry.After(mat.obtainedAt) {
				t.Fatalf("material expires before it was obtained")
			}
			if strings.ContainsAny(mat.headers["Authorization"], "\r\n") {
				t.Fatalf("token with CR/LF would be injected into a header")
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
