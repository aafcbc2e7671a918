package flowcred

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// fakeIdP is a token endpoint with exact, scriptable answers.
type fakeIdP struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	// rotate issues a new refresh token on every refresh and refuses reuse.
	rotate bool
	// valid is the refresh token the server accepts now.
	valid string
	seq   int
	// fail, when set, answers instead of a token.
	fail func(w http.ResponseWriter)
	// expiresIn of issued tokens; 0 omits it.
	expiresIn int
	// delay before answering.
	delay time.Duration
	// lastForm is the last request's form.
	lastForm map[string][]string
	lastAuth string
}

func newFakeIdP(t *testing.T) *fakeIdP {
	f := &fakeIdP{valid: testRefreshToken, expiresIn: 3600}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeIdP) serve(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	_ = r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastForm = r.PostForm
	f.lastAuth = r.Header.Get("Authorization")
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if f.fail != nil {
		f.fail(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	out := map[string]interface{}{"token_type": "bearer"}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		if r.PostForm.Get("refresh_token") != f.valid {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`))
			return
		}
		if f.rotate {
			f.seq++
			f.valid = fmt.Sprintf("rotated-%d-SECRET", f.seq)
			out["refresh_token"] = f.valid
		}
	case "client_credentials":
	default:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"unsupported_grant_type"}`))
		return
	}
	f.seq++
	out["access_token"] = fmt.Sprintf("at-%d-SECRET", f.seq)
	if f.expiresIn > 0 {
		out["expires_in"] = f.expiresIn
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (f *fakeIdP) set(fn func(f *fakeIdP)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func bindRefresh(t *testing.T, b *testBackend, handle, tokenURL string) {
	b.write(t, "bindings/"+handle, map[string]interface{}{
		"kind":          "oauth2.refresh_token",
		"client_id":     "client-1",
		"client_secret": testClientSecret,
		"refresh_token": testRefreshToken,
		"token_url":     tokenURL,
		"scopes":        "api,offline_access",
	})
}

func TestToken_APIToken(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "bindings/plain", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "extra_headers": map[string]interface{}{"x-team": "sales"}})
	b.write(t, "bindings/custom", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "header": "X-Api-Key", "scheme": "Token", "ttl": "10m"})
	b.write(t, "bindings/bare", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "header": "X-Api-Key", "scheme": ""})

	resp := b.read(t, "token/plain", nil)
	require.Equal(t, testAPIToken, resp.Data["access_token"])
	require.Equal(t, "Bearer", resp.Data["token_type"])
	require.Equal(t, map[string]string{"Authorization": "Bearer " + testAPIToken, "x-team": "sales"}, resp.Data["headers"])
	require.NotContains(t, resp.Data, "expires_at")
	require.NotNil(t, resp.Secret)
	require.False(t, resp.Secret.Renewable)
	require.Equal(t, time.Hour, resp.Secret.TTL)
	require.Equal(t, map[string]interface{}{"handle": "plain", "kind": "api_token", "secret_type": secretTypeToken}, resp.Secret.InternalData)

	resp = b.read(t, "token/custom", nil)
	require.Equal(t, map[string]string{"X-Api-Key": "Token " + testAPIToken}, resp.Data["headers"])
	require.Equal(t, 10*time.Minute, resp.Secret.TTL)

	resp = b.read(t, "token/bare", nil)
	require.Equal(t, map[string]string{"X-Api-Key": testAPIToken}, resp.Data["headers"])

	// Unknown handle: a 404 naming it (design.md, "Errors").
	requireStatus(t, b, "token/nope", http.StatusNotFound, `no binding for handle "nope"`)

	// Revoking a lease succeeds and changes nothing.
	rev, err := b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RevokeOperation, Storage: b.s,
		Secret: &logical.Secret{InternalData: map[string]interface{}{"secret_type": secretTypeToken, "handle": "plain"}},
	})
	require.NoError(t, err)
	require.Nil(t, rev)
	b.read(t, "token/plain", nil)
}

