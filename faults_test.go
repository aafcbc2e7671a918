package flowcred

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/leakcheck"
	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// Upstream faults at unit level: a FaultProxy (internal/oauthtest) in front
// of a token endpoint, for the x/oauth2 grants (oauth2.refresh_token) and
// the plugin's own JWT-bearer client (oauth2.jwt_bearer). Each fault is
// answered as design.md's failure table says, within the mount's
// http_timeout, without reading more than maxResponseBytes, without putting
// a secret in an answer, and without leaving goroutines behind.

// faultsTimeout is the mount's http_timeout in these tests (the minimum).
const faultsTimeout = time.Second

// faultsReadLimit bounds how long any read may take before the test calls
// it hung: far above http_timeout, so a slow machine does not fail it.
const faultsReadLimit = 30 * faultsTimeout

// newFaultsIdP is a token endpoint that accepts any refresh token and any
// JWT-bearer assertion and issues numbered access tokens for an hour;
// connState, when set, sees its connections change state.
func newFaultsIdP(t *testing.T, connState func(net.Conn, http.ConnState)) *oauthtest.TokenEndpoint {
	t.Helper()
	return oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{
		AccessToken: "faults-at-%d-SECRET",
		Grants:      []string{oauthtest.GrantRefreshToken, oauthtest.GrantJWTBearer},
		ConnState:   connState,
	})
}

// countingTransport records the largest number of body bytes the plugin
// read from one upstream response.
type countingTransport struct {
	next    http.RoundTripper
	maxRead atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, c: c}
	return resp, nil
}

func (c *countingTransport) CloseIdleConnections() {
	if ci, ok := c.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

type countingBody struct {
	io.ReadCloser
	c *countingTransport
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	for {
		cur := b.c.maxRead.Load()
		if b.n <= cur || b.c.maxRead.CompareAndSwap(cur, b.n) {
			break
		}
	}
	return n, err
}

// faultsBackend is getTestBackend with a chosen upstream transport.
func faultsBackend(t *testing.T, clock *fakeClock, tr http.RoundTripper) *testBackend {
	t.Helper()
	d := defaultDeps()
	d.now = clock.now
	d.transport = tr
	b := newBackend(d)
	conf := &logical.BackendConfig{
		StorageView: &logical.InmemStorage{},
		System:      &logical.StaticSystemView{DefaultLeaseTTLVal: 24 * time.Hour, MaxLeaseTTLVal: 48 * time.Hour},
		Logger:      hclog.NewNullLogger(),
	}
	require.NoError(t, b.Setup(context.Background(), conf))
	t.Cleanup(func() { b.clean(context.Background()) })
	tb := &testBackend{backend: b, s: conf.StorageView}
	// min_refresh_interval 0: these tests read with min_ttl to make each
	// read ask the provider.
	tb.write(t, "config", map[string]interface{}{"http_timeout": int(faultsTimeout / time.Second), "background_refresh": false,
		"min_refresh_interval": 0})
	return tb
}

// boundedRead reads token/<handle> and fails the test if the read does not
// return within faultsReadLimit: a fault must never hang a read.
func boundedRead(t *testing.T, b *testBackend, handle string, minTTL string) (*logical.Response, error) {
	t.Helper()
	var data map[string]interface{}
	if minTTL != "" {
		data = map[string]interface{}{"min_ttl": minTTL}
	}
	type result struct {
		resp *logical.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.ReadOperation, Path: "token/" + handle, Data: data, Storage: b.s,
		})
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-time.After(faultsReadLimit):
		t.Fatalf("token/%s did not return within %s (http_timeout %s)", handle, faultsReadLimit, faultsTimeout)
		return nil, nil
	}
}

func ecPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// waitGoroutines waits until at most want goroutines run, and fails with
// their stacks if they do not settle.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines still running, want at most %d (the baseline plus a tolerance):\n%s",
				runtime.NumGoroutine(), want, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFaults_UpstreamFailures(t *testing.T) {
	clock := newFakeClock()
	counter := &countingTransport{next: newUpstreamTransport()}
	b := faultsBackend(t, clock, counter)
	idp := newFaultsIdP(t, nil)
	keyPEM := ecPEM(t)

	secrets := leakcheck.New()
	secrets.Add("client_secret", testClientSecret)
	secrets.Add("refresh_token", testRefreshToken)
	secrets.Add("private_key", keyPEM)

	kinds := []struct {
		name string
		bind func(tokenURL string) map[string]interface{}
	}{
		{"refresh_token", func(u string) map[string]interface{} {
			return map[string]interface{}{"kind": "oauth2.refresh_token", "client_id": "faults-client",
				"client_secret": testClientSecret, "refresh_token": testRefreshToken, "token_url": u, "auth_style": "params"}
		}},
		{"jwt_bearer", func(u string) map[string]interface{} {
			return map[string]interface{}{"kind": "oauth2.jwt_bearer", "private_key": keyPEM,
				"issuer": "faults@example.test", "token_url": u, "scopes": "api"}
		}},
	}
	faults := []struct {
		name  string
		fault oauthtest.Fault
		// retryAfter: the provider asked for this pause before the next attempt.
		retryAfter time.Duration
	}{
		{"503", oauthtest.Unavailable(), 0},
		{"500 plain", oauthtest.StatusFault(500, "internal error"), 0},
		{"429 Retry-After", oauthtest.RateLimited(120 * time.Second), 120 * time.Second},
		{"hang past http_timeout", oauthtest.Hang(), 0},
		{"connection reset", oauthtest.Reset(), 0},
		{"HTML 200", oauthtest.HTML(200), 0},
		{"HTML 502", oauthtest.HTML(502), 0},
		{"truncated JSON", oauthtest.TruncatedJSON(), 0},
		{"truncated transfer", oauthtest.TruncatedTransfer(), 0},
		{"20 MiB body", oauthtest.HugeBody(20 << 20), 0},
		{"200 without access_token", oauthtest.MissingAccessToken(), 0},
	}

	// Everything that runs from here on must be gone at the end.
	baseline := runtime.NumGoroutine()

	var seen []leakcheck.Target
	for _, k := range kinds {
		for i, f := range faults {
			t.Run(k.name+"/"+f.name, func(t *testing.T) {
				p := oauthtest.NewFaultProxy(idp.TokenURL())
				defer p.Close()
				warm, cold := fmt.Sprintf("%s_%d_warm", k.name, i), fmt.Sprintf("%s_%d_cold", k.name, i)
				b.write(t, "bindings/"+warm, k.bind(p.TokenURL()))
				b.write(t, "bindings/"+cold, k.bind(p.TokenURL()))
				first := b.read(t, "token/"+warm, nil)
				cached := first.Data["access_token"].(string)
				secrets.Add("access token "+warm, cached)
				require.EqualValues(t, 1, p.Count())

				p.SetMode(f.fault)

				// A cached, unexpired token: served with a warning, with a
				// short lease, and the binding is degraded.
				clock.advance(time.Second)
				resp, err := boundedRead(t, b, warm, "2h")
				require.NoError(t, err)
				require.False(t, resp.IsError(), "read while %s: %v", f.name, resp.Error())
				require.Equal(t, cached, resp.Data["access_token"], "the cached token is served")
				require.NotEmpty(t, resp.Warnings)
				require.Contains(t, resp.Warnings[0], "degraded")
				require.LessOrEqual(t, resp.Secret.TTL, degradedLeaseCap)
				require.EqualValues(t, 2, p.Count(), "one upstream attempt")
				st := b.read(t, "bindings/"+warm, nil).Data["status"].(map[string]interface{})
				require.Equal(t, healthDegraded, st["health"])
				require.Equal(t, 1, st["consecutive_failures"])
				require.NotEmpty(t, st["last_error"])
				seen = append(seen, leakcheck.Text(warm+" warning", strings.Join(resp.Warnings, "\n")),
					leakcheck.Text(warm+" status", fmt.Sprint(st)))

				if f.retryAfter > 0 {
					// Not before Retry-After: no upstream attempt, still served.
					clock.advance(f.retryAfter / 2)
					resp, err = boundedRead(t, b, warm, "2h")
					require.NoError(t, err)
					require.Equal(t, cached, resp.Data["access_token"])
					require.EqualValues(t, 2, p.Count(), "an upstream attempt before Retry-After had passed")
					clock.advance(f.retryAfter/2 + time.Second)
				} else {
					clock.advance(5 * time.Second) // past the first backoff (1 s)
				}
				// The next attempt fails again and is counted.
				resp, err = boundedRead(t, b, warm, "2h")
				require.NoError(t, err)
				require.Equal(t, cached, resp.Data["access_token"])
				require.EqualValues(t, 3, p.Count())
				st = b.read(t, "bindings/"+warm, nil).Data["status"].(map[string]interface{})
				require.Equal(t, 2, st["consecutive_failures"])

				// No token at all: a 502-class coded error, and degraded.
				resp, err = boundedRead(t, b, cold, "")
				requireCoded502(t, resp, err)
				seen = append(seen, leakcheck.Text(cold+" error", err.Error()))
				st = b.read(t, "bindings/"+cold, nil).Data["status"].(map[string]interface{})
				require.Equal(t, healthDegraded, st["health"])
				require.Equal(t, 1, st["consecutive_failures"])

				// The cached token expired: a 502 as well.
				clock.advance(2 * time.Hour)
				resp, err = boundedRead(t, b, warm, "")
				requireCoded502(t, resp, err)
				seen = append(seen, leakcheck.Text(warm+" expired error", err.Error()))

				// The provider recovers: so does the binding.
				p.SetMode(oauthtest.PassThrough())
				clock.advance(10 * time.Minute) // past any backoff
				resp, err = boundedRead(t, b, warm, "")
				require.NoError(t, err)
				require.False(t, resp.IsError())
				require.NotEqual(t, cached, resp.Data["access_token"])
				secrets.Add("access token 2 "+warm, resp.Data["access_token"].(string))
				st = b.read(t, "bindings/"+warm, nil).Data["status"].(map[string]interface{})
				require.Equal(t, healthOK, st["health"])
				require.Equal(t, 0, st["consecutive_failures"])
			})
		}
	}
	secrets.RequireNone(t, seen...)

	require.LessOrEqual(t, counter.maxRead.Load(), int64(maxResponseBytes),
		"the plugin read more than %d bytes of one token response", maxResponseBytes)
	require.Greater(t, counter.maxRead.Load(), int64(maxResponseBytes/2), "the 20 MiB body was read up to the bound")

	// No goroutine outlives the faults once idle connections are closed.
	b.httpClient.CloseIdleConnections()
	waitGoroutines(t, baseline+2)
}

func requireCoded502(t *testing.T, resp *logical.Response, err error) {
	t.Helper()
	require.Error(t, err, "want a 502-class error, got %v", resp)
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded), "want a logical.CodedError, got %T: %v", err, err)
	require.Equal(t, http.StatusBadGateway, coded.Code(), err.Error())
}

// clean (unmount, plugin reload) and the goroutine check above rely on
// closing the upstream client's idle connections.
func TestFaults_CloseIdleConnectionsReachesTransport(t *testing.T) {
	var mu sync.Mutex
	states := map[net.Conn]http.ConnState{}
	idp := newFaultsIdP(t, func(c net.Conn, s http.ConnState) {
		mu.Lock()
		states[c] = s
		mu.Unlock()
	})
	b := getTestBackend(t, nil)
	b.write(t, "bindings/idle", map[string]interface{}{"kind": "oauth2.refresh_token", "client_id": "c",
		"refresh_token": testRefreshToken, "token_url": idp.TokenURL()})
	b.read(t, "token/idle", nil)
	open := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range states {
			if s != http.StateClosed && s != http.StateHijacked {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, open(), "one keep-alive connection to the provider")
	b.httpClient.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for open() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection to the provider is still open after CloseIdleConnections")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
