package flowcred

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// The framework asks Vault over gRPC for ReplicationState on every request
// to a path declared with Operations (and for LocalMount too on a path
// marked ForwardPerformanceSecondary) before it calls the handler. For a
// cached token read those calls are most of the plugin's own cost, so the
// backend's system view keeps both:
//   - LocalMount is a property of the mount, fixed for the backend's life;
//   - ReplicationState is asked again at most every replStateTTL. A stale
//     answer only delays a forward: a write on a node that cannot write
//     fails in storage, and the refresh path (writableForRefresh) asks
//     afresh before it calls a provider.

// replStateTTL is how long a replication state answer is reused.
const replStateTTL = 5 * time.Second

// cachingSystemView is the backend's system view with those two answers
// cached. Every other call goes to Vault.
type cachingSystemView struct {
	logical.SystemView
	now func() time.Time

	localOnce sync.Once
	local     bool

	mu      sync.Mutex
	state   atomic.Uint32 // consts.ReplicationState
	fetched atomic.Int64  // unix nanoseconds of the last answer, 0: never
}

func newCachingSystemView(sv logical.SystemView, now func() time.Time) *cachingSystemView {
	return &cachingSystemView{SystemView: sv, now: now}
}

func (c *cachingSystemView) LocalMount() bool {
	c.localOnce.Do(func() { c.local = c.SystemView.LocalMount() })
	return c.local
}

func (c *cachingSystemView) ReplicationState() consts.ReplicationState {
	if f := c.fetched.Load(); f != 0 && c.now().Sub(time.Unix(0, f)) < replStateTTL {
		return consts.ReplicationState(c.state.Load())
	}
	return c.fresh()
}

// fresh asks Vault and remembers the answer.
func (c *cachingSystemView) fresh() consts.ReplicationState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.SystemView.ReplicationState()
	c.state.Store(uint32(s))
	c.fetched.Store(c.now().UnixNano())
	return s
}

// Setup is framework.Backend's, with the system view wrapped.
func (b *backend) Setup(ctx context.Context, conf *logical.BackendConfig) error {
	if conf.System != nil {
		cp := *conf
		b.sysView = newCachingSystemView(conf.System, b.now)
		cp.System = b.sysView
		conf = &cp
	}
	return b.Backend.Setup(ctx, conf)
}

// writableForRefresh reports whether this node may store what a refresh
// returns (a rotated refresh token), asking Vault afresh: a refresh is
// never sent to a provider from a node whose storage cannot keep its
// answer. The caller returns logical.ErrReadOnly, and Vault forwards.
func (b *backend) writableForRefresh() bool {
	if b.sysView == nil {
		return true
	}
	s := b.sysView.fresh()
	if s.HasState(consts.ReplicationPerformanceStandby) {
		return false
	}
	return b.sysView.LocalMount() || !s.HasState(consts.ReplicationPerformanceSecondary)
}