func TestToken_SecretUpdateChangesAPIToken(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "secrets/k", map[string]interface{}{"value": "first-SECRET"})
	b.write(t, "bindings/api", map[string]interface{}{"kind": "api_token", "token_secret": "k"})
	require.Equal(t, "first-SECRET", b.read(t, "token/api", nil).Data["access_token"])
	b.write(t, "secrets/k", map[string]interface{}{"value": "second-SECRET"})
	require.Equal(t, "second-SECRET", b.read(t, "token/api", nil).Data["access_token"])
	// Another node changed the secret: Invalidate drops what was resolved.
	require.NoError(t, putSecret(context.Background(), b.s, "k", &secretEntry{Value: "third-SECRET"}))
	b.invalidate(context.Background(), "secrets/k")
	require.Equal(t, "third-SECRET", b.read(t, "token/api", nil).Data["access_token"])
}

func TestToken_RefreshCachesAndLeases(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.URL)

	resp := b.read(t, "token/crm", nil)
	require.Equal(t, "at-1-SECRET", resp.Data["access_token"])
	require.Equal(t, "Bearer", resp.Data["token_type"])
	require.Equal(t, map[string]string{"Authorization": "Bearer at-1-SECRET"}, resp.Data["headers"])
	require.EqualValues(t, 3600, resp.Data["expires_in"])
	require.Equal(t, 55*time.Minute, resp.Secret.TTL, "lease = remaining life minus the 5m margin")
	require.False(t, resp.Secret.Renewable)

	// Cached: no new request while the token has the margin left.
	clock.advance(50 * time.Minute)
	resp = b.read(t, "token/crm", nil)
	require.Equal(t, "at-1-SECRET", resp.Data["access_token"])
	require.EqualValues(t, 1, idp.requests.Load())
	require.Equal(t, 5*time.Minute, resp.Secret.TTL)

	// min_ttl forces a refresh when the token has less life left.
	resp = b.read(t, "token/crm", map[string]interface{}{"min_ttl": "20m"})
	require.Equal(t, "at-2-SECRET", resp.Data["access_token"])
	require.EqualValues(t, 2, idp.requests.Load())

	// Under the margin: refreshed.
	clock.advance(56 * time.Minute)
	resp = b.read(t, "token/crm", nil)
	require.Equal(t, "at-3-SECRET", resp.Data["access_token"])

	// The binding's ttl caps the lease.
	b.write(t, "bindings/crm", map[string]interface{}{"ttl": "10m"})
	resp = b.read(t, "token/crm", nil)
	require.Equal(t, 10*time.Minute, resp.Secret.TTL)

	st := b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, "ok", st["health"])
	require.NotEmpty(t, st["expires_at"])
}

func TestToken_RotationPersistedAndNeverReused(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	idp.rotate = true
	bindRefresh(t, b, "crm", idp.URL)
	// min_ttl makes each read ask the provider here.
	b.write(t, "config", map[string]interface{}{"min_refresh_interval": 0})

	for i := 0; i < 20; i++ {
		resp := b.read(t, "token/crm", map[string]interface{}{"min_ttl": "2h"})
		require.NotEmpty(t, resp.Data["access_token"])
	}
	require.EqualValues(t, 20, idp.requests.Load())

	// A fresh backend on the same storage (plugin reload) uses the newest
	// refresh token, and serves the cached access token without a request.
	b2 := &testBackend{backend: newBackend(deps{now: clock.now}), s: b.s}
	require.NoError(t, b2.Setup(context.Background(), &logical.BackendConfig{StorageView: b.s, System: logical.TestSystemView(), Logger: b.Logger()}))
	before := idp.requests.Load()
	b2.read(t, "token/crm", nil)
	require.Equal(t, before, idp.requests.Load(), "cached token served after reload")
	b2.read(t, "token/crm", map[string]interface{}{"min_ttl": "2h"})
	require.Equal(t, before+1, idp.requests.Load())

	// A binding update that does not touch the refresh token keeps the rotated one.
	b2.write(t, "bindings/crm", map[string]interface{}{"description": "changed"})
	b2.read(t, "token/crm", nil)
	st := b2.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, "ok", st["health"])
	assertNoSecrets(t, b2.read(t, "bindings/crm", nil))
}

