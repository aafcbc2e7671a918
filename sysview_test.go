package flowcred

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// countingSystemView counts the calls the framework makes per request.
type countingSystemView struct {
	logical.StaticSystemView
	state                 atomic.Uint32
	replCalls, localCalls atomic.Int64
}

func (c *countingSystemView) ReplicationState() consts.ReplicationState {
	c.replCalls.Add(1)
	return consts.ReplicationState(c.state.Load())
}

func (c *countingSystemView) LocalMount() bool {
	c.localCalls.Add(1)
	return false
}

func countingBackend(t *testing.T, clock *fakeClock) (*testBackend, *countingSystemView) {
	sv := &countingSystemView{StaticSystemView: logical.StaticSystemView{DefaultLeaseTTLVal: 24 * time.Hour, MaxLeaseTTLVal: 48 * time.Hour}}
	d := defaultDeps()
	d.now = clock.now
	b := newBackend(d)
	conf := &logical.BackendConfig{StorageView: &logical.InmemStorage{}, System: sv, Logger: hclog.NewNullLogger()}
	require.NoError(t, b.Setup(context.Background(), conf))
	t.Cleanup(func() { b.clean(context.Background()) })
	return &testBackend{backend: b, s: conf.StorageView}, sv
}

// A cached token read asks Vault nothing: the framework's replication
// state and local-mount questions are answered from the backend's cache
// (issue 14, "no extra round trip").
func TestSysView_CachedReadsMakeNoCallsToVault(t *testing.T) {
	clock := newFakeClock()
	b, sv := countingBackend(t, clock)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.TokenURL())
	b.read(t, "token/crm", nil)

	repl, local := sv.replCalls.Load(), sv.localCalls.Load()
	for i := 0; i < 100; i++ {
		b.read(t, "token/crm", nil)
	}
	require.Equal(t, repl, sv.replCalls.Load(), "ReplicationState calls during 100 cached reads")
	require.Equal(t, local, sv.localCalls.Load(), "LocalMount calls during 100 cached reads")

	// The cache is asked again after its TTL.
	clock.advance(replStateTTL + time.Second)
	b.read(t, "token/crm", nil)
	require.Equal(t, repl+1, sv.replCalls.Load())
}

// A node that has become a performance standby since the cached answer
// never sends a refresh to the provider (whose rotated token it could not
// store): the refresh path asks afresh and answers ErrReadOnly, which
// makes Vault forward the request.
func TestSysView_RefreshOnlyWhereWritable(t *testing.T) {
	clock := newFakeClock()
	b, sv := countingBackend(t, clock)
	idp := newFakeIdP(t)
	b.write(t, "config", map[string]interface{}{"min_refresh_interval": 0})
	bindRefresh(t, b, "crm", idp.TokenURL())
	b.read(t, "token/crm", nil)
	before := idp.Count()

	sv.state.Store(uint32(consts.ReplicationPerformanceStandby)) // the cache still says otherwise
	_, err := b.do(t, logical.ReadOperation, "token/crm", map[string]interface{}{"min_ttl": 7200})
	require.ErrorIs(t, err, logical.ErrReadOnly)
	require.Equal(t, before, idp.Count(), "no request reached the provider")
}
