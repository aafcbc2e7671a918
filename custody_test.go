package flowcred

// Custody tests (issue 11): a refresh token put in is never lost, never sent
// where the binding did not name, and no secret comes back out, whatever a
// reader, a provider or something in front of it does. Each test failed
// before the fix it names.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// A reader that hangs up while its refresh is at the provider must not lose
// the rotated refresh token, nor mark the binding degraded.
func TestCustody_ReaderHangsUpMidRefresh(t *testing.T) {
	idp := newFakeIdP(t, oauthtest.TokenOptions{Rotate: true})
	idp.SetMode(oauthtest.SlowAnswer(300 * time.Millisecond))
	b := getTestBackend(t, nil)
	bindRefresh(t, b, "h", idp.TokenURL())

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := b.doCtx(ctx, logical.ReadOperation, "token/h", nil)
	require.Error(t, err, "the reader's own deadline ends its wait")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// A second reader gives up on its own context too, without cancelling
	// the refresh.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	_, err = b.doCtx(ctx2, logical.ReadOperation, "token/h", nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// The refresh goes on and stores the rotated refresh token.
	waitFor(t, "the detached refresh to store its result", func() bool {
		st, err := getTokenState(context.Background(), b.s, "h")
		return err == nil && st != nil && st.RefreshToken == "rotated-1-SECRET"
	})
	require.Equal(t, int64(1), idp.Count())
	st := b.status(t, "h")
	require.Equal(t, healthOK, st["health"])
	require.EqualValues(t, 0, st["consecutive_failures"])

	// The next read is served the token the provider issued, and the next
	// refresh sends the rotated refresh token.
	resp := b.read(t, "token/h", nil)
	require.Equal(t, "at-2-SECRET", resp.Data["access_token"])
	idp.SetMode(oauthtest.PassThrough())
	b.write(t, "bindings/h/refresh", nil)
	require.Equal(t, healthOK, b.status(t, "h")["health"])
	require.Equal(t, int64(2), idp.Count())
}

// No redirect is followed on an upstream call: the refresh token and client
// secret are never re-posted to the Location.
func TestCustody_TokenEndpointRedirectNotFollowed(t *testing.T) {
	other := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{AccessToken: "stolen", TokenType: "bearer"})
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			idp := newFakeIdP(t)
			idp.Answer(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Location", other.TokenURL()+"?code=QUERYSECRET")
				w.WriteHeader(code)
			})
			b := getTestBackend(t, nil)
			bindRefresh(t, b, "h", idp.TokenURL())
			resp, err := b.do(t, logical.ReadOperation, "token/h", nil)
			require.Error(t, err)
			var coded logical.HTTPCodedError
			require.True(t, errors.As(err, &coded))
			require.Equal(t, 502, coded.Code())
			require.Nil(t, resp)
			require.Zero(t, other.Count(), "the redirect was followed")
			st := b.status(t, "h")
			require.Equal(t, healthDegraded, st["health"])
			require.Equal(t, "redirect", st["last_error_code"])
			u, _ := url.Parse(other.URL())
			require.Contains(t, st["last_error"], u.Host)
			require.NotContains(t, st["last_error"], "QUERYSECRET")
			require.NotContains(t, err.Error(), "QUERYSECRET")
		})
	}
}