func TestToken_ConcurrentReadsOneRequest(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	idp.delay = 50 * time.Millisecond
	bindRefresh(t, b, "crm", idp.URL)
	bindRefresh(t, b, "other", idp.URL)

	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := b.do(t, logical.ReadOperation, "token/crm", nil)
			if err == nil && resp.IsError() {
				err = resp.Error()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, idp.requests.Load(), "50 concurrent reads, one upstream request")
}

func TestToken_InvalidGrantNeedsReauth(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	idp.valid = "something-else"
	bindRefresh(t, b, "crm", idp.URL)

	resp, err := b.do(t, logical.ReadOperation, "token/crm", nil)
	require.NoError(t, err)
	require.True(t, resp.IsError())
	msg := resp.Error().Error()
	require.Contains(t, msg, `"crm"`)
	require.Contains(t, msg, "invalid_grant")
	require.Contains(t, msg, "Token has been expired or revoked.")
	require.NotContains(t, msg, testRefreshToken)

	st := b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, "needs_reauth", st["health"])
	require.Equal(t, "invalid_grant", st["last_error_code"])
	require.Equal(t, 1, st["consecutive_failures"])

	// Fails fast: no new upstream request until the inputs change.
	before := idp.requests.Load()
	_, _ = b.do(t, logical.ReadOperation, "token/crm", nil)
	require.Equal(t, before, idp.requests.Load())

	// The refresh token is kept.
	be, err := getBinding(context.Background(), b.s, "crm")
	require.NoError(t, err)
	require.Equal(t, testRefreshToken, be.Inline["refresh_token"])

	// validate warns, but stays valid.
	v := b.write(t, "validate", map[string]interface{}{"requirements": []interface{}{map[string]interface{}{"node": "n", "handle": "crm", "kind": "oauth2.refresh_token"}}})
	require.Equal(t, true, v.Data["valid"])
	require.Equal(t, "needs_reauth", v.Data["problems"].([]map[string]interface{})[0]["problem"])

	// A still-fresh cached token is served, with a warning.
	idp.set(func(f *fakeIdP) { f.valid = testRefreshToken })
	b.write(t, "bindings/ok_then_revoked", map[string]interface{}{"kind": "oauth2.refresh_token", "client_id": "c", "refresh_token": testRefreshToken, "token_url": idp.URL})
	b.read(t, "token/ok_then_revoked", nil)
	idp.set(func(f *fakeIdP) { f.valid = "revoked" })
	_, err = b.do(t, logical.UpdateOperation, "bindings/ok_then_revoked/refresh", nil)
	require.NoError(t, err)
	served := b.read(t, "token/ok_then_revoked", nil)
	require.NotEmpty(t, served.Data["access_token"])
	require.Contains(t, served.Warnings[0], "needs re-authorization")

	// Re-authorized: a new refresh token works at once.
	idp.set(func(f *fakeIdP) { f.valid = "new-rt-SECRET" })
	b.write(t, "bindings/crm", map[string]interface{}{"refresh_token": "new-rt-SECRET"})
	b.read(t, "token/crm", nil)
	st = b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, "ok", st["health"])
}

