package flowcred

// Helpers shared by the package's tests: the backend under test (in-memory
// storage, a settable clock), the fake token endpoints bindings point at
// (oauthtest.TokenEndpoint: in process, no Node), and checks of Vault's
// answers. The test keys and key files are in keys_test.go.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// ---------------------------------------------------------------- backend

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testBackend bundles a backend with its storage.
type testBackend struct {
	*backend
	s logical.Storage
}

// getTestBackend returns a backend on in-memory storage. A nil clock means
// the real one.
func getTestBackend(tb testing.TB, clock *fakeClock) *testBackend {
	tb.Helper()
	return getTestBackendWithLogger(tb, clock, hclog.NewNullLogger())
}

// getTestBackendWithLogger is getTestBackend with the plugin's logger given,
// for tests that check what the plugin logs.
func getTestBackendWithLogger(tb testing.TB, clock *fakeClock, logger hclog.Logger) *testBackend {
	tb.Helper()
	d := defaultDeps()
	if clock != nil {
		d.now = clock.now
	}
	b := newBackend(d)
	conf := &logical.BackendConfig{
		StorageView: &logical.InmemStorage{},
		System: &logical.StaticSystemView{
			DefaultLeaseTTLVal: 24 * time.Hour,
			MaxLeaseTTLVal:     48 * time.Hour,
		},
		Logger: logger,
	}
	require.NoError(tb, b.Setup(context.Background(), conf))
	tb.Cleanup(func() { b.clean(context.Background()) })
	return &testBackend{backend: b, s: conf.StorageView}
}

// newJWTTestBackend is getTestBackend with a trace-level logger writing to
// logs, so tests can check what the plugin logs.
func newJWTTestBackend(t *testing.T, clock *fakeClock, logs *syncBuffer) *testBackend {
	t.Helper()
	return getTestBackendWithLogger(t, clock, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace}))
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// do runs one request against the backend.
func (tb *testBackend) do(t testing.TB, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	t.Helper()
	return tb.HandleRequest(context.Background(), &logical.Request{
		Operation: op,
		Path:      path,
		Data:      data,
		Storage:   tb.s,
	})
}

// doCtx runs one request with a caller's context.
func (tb *testBackend) doCtx(ctx context.Context, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	return tb.HandleRequest(ctx, &logical.Request{Operation: op, Path: path, Data: data, Storage: tb.s})
}

// write performs an update (or create, via the existence check) and
// requires success.
func (tb *testBackend) write(t testing.TB, path string, data map[string]interface{}) *logical.Response {
	t.Helper()
	resp, err := tb.do(t, logical.UpdateOperation, path, data)
	require.NoError(t, err)
	if resp != nil {
		require.False(t, resp.IsError(), "write %s: %v", path, resp.Error())
	}
	return resp
}

// read performs a read and requires success.
func (tb *testBackend) read(t testing.TB, path string, data map[string]interface{}) *logical.Response {
	t.Helper()
	resp, err := tb.do(t, logical.ReadOperation, path, data)
	require.NoError(t, err)
	require.NotNil(t, resp, "read %s: no response", path)
	require.False(t, resp.IsError(), "read %s: %v", path, resp.Error())
	return resp
}

// status returns the binding's status object.
func (tb *testBackend) status(t *testing.T, handle string) map[string]interface{} {
	t.Helper()
	return tb.read(t, "bindings/"+handle, nil).Data["status"].(map[string]interface{})
}

