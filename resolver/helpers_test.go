package resolver_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/fakevault"
	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// Test secrets: constants, never real.
const (
	staticToken  = "static-api-token-for-tests"
	clientSecret = "client-secret-for-tests"
	refreshToken = "refresh-token-for-tests"
)

// clock is a settable clock for the provider.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// vaultClient returns an API client for the fake Vault, without retries so
// that failures are answered at once.
func vaultClient(t testing.TB, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		t.Fatal(cfg.Error)
	}
	cfg.Address = addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func newProvider(t testing.TB, fv *fakevault.Server, opts ...resolver.Option) *resolver.VaultProvider {
	t.Helper()
	opts = append([]resolver.Option{resolver.WithClient(vaultClient(t, fv.Addr, fakevault.RootToken))}, opts...)
	p, err := resolver.NewVault(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// bindStatic binds handle to an api_token with the given lease ttl.
func bindStatic(t testing.TB, fv *fakevault.Server, handle, token string, ttl time.Duration) {
	t.Helper()
	fv.Write(t, "flowcred/bindings/"+handle, map[string]interface{}{
		"kind":  "api_token",
		"token": token,
		"ttl":   int(ttl / time.Second),
	})
}

// tokenEndpoint is an OAuth2 token endpoint on loopback that issues
// tok-1, tok-2, ... for refresh-token grants, or fails as told.
type tokenEndpoint struct {
	srv    *httptest.Server
	issued atomic.Int64
	// mode: "" issues tokens, "invalid_grant" refuses the grant,
	// "down" answers 500.
	mode atomic.Value
}

func newTokenEndpoint(t testing.TB) *tokenEndpoint {
	te := &tokenEndpoint{}
	te.mode.Store("")
	te.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch te.mode.Load().(string) {
		case "invalid_grant":
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
			return
		case "down":
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "server_error"})
			return
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("refresh_token") != refreshToken {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request"})
			return
		}
		n := te.issued.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]interface{}{
			"access_token": fmt.Sprintf("tok-%d", n),
			"token_type":   "Bearer",
			"expires_in":   3600,
		})
	}))
	t.Cleanup(te.srv.Close)
	return te
}

// URL is the endpoint's token URL.
func (te *tokenEndpoint) URL() string { return te.srv.URL + "/token" }

// bindOAuth binds handle to an oauth2.refresh_token grant at te.
func bindOAuth(t testing.TB, fv *fakevault.Server, handle string, te *tokenEndpoint) {
	t.Helper()
	fv.Write(t, "flowcred/bindings/"+handle, map[string]interface{}{
		"kind":          "oauth2.refresh_token",
		"client_id":     "client-id",
		"client_secret": clientSecret,
		"refresh_token": refreshToken,
		"token_url":     te.URL(),
		"extra_headers": map[string]interface{}{"x-goog-user-project": "sales-project"},
	})
}

// newLoopbackServer serves h on 127.0.0.1 until the test ends and returns its URL.
func newLoopbackServer(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