func TestToken_TransientFailures(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.URL)
	b.read(t, "token/crm", nil)

	shapes := []struct {
		name  string
		shape func(w http.ResponseWriter)
	}{
		{"503", func(w http.ResponseWriter) { w.WriteHeader(503) }},
		{"429", func(w http.ResponseWriter) { w.Header().Set("Retry-After", "1"); w.WriteHeader(429) }},
		{"html", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>oops</html>"))
		}},
		{"truncated", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"at`))
		}},
		{"no token", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"token_type":"bearer"}`))
		}},
		{"server_error", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(500)
			_, _ = w.Write([]byte(`{"error":"server_error"}`))
		}},
	}
	for _, tc := range shapes {
		t.Run(tc.name, func(t *testing.T) {
			idp.set(func(f *fakeIdP) { f.fail = tc.shape })
			// Past any backoff; the cached token is still valid but under
			// min_ttl: served with a warning.
			clock.advance(5 * time.Minute)
			resp := b.read(t, "token/crm", map[string]interface{}{"min_ttl": "2h"})
			require.Equal(t, "at-1-SECRET", resp.Data["access_token"])
			require.NotEmpty(t, resp.Warnings)
			require.Contains(t, resp.Warnings[0], "degraded")
			require.LessOrEqual(t, resp.Secret.TTL, time.Minute)
			st := b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
			require.Equal(t, "degraded", st["health"])
			require.NotContains(t, st["last_error"], "SECRET")
		})
	}

	// Expired and failing: a 502.
	idp.set(func(f *fakeIdP) { f.fail = shapes[0].shape })
	clock.advance(2 * time.Hour)
	_, err := b.do(t, logical.ReadOperation, "token/crm", nil)
	require.Error(t, err)
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded))
	require.Equal(t, 502, coded.Code())

	// Recovery.
	idp.set(func(f *fakeIdP) { f.fail = nil })
	clock.advance(time.Minute) // past the backoff
	resp := b.read(t, "token/crm", nil)
	require.NotEqual(t, "at-1-SECRET", resp.Data["access_token"])
	st := b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, "ok", st["health"])
	require.Equal(t, 0, st["consecutive_failures"])
}

func TestToken_TimeoutIsBounded(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.URL)
	b.write(t, "config", map[string]interface{}{"http_timeout": 1})
	release := make(chan struct{})
	idp.set(func(f *fakeIdP) {
		f.fail = func(w http.ResponseWriter) { <-release }
	})
	defer close(release)
	_, err := b.do(t, logical.ReadOperation, "token/crm", nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "did not answer in time")
}

func TestToken_MissingExpiresIn(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	idp.expiresIn = 0
	bindRefresh(t, b, "crm", idp.URL)
	// min_ttl makes each read ask the provider here.
	b.write(t, "config", map[string]interface{}{"min_refresh_interval": 0})
	resp := b.read(t, "token/crm", nil)
	require.EqualValues(t, 600, resp.Data["expires_in"], "default_token_lifetime")

	// A JWT access token's exp is used instead.
	exp := clock.now().Add(42 * time.Minute).Unix()
	jwtTok := "eyJhbGciOiJub25lIn0." + b64(fmt.Sprintf(`{"exp":%d}`, exp)) + ".sig"
	idp.set(func(f *fakeIdP) {
		f.fail = func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"` + jwtTok + `","token_type":"Bearer"}`))
		}
	})
	resp = b.read(t, "token/crm", map[string]interface{}{"min_ttl": "1h"})
	require.EqualValues(t, 42*60, resp.Data["expires_in"])
}

func TestToken_ClientCredentials(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	b.write(t, "bindings/cc", map[string]interface{}{
		"kind": "oauth2.client_credentials", "client_id": "svc", "client_secret": testClientSecret,
		"token_url": idp.URL, "auth_style": "header", "scopes": "read,write", "token_params": map[string]interface{}{"audience": "https://api.example"},
	})
	resp := b.read(t, "token/cc", nil)
	require.Equal(t, "at-1-SECRET", resp.Data["access_token"])
	require.Equal(t, "https://api.example", idp.lastForm["audience"][0])
	require.Equal(t, "read write", idp.lastForm["scope"][0])
	require.Contains(t, idp.lastAuth, "Basic ")
}