// health is b.status(t, handle).
func health(t *testing.T, b *testBackend, handle string) map[string]interface{} {
	t.Helper()
	return b.status(t, handle)
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

// ---------------------------------------------------------------- token endpoints

// newFakeIdP starts the token endpoint most tests bind: an
// oauthtest.TokenEndpoint that, unless o says otherwise, accepts only
// testRefreshToken, issues "bearer" access tokens at-N-SECRET for an hour,
// and numbers rotated refresh tokens (TokenOptions.Rotate) from the same
// sequence as access tokens: rotated-1-SECRET comes with at-2-SECRET.
func newFakeIdP(t testing.TB, o ...oauthtest.TokenOptions) *oauthtest.TokenEndpoint {
	t.Helper()
	var opts oauthtest.TokenOptions
	if len(o) > 0 {
		opts = o[0]
	}
	if opts.RefreshToken == "" {
		opts.RefreshToken = testRefreshToken
	}
	if opts.TokenType == "" {
		opts.TokenType = "bearer"
	}
	opts.OneSequence = true
	return oauthtest.StartTokenEndpoint(t, opts)
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

// newJWTEndpoint starts a JWT-bearer token endpoint that verifies each
// assertion's signature with the standard library, independently of the
// code under test (nothing is trusted until ep.Trust), and records it
// (ep.LastAssertion). It issues ya29.test-N access tokens for 3599 s or,
// for an assertion with a target_audience, an ID token valid for 30
// minutes on clock.
func newJWTEndpoint(t *testing.T, clock *fakeClock) *oauthtest.TokenEndpoint {
	t.Helper()
	ep := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{
		AccessToken: "ya29.test-%d", ExpiresIn: 3599, Grants: []string{oauthtest.GrantJWTBearer},
		Now: clock.now, IDTokenLifetime: 30 * time.Minute,
	})
	ep.Trust(nil)
	return ep
}

// jwtTestSetup is how most JWT tests start: a fake clock, a backend on it
// that logs to logs (newJWTTestBackend), the test keys, and a JWT-bearer
// token endpoint (newJWTEndpoint) that trusts no key yet.
func jwtTestSetup(t *testing.T) (clock *fakeClock, logs *syncBuffer, b *testBackend, keys *jwtKeySet, ep *oauthtest.TokenEndpoint) {
	t.Helper()
	clock = newFakeClock()
	logs = &syncBuffer{}
	return clock, logs, newJWTTestBackend(t, clock, logs), jwtKeys(t), newJWTEndpoint(t, clock)
}

// writeJSON answers status with a JSON body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// fakeJWT builds an unsigned-looking JWT (the plugin never verifies the
// tokens it hands out, it only reads exp).
func fakeJWT(claims map[string]interface{}) string {
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "google-1"})
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + enc([]byte("signature"))
}

func b64(s string) string {
	return base64URL([]byte(s))
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func claimInt(t *testing.T, claims map[string]interface{}, name string) int64 {
	t.Helper()
	v, ok := claims[name].(float64)
	require.True(t, ok, "claim %s missing or not a number: %v", name, claims[name])
	return int64(v)
}

// ---------------------------------------------------------------- answers

// requireStatus reads path and requires Vault's answer to be status with a
// message containing want.
func requireStatus(t *testing.T, b *testBackend, path string, status int, want string) {
	t.Helper()
	requireAnswer(t, b, logical.ReadOperation, path, nil, status, want)
}

// requireWriteStatus writes and requires the answer's status and message.
func requireWriteStatus(t *testing.T, b *testBackend, path string, data map[string]interface{}, status int, want string) {
	t.Helper()
	requireAnswer(t, b, logical.UpdateOperation, path, data, status, want)
}

// requireAnswer runs one request and requires Vault's answer to be status
// (a coded error's code, 500 for another error, 400 for an error response)
// with a message containing want.
func requireAnswer(t *testing.T, b *testBackend, op logical.Operation, path string, data map[string]interface{}, status int, want string) {
	t.Helper()
	resp, err := b.do(t, op, path, data)
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
	require.Equal(t, status, got, "%s %s: %s", op, path, msg)
	require.Contains(t, msg, want)
}

func respText(t *testing.T, resp *logical.Response, err error) string {
	t.Helper()
	var b strings.Builder
	if resp != nil {
		raw, jerr := json.Marshal(resp)
		require.NoError(t, jerr)
		b.Write(raw)
	}
	if err != nil {
		b.WriteString(err.Error())
	}
	return b.String()
}

// closed reports whether ch is closed: a waitFor condition.
func closed(ch <-chan struct{}) func() bool {
	return func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}

// waitFor polls cond (a deadlock guard, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
