package flowcred

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

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

func TestBackend_Factory(t *testing.T) {
	b, err := Factory(context.Background(), &logical.BackendConfig{
		StorageView: &logical.InmemStorage{},
		System:      logical.TestSystemView(),
		Logger:      hclog.NewNullLogger(),
	})
	require.NoError(t, err)
	require.Equal(t, logical.TypeLogical, b.Type())
}
