package flowcred

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

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
	bindRefresh(t, b, "crm", idp.TokenURL())

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
	require.EqualValues(t, 1, idp.Count())
	require.Equal(t, 5*time.Minute, resp.Secret.TTL)

	// min_ttl forces a refresh when the token has less life left.
	resp = b.read(t, "token/crm", map[string]interface{}{"min_ttl": "20m"})
	require.Equal(t, "at-2-SECRET", resp.Data["access_token"])
	require.EqualValues(t, 2, idp.Count())

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

func TestToken_ConcurrentReadsOneRequest(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	idp.SetMode(oauthtest.Delay(50 * time.Millisecond))
	bindRefresh(t, b, "crm", idp.TokenURL())
	bindRefresh(t, b, "other", idp.TokenURL())

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
	require.EqualValues(t, 1, idp.Count(), "50 concurrent reads, one upstream request")
}

func TestToken_TransientFailures(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.TokenURL())
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
			idp.Answer(func(w http.ResponseWriter, _ *http.Request) { tc.shape(w) })
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
	idp.Answer(func(w http.ResponseWriter, _ *http.Request) { shapes[0].shape(w) })
	clock.advance(2 * time.Hour)
	_, err := b.do(t, logical.ReadOperation, "token/crm", nil)
	require.Error(t, err)
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded))
	require.Equal(t, 502, coded.Code())

	// Recovery.
	idp.Answer(nil)
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
	bindRefresh(t, b, "crm", idp.TokenURL())
	b.write(t, "config", map[string]interface{}{"http_timeout": 1})
	idp.SetMode(oauthtest.Hang())
	_, err := b.do(t, logical.ReadOperation, "token/crm", nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "did not answer in time")
}

func TestToken_MissingExpiresIn(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t, oauthtest.TokenOptions{ExpiresIn: -1})
	bindRefresh(t, b, "crm", idp.TokenURL())
	// min_ttl makes each read ask the provider here.
	b.write(t, "config", map[string]interface{}{"min_refresh_interval": 0})
	resp := b.read(t, "token/crm", nil)
	require.EqualValues(t, 600, resp.Data["expires_in"], "default_token_lifetime")

	// A JWT access token's exp is used instead.
	exp := clock.now().Add(42 * time.Minute).Unix()
	jwtTok := "eyJhbGciOiJub25lIn0." + b64(fmt.Sprintf(`{"exp":%d}`, exp)) + ".sig"
	idp.Answer(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"` + jwtTok + `","token_type":"Bearer"}`))
	})
	resp = b.read(t, "token/crm", map[string]interface{}{"min_ttl": "1h"})
	require.EqualValues(t, 42*60, resp.Data["expires_in"])
}

func TestToken_BackgroundRefresh(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "read_recently", idp.TokenURL())
	bindRefresh(t, b, "never_read", idp.TokenURL())
	b.read(t, "token/read_recently", nil)
	require.EqualValues(t, 1, idp.Count())

	// Nothing due: the tick makes no request.
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.EqualValues(t, 1, idp.Count())

	// Due (1h token, 5m margin, 2m lookahead): refreshed before the margin.
	clock.advance(54 * time.Minute)
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.EqualValues(t, 2, idp.Count())
	resp := b.read(t, "token/read_recently", nil)
	require.Equal(t, "at-2-SECRET", resp.Data["access_token"])
	require.EqualValues(t, 2, idp.Count(), "the read did not wait on the provider")

	// Not read for longer than the window: left alone.
	clock.advance(2 * time.Hour)
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.EqualValues(t, 2, idp.Count())
}

func TestToken_BackgroundRefreshRetriesAfterTransientFailure(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.TokenURL())
	b.read(t, "token/crm", nil)

	// Due, but the provider fails: the cached token stays, and the handle
	// must stay scheduled.
	idp.Answer(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	clock.advance(54 * time.Minute)
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.Equal(t, 1, b.scheduler.len(), "rescheduled after the failure")

	// The provider is back: the next tick after the retry delay refreshes.
	idp.Answer(nil)
	before := idp.Count()
	clock.advance(2 * time.Minute)
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.Greater(t, idp.Count(), before)
	resp := b.read(t, "token/crm", nil)
	require.Empty(t, resp.Warnings)
	require.Equal(t, 1, b.scheduler.len())
}