func TestToken_StoreFailureKeepsRotatedToken(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	idp.rotate = true
	bindRefresh(t, b, "crm", idp.URL)

	// min_ttl makes each read ask the provider here.
	b.write(t, "config", map[string]interface{}{"min_refresh_interval": 0})
	failing := &failingStorage{Storage: b.s}
	failing.failPuts.Store(true)
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "token/crm", Storage: failing})
	require.Error(t, err, "the read fails when the rotated refresh token cannot be stored")
	require.Nil(t, resp)

	// Storage works again: the pending state (with the rotated token) is
	// written first, and the next refresh uses the rotated token.
	failing.failPuts.Store(false)
	b.read(t, "token/crm", nil)
	before := idp.requests.Load()
	b.read(t, "token/crm", map[string]interface{}{"min_ttl": "2h"})
	require.Equal(t, before+1, idp.requests.Load())
	st := b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, "ok", st["health"], "no invalid_grant: the rotated token was not lost")
}

func TestToken_BackgroundRefresh(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "read_recently", idp.URL)
	bindRefresh(t, b, "never_read", idp.URL)
	b.read(t, "token/read_recently", nil)
	require.EqualValues(t, 1, idp.requests.Load())

	// Nothing due: the tick makes no request.
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.EqualValues(t, 1, idp.requests.Load())

	// Due (1h token, 5m margin, 2m lookahead): refreshed before the margin.
	clock.advance(54 * time.Minute)
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.EqualValues(t, 2, idp.requests.Load())
	resp := b.read(t, "token/read_recently", nil)
	require.Equal(t, "at-2-SECRET", resp.Data["access_token"])
	require.EqualValues(t, 2, idp.requests.Load(), "the read did not wait on the provider")

	// Not read for longer than the window: left alone.
	clock.advance(2 * time.Hour)
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.EqualValues(t, 2, idp.requests.Load())
}

// failingStorage fails writes on demand.
type failingStorage struct {
	logical.Storage
	failPuts atomic.Bool
}

func (f *failingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if f.failPuts.Load() {
		return errors.New("storage unavailable")
	}
	return f.Storage.Put(ctx, e)
}

func b64(s string) string {
	return base64URL([]byte(s))
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestToken_BackgroundRefreshRetriesAfterTransientFailure(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.URL)
	b.read(t, "token/crm", nil)

	// Due, but the provider fails: the cached token stays, and the handle
	// must stay scheduled.
	idp.set(func(f *fakeIdP) { f.fail = func(w http.ResponseWriter) { w.WriteHeader(503) } })
	clock.advance(54 * time.Minute)
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.Equal(t, 1, b.scheduler.len(), "rescheduled after the failure")

	// The provider is back: the next tick after the retry delay refreshes.
	idp.set(func(f *fakeIdP) { f.fail = nil })
	before := idp.requests.Load()
	clock.advance(2 * time.Minute)
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.Greater(t, idp.requests.Load(), before)
	resp := b.read(t, "token/crm", nil)
	require.Empty(t, resp.Warnings)
	require.Equal(t, 1, b.scheduler.len())
}

// requireStatus reads path and requires Vault's answer to be status with a
// message containing want.
func requireStatus(t *testing.T, b *testBackend, path string, status int, want string) {
	t.Helper()
	resp, err := b.do(t, logical.ReadOperation, path, nil)
	got, msg := 200, ""
	var coded logical.HTTPCodedError
	switch {
	case errors.As(err, &coded):
		got, msg = coded.Code(), coded.Error()
	case err != nil:
		got, msg = 500, err.Error()
	case resp != nil && resp.IsError():
		got, msg = 400, resp.Error().Error()
	}
	require.Equal(t, status, got, "read %s: %s", path, msg)
	require.Contains(t, msg, want)
}