// A 200 whose access token is refused keeps the refresh token that came with it.
func TestCustody_RotatedTokenKeptWhenAccessTokenRefused(t *testing.T) {
	for name, body := range map[string]string{
		"space":      `{"access_token":"bad token","token_type":"bearer","refresh_token":"rt-new-SECRET","expires_in":3600}`,
		"token_type": `{"access_token":"good","token_type":"be arer","refresh_token":"rt-new-SECRET","expires_in":3600}`,
		"too_large":  `{"access_token":"` + strings.Repeat("a", maxTokenBytes+1) + `","token_type":"bearer","refresh_token":"rt-new-SECRET"}`,
	} {
		t.Run(name, func(t *testing.T) {
			idp := newFakeIdP(t, oauthtest.TokenOptions{Rotate: true})
			idp.Answer(func(w http.ResponseWriter, _ *http.Request) {
				idp.SetRefreshToken("rt-new-SECRET")
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(body))
			})
			b := getTestBackend(t, nil)
			bindRefresh(t, b, "h", idp.TokenURL())
			_, err := b.do(t, logical.ReadOperation, "token/h", nil)
			require.Error(t, err)
			idp.Answer(nil)
			b.write(t, "bindings/h/refresh", nil)
			require.Equal(t, healthOK, b.status(t, "h")["health"])
			require.Equal(t, "rt-new-SECRET", idp.LastRequest().Form()["refresh_token"][0])
		})
	}
}

// Reads that ask for more life than the provider issues refresh at most once
// per min_refresh_interval.
func TestCustody_MinTTLBounded(t *testing.T) {
	clock := newFakeClock()
	idp := newFakeIdP(t, oauthtest.TokenOptions{Rotate: true, ExpiresIn: 600})
	b := getTestBackend(t, clock)
	bindRefresh(t, b, "h", idp.TokenURL())
	for i := 0; i < 25; i++ {
		resp := b.read(t, "token/h", map[string]interface{}{"min_ttl": 3600})
		require.Contains(t, strings.Join(resp.Warnings, " "), "less life than min_ttl")
	}
	require.Equal(t, int64(1), idp.Count())
	clock.advance(11 * time.Second)
	for i := 0; i < 5; i++ {
		b.read(t, "token/h", map[string]interface{}{"min_ttl": 3600})
	}
	require.Equal(t, int64(2), idp.Count())
	// A read the cached token satisfies never waits for the interval.
	b.read(t, "token/h", nil)
	require.Equal(t, int64(2), idp.Count())
}

// The configured scopes are sent on refresh (RFC 6749 section 6), and left
// out when none are configured.
func TestCustody_ScopesSentOnRefresh(t *testing.T) {
	idp := newFakeIdP(t)
	b := getTestBackend(t, nil)
	bindRefresh(t, b, "h", idp.TokenURL())
	b.read(t, "token/h", nil)
	require.Equal(t, []string{"api offline_access"}, idp.LastRequest().Form()["scope"])
	require.Equal(t, []string{testRefreshToken}, idp.LastRequest().Form()["refresh_token"])
	require.Equal(t, []string{"refresh_token"}, idp.LastRequest().Form()["grant_type"])

	b.write(t, "bindings/g", map[string]interface{}{
		"kind": "google.oauth2", "client_id": "c", "client_secret": testClientSecret,
		"refresh_token": testRefreshToken, "token_url": idp.TokenURL(),
	})
	b.read(t, "token/g", nil)
	require.NotContains(t, idp.LastRequest().Form(), "scope")
}

// Every answer shape gives the same expiry: form-encoded expires_in counts.
func TestCustody_FormEncodedExpiresIn(t *testing.T) {
	clock := newFakeClock()
	for name, write := range map[string]func(w http.ResponseWriter){
		"form": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			_, _ = w.Write([]byte("access_token=gho_form&token_type=bearer&expires_in=60"))
		},
		"json_number": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"json","token_type":"bearer","expires_in":60}`))
		},
		"json_string": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"json","token_type":"bearer","expires_in":"60"}`))
		},
	} {
		t.Run(name, func(t *testing.T) {
			idp := newFakeIdP(t)
			idp.Answer(func(w http.ResponseWriter, _ *http.Request) { write(w) })
			b := getTestBackend(t, clock)
			bindRefresh(t, b, "h", idp.TokenURL())
			resp := b.read(t, "token/h", nil)
			require.InDelta(t, 60, resp.Data["expires_in"], 1)
			require.LessOrEqual(t, resp.Secret.TTL, 60*time.Second)
		})
	}
}

// A binding deleted and created again under the same handle never sees the
// old binding's token, not even one whose write was still pending.
func TestCustody_RecreatedBindingNeverSeesOldState(t *testing.T) {
	idp := newFakeIdP(t)
	b := getTestBackend(t, nil)
	fs := &failingStorage{Storage: b.s}
	b.s = fs
	bindRefresh(t, b, "h", idp.TokenURL())
	fs.failPuts.Store(true)
	_, err := b.do(t, logical.ReadOperation, "token/h", nil)
	require.Error(t, err, "the token state write failed; the state is pending")
	fs.failPuts.Store(false)

	resp, err := b.do(t, logical.DeleteOperation, "bindings/h", nil)
	require.NoError(t, err)
	require.Nil(t, resp)
	bindRefresh(t, b, "h", idp.TokenURL())
	before := idp.Count()
	resp = b.read(t, "token/h", nil)
	require.Equal(t, before+1, idp.Count(), "the new binding's first read asks the provider")
	require.NotEqual(t, "at-1-SECRET", resp.Data["access_token"])
}

// Absurd lifetimes are clamped: a JWT exp beyond year 9999 does not wedge
// the handle, and a huge expires_in does not wrap.
func TestCustody_AbsurdLifetimesClamped(t *testing.T) {
	clock := newFakeClock()
	far := fakeJWT(map[string]interface{}{"exp": int64(253402300800 + 86400)}) // year 10000
	for name, body := range map[string]string{
		"jwt_exp":    fmt.Sprintf(`{"access_token":%q,"token_type":"bearer"}`, far),
		"expires_in": `{"access_token":"x","token_type":"bearer","expires_in":18446744074}`,
	} {
		t.Run(name, func(t *testing.T) {
			idp := newFakeIdP(t)
			idp.Answer(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(body))
			})
			b := getTestBackend(t, clock)
			bindRefresh(t, b, "h", idp.TokenURL())
			for i := 0; i < 3; i++ {
				resp := b.read(t, "token/h", nil)
				left := resp.Data["expires_in"].(int64)
				require.Greater(t, left, int64(3600))
				require.LessOrEqual(t, left, int64(maxTokenLifetime/time.Second))
			}
			require.Equal(t, int64(1), idp.Count())
		})
	}
	// The JWT-bearer path parses expires_in itself.
	require.Equal(t, int64(maxTokenLifetime/time.Second), parseExpiresIn([]byte("18446744074")))
}

// A provider that echoes secrets in error_description does not get them
// into errors, the binding status or validate.
func TestCustody_EchoedSecretsScrubbed(t *testing.T) {
	idp := newFakeIdP(t)
	idp.Answer(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		desc := fmt.Sprintf("refresh token %s (prefix %s...) for client secret %s is not valid",
			testRefreshToken, testRefreshToken[:10], testClientSecret)
		_, _ = fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%q}`, desc)
	})
	b := getTestBackend(t, nil)
	bindRefresh(t, b, "h", idp.TokenURL())
	resp, err := b.do(t, logical.ReadOperation, "token/h", nil)
	require.NoError(t, err)
	require.True(t, resp.IsError())
	texts := []string{resp.Error().Error(), fmt.Sprint(b.status(t, "h"))}
	v := b.write(t, "validate", map[string]interface{}{"requirements": []interface{}{
		map[string]interface{}{"node": "n", "handle": "h", "kind": "oauth2.refresh_token"},
	}})
	texts = append(texts, fmt.Sprint(v.Data))
	for _, txt := range texts {
		require.Contains(t, txt, "invalid_grant")
		require.NotContains(t, txt, testClientSecret)
		require.NotContains(t, txt, testRefreshToken[:10])
	}
}

// The per-handle map holds only bound handles.
func TestCustody_HandleMapHoldsOnlyBoundHandles(t *testing.T) {
	idp := newFakeIdP(t)
	b := getTestBackend(t, nil)
	for i := 0; i < 1000; i++ {
		requireStatus(t, b, fmt.Sprintf("token/unbound%d", i), http.StatusNotFound, "no binding")
	}
	require.Zero(t, b.handles.len())

	bindRefresh(t, b, "h", idp.TokenURL())
	b.read(t, "token/h", nil)
	require.Equal(t, 1, b.handles.len())
	_, err := b.do(t, logical.DeleteOperation, "bindings/h", nil)
	require.NoError(t, err)
	require.Zero(t, b.handles.len())

	// Another node deletes a binding: the invalidation drops the entry.
	bindRefresh(t, b, "h2", idp.TokenURL())
	b.read(t, "token/h2", nil)
	require.NoError(t, b.s.Delete(context.Background(), bindingStoragePrefix+"h2"))
	b.invalidate(context.Background(), bindingStoragePrefix+"h2")
	require.Zero(t, b.handles.len())
}

// temporarily_unavailable and server_error in a 400 are transient.
func TestCustody_TransientErrorCodesIn400(t *testing.T) {
	for _, code := range []string{"temporarily_unavailable", "server_error"} {
		t.Run(code, func(t *testing.T) {
			clock := newFakeClock()
			idp := newFakeIdP(t)
			b := getTestBackend(t, clock)
			bindRefresh(t, b, "h", idp.TokenURL())
			b.read(t, "token/h", nil)
			idp.Answer(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = fmt.Fprintf(w, `{"error":%q}`, code)
			})
			clock.advance(58 * time.Minute) // under the margin, still valid
			resp := b.read(t, "token/h", nil)
			require.Equal(t, "at-1-SECRET", resp.Data["access_token"])
			require.NotEmpty(t, resp.Warnings)
			require.Equal(t, healthDegraded, b.status(t, "h")["health"])
		})
	}
}

// A binding write waiting for a slow refresh holds no lock that a queued
// secret delete and writes of other bindings wait on.
func TestCustody_NoMountWideLockAcrossRefresh(t *testing.T) {
	// The provider answers; the answer is held until released.
	slow := newFakeIdP(t, oauthtest.TokenOptions{AccessToken: "a"})
	held := slow.HoldNext()
	unblock := slow.Release
	defer unblock()
	b := getTestBackend(t, nil)
	b.write(t, "secrets/unused", map[string]interface{}{"value": "v"})
	bindRefresh(t, b, "slow", slow.TokenURL())
	go func() { _, _ = b.do(t, logical.ReadOperation, "token/slow", nil) }()
	waitFor(t, "the refresh to reach the provider", closed(held))

	done := make(chan string, 3)
	go func() { b.write(t, "bindings/slow", map[string]interface{}{"description": "x"}); done <- "write slow" }()
	time.Sleep(50 * time.Millisecond) // let the write queue up on the handle
	go func() { _, _ = b.do(t, logical.DeleteOperation, "secrets/unused", nil); done <- "secret delete" }()
	time.Sleep(50 * time.Millisecond)
	go func() {
		b.write(t, "bindings/other", map[string]interface{}{"kind": "api_token", "token": testAPIToken})
		done <- "write other"
	}()
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case s := <-done:
			got[s] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("with the refresh held, only %v finished", got)
		}
	}
	require.True(t, got["secret delete"] && got["write other"], "finished while the refresh was held: %v", got)
	unblock()
	require.Equal(t, "write slow", <-done)
}

// A handle skipped by background refresh (not read within the window) is
// scheduled again by the next read, even one served from the cache.
func TestCustody_SkippedHandleRescheduledByCachedRead(t *testing.T) {
	clock := newFakeClock()
	idp := newFakeIdP(t, oauthtest.TokenOptions{ExpiresIn: 3 * 3600})
	b := getTestBackend(t, clock)
	b.write(t, "config", map[string]interface{}{"background_window": 600})
	bindRefresh(t, b, "h", idp.TokenURL())
	b.read(t, "token/h", nil)
	require.Equal(t, 1, b.scheduler.len())
	clock.advance(2*time.Hour + 54*time.Minute) // due (margin + lookahead before expiry), not read since
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.Zero(t, b.scheduler.len(), "skipped: not read within the window")
	require.Equal(t, int64(1), idp.Count())
	b.read(t, "token/h", nil) // served from the cache
	require.Equal(t, int64(1), idp.Count())
	require.Equal(t, 1, b.scheduler.len(), "a handle that is read stays scheduled")
	require.NoError(t, b.backgroundTick(context.Background(), b.s))
	require.Equal(t, int64(2), idp.Count(), "refreshed in the background, not on a reader's time")
}

// Two bindings that reference one refresh_token secret are warned about on
// the write and in validate.
func TestCustody_SharedRefreshTokenSecretWarned(t *testing.T) {
	idp := newFakeIdP(t)
	b := getTestBackend(t, nil)
	b.write(t, "secrets/rt", map[string]interface{}{"value": testRefreshToken})
	bind := func(h string) *logical.Response {
		return b.write(t, "bindings/"+h, map[string]interface{}{
			"kind": "oauth2.refresh_token", "client_id": "c", "client_secret": testClientSecret,
			"refresh_token_secret": "rt", "token_url": idp.TokenURL(),
		})
	}
	resp := bind("a")
	require.True(t, resp == nil || len(resp.Warnings) == 0)
	resp = bind("b")
	require.NotNil(t, resp)
	require.Contains(t, strings.Join(resp.Warnings, " "), `"a"`)
	v := b.write(t, "validate", map[string]interface{}{"requirements": []interface{}{
		map[string]interface{}{"node": "n", "handle": "b", "kind": "oauth2.refresh_token"},
	}})
	require.Equal(t, true, v.Data["valid"])
	problems := v.Data["problems"].([]map[string]interface{})
	require.Len(t, problems, 1)
	require.Equal(t, problemSharedRefreshToken, problems[0]["problem"])
	require.Contains(t, problems[0]["detail"], `"a"`)
}

// An invalidation that arrives while a refresh is in flight is not undone
// by the refresh publishing the binding it loaded before.
func TestCustody_InvalidateDuringRefreshNotUndone(t *testing.T) {
	// The provider answers the first request; the answer is held until released.
	slow := newFakeIdP(t, oauthtest.TokenOptions{AccessToken: "a"})
	held := slow.HoldNext()
	b := getTestBackend(t, nil)
	bindRefresh(t, b, "h", slow.TokenURL())
	done := make(chan struct{})
	go func() { defer close(done); _, _ = b.do(t, logical.ReadOperation, "token/h", nil) }()
	waitFor(t, "the refresh to reach the provider", closed(held))

	// Another node rewrites the binding (an extra header) and Vault
	// invalidates the key here.
	e, err := getBinding(context.Background(), b.s, "h")
	require.NoError(t, err)
	e.ExtraHeaders = map[string]string{"x-new": "1"}
	require.NoError(t, putBinding(context.Background(), b.s, "h", e))
	b.invalidate(context.Background(), bindingStoragePrefix+"h")
	slow.Release()
	<-done

	resp := b.read(t, "token/h", nil)
	require.Equal(t, "1", resp.Data["headers"].(map[string]string)["x-new"])
}

// Clean (unmount, reload) writes a token state whose write failed.
func TestCustody_CleanWritesPendingState(t *testing.T) {
	idp := newFakeIdP(t, oauthtest.TokenOptions{Rotate: true})
	b := getTestBackend(t, nil)
	fs := &failingStorage{Storage: b.s}
	b.s = fs
	b.storageView = fs
	bindRefresh(t, b, "h", idp.TokenURL())
	fs.failPuts.Store(true)
	_, err := b.do(t, logical.ReadOperation, "token/h", nil)
	require.Error(t, err)
	fs.failPuts.Store(false)
	b.clean(context.Background())
	st, err := getTokenState(context.Background(), fs, "h")
	require.NoError(t, err)
	require.NotNil(t, st)
	require.Equal(t, "rotated-1-SECRET", st.RefreshToken)
}
