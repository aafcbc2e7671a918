package ha

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaultcluster"
)

// Reads sent to a standby are forwarded to the active node, which holds the
// only token cache: every node serves the same token, from one upstream
// request. A binding written through one node is readable through all.
func testStandbyReadsReachActive(t *testing.T, e *env) {
	active := e.active()
	standbys := e.c.Standbys()
	require.Len(t, standbys, 2)

	// Write through a standby (forwarded), read back through every node.
	e.bindRotating(standbys[0], "sales", e.idp.TokenURL)
	e.write(standbys[1], "bindings/sales", map[string]any{"extra_headers": map[string]any{"x-team": "sales"}})
	want := e.read(active, "bindings/sales").Data
	for _, n := range e.c.Nodes {
		got := e.read(n, "bindings/sales").Data
		require.Equal(t, want["kind"], got["kind"], n.Name)
		require.Equal(t, want["extra_headers"], got["extra_headers"], n.Name)
		require.Equal(t, want["token_url"], got["token_url"], n.Name)
		list, err := n.Client.Logical().List(e.path("bindings"))
		require.NoError(t, err)
		require.Contains(t, list.Data["keys"], "sales", n.Name)
	}

	// The first read (through a standby) refreshes once; every later read,
	// through any node, gets the same cached token.
	first := e.mustToken(standbys[0], "sales", 0)
	for _, n := range []*vaultcluster.Node{active, standbys[1], standbys[0], active} {
		got := e.mustToken(n, "sales", 0)
		sameToken(t, first, got, "token read through %s", n)
		require.Equal(t, "sales", got.Headers["x-team"])
		// The lease lives on the active node, wherever the read came in.
		l, err := active.Client.Sys().Lookup(got.LeaseID)
		require.NoError(t, err, "lease from a read through %s", n)
		require.Equal(t, got.LeaseID, l.Data["id"])
	}
	require.Equal(t, 1, e.refreshes(), "one upstream refresh for all reads")
	e.requireNoReuse()
}

// After the active node dies, the node that takes over serves the cached
// token from replicated storage without asking the provider, and the next
// refresh presents the newest rotated refresh token. Two failovers in a row.
func testFailoverKeepsCachedTokenAndRotation(t *testing.T, e *env) {
	e.bindRotating(e.standby(), "crm", e.idp.TokenURL)

	e.mustToken(e.active(), "crm", 0)
	// A second rotation, so the stored refresh token is two steps from the
	// configured one.
	e.write(e.standby(), "bindings/crm/refresh", nil)
	cached := e.mustToken(e.standby(), "crm", 0)
	require.Equal(t, 2, e.refreshes())

	for round := 1; round <= 2; round++ {
		killed, next := e.failover()
		before := e.refreshes()
		for _, n := range e.c.Running() {
			sameToken(t, cached, e.mustToken(n, "crm", 0), "round %d: read through %s after failover", round, n)
		}
		require.Equal(t, before, e.refreshes(), "round %d: the cached token is served without an upstream request", round)

		// A refresh on the new active node uses the latest refresh token:
		// the provider would detect reuse of any earlier one.
		fresh := e.mustToken(next, "crm", longMinTTL)
		differentToken(t, cached, fresh, "round %d: min_ttl refresh", round)
		require.Equal(t, before+1, e.refreshes(), "round %d", round)
		e.requireNoReuse()
		st := e.status(next, "crm")
		require.Equal(t, "ok", st["health"], "round %d", round)
		cached = fresh

		require.NoError(t, e.c.Restart(killed))
	}
	// And the chain is intact on whichever node is active now.
	e.mustToken(e.standby(), "crm", longMinTTL)
	e.requireNoReuse()
}

// A refresh is in flight when the active node dies, held by a proxy before
// it reaches the provider: nothing was rotated, nothing is lost, and the new
// active node refreshes with the stored refresh token.
func testFailoverRefreshInFlight(t *testing.T, e *env) {
	proxy := oauthtest.NewFaultProxy(e.idp.TokenURL)
	t.Cleanup(proxy.Close)
	e.bindRotating(e.standby(), "erp", proxy.TokenURL())
	old := e.mustToken(e.standby(), "erp", 0)
	require.Equal(t, 1, e.refreshes())
	require.EqualValues(t, 1, proxy.Count())

	// Hold the next token request at the proxy, before forwarding it (far
	// longer than the test needs; the proxy drops it when the caller goes).
	proxy.SetMode(oauthtest.Delay(10 * time.Minute))
	via := e.standby()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, err := e.readToken(ctx, via, "erp", longMinTTL)
		done <- err
	}()
	eventually(t, 30*time.Second, "the refresh to reach the proxy", func() bool { return proxy.Count() == 2 })
	require.Equal(t, 1, e.stats().TokenRequests[oauthtest.GrantRefreshToken], "the held request has not reached the provider")

	killed, next := e.failover()
	select {
	case err := <-done:
		require.Error(t, err, "the read whose active node died fails")
		t.Logf("read in flight through %s when %s died: %v", via, killed, err)
	case <-time.After(time.Minute):
		t.Fatal("the read in flight did not return after the active node died")
	}

	proxy.SetMode(oauthtest.PassThrough())
	// The dead node's cached token is still valid and is served as is.
	sameToken(t, old, e.mustToken(next, "erp", 0), "read after failover")
	require.Equal(t, 1, e.stats().TokenRequests[oauthtest.GrantRefreshToken], "no upstream request")
	// The next refresh uses the stored (not rotated) refresh token.
	fresh := e.mustToken(next, "erp", longMinTTL)
	differentToken(t, old, fresh, "refresh after failover")
	st := e.stats()
	require.Equal(t, 2, st.TokenRequests[oauthtest.GrantRefreshToken], "the held request was never forwarded")
	require.Equal(t, 2, st.TokenSuccess[oauthtest.GrantRefreshToken])
	e.requireNoReuse()
	require.Equal(t, "ok", e.status(next, "erp")["health"])

	// The rotation chain continues across another node.
	require.NoError(t, e.c.Restart(killed))
	e.mustToken(killed, "erp", longMinTTL)
	e.requireNoReuse()
}

// The inherent window: the provider rotated the refresh token and answered,
// but the node died before it stored the answer. The new refresh token is
// lost with the node; the stored one has been consumed, so the next refresh
// presents it again, the provider detects reuse and revokes the grant, and
// the binding needs re-authorization. This test pins that behaviour (and the
// recovery: bind a new refresh token) rather than hiding it.
func testFailoverAfterProviderRotatedLosesGrant(t *testing.T, e *env) {
	// The provider must see a held request through even if the caller dies.
	proxy := oauthtest.NewFaultProxy(e.idp.TokenURL)
	t.Cleanup(proxy.Close)
	proxy.SetDetached(true)
	e.bindRotating(e.standby(), "hr", proxy.TokenURL())
	e.mustToken(e.standby(), "hr", 0)
	require.Equal(t, 1, e.refreshes())

	proxy.SetMode(oauthtest.HoldAnswer())
	via := e.standby()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, err := e.readToken(ctx, via, "hr", longMinTTL)
		done <- err
	}()
	eventually(t, 30*time.Second, "the provider to answer a held refresh", func() bool { return proxy.Held() == 1 })
	require.Equal(t, 2, e.refreshes(), "the provider rotated the refresh token")

	_, next := e.failover()
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the read in flight did not return after the active node died")
	}
	proxy.SetMode(oauthtest.PassThrough())

	_, err := e.readToken(context.Background(), next, "hr", longMinTTL)
	requireStatus(t, err, http.StatusBadRequest)
	require.Contains(t, err.Error(), "needs re-authorization")
	st := e.stats()
	require.Equal(t, 1, st.RefreshTokenReuseDetected, "the consumed refresh token was presented again")
	status := e.status(next, "hr")
	require.Equal(t, "needs_reauth", status["health"])
	require.Equal(t, "invalid_grant", status["last_error_code"])

	// Recovery: the operator binds a new refresh token.
	rt, err := e.idp.MintRefreshToken(oauthtest.ClientRTRotate, "")
	require.NoError(t, err)
	e.write(e.standby(), "bindings/hr", map[string]any{"refresh_token": rt})
	e.mustToken(e.standby(), "hr", 0)
	require.Equal(t, "ok", e.status(next, "hr")["health"])
	require.Equal(t, 1, e.stats().RefreshTokenReuseDetected)
}

// A graceful step-down (`vault operator step-down`, for maintenance) while a
// refresh is in flight: Vault lets the request finish before the node gives
// up leadership, so the rotated refresh token is stored, and the node that
// takes over serves the token that refresh obtained.
func testStepDownDrainsRefresh(t *testing.T, e *env) {
	proxy := oauthtest.NewFaultProxy(e.idp.TokenURL)
	t.Cleanup(proxy.Close)
	e.bindRotating(e.standby(), "ops", proxy.TokenURL())
	old := e.mustToken(e.standby(), "ops", 0)

	proxy.SetMode(oauthtest.Delay(5 * time.Second))
	via := e.standby()
	type result struct {
		td  *tokenData
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		td, err := e.readToken(ctx, via, "ops", longMinTTL)
		done <- result{td, err}
	}()
	eventually(t, 30*time.Second, "the refresh to reach the proxy", func() bool { return proxy.Count() == 2 })
	active := e.active()
	require.NoError(t, active.Client.Sys().StepDown())
	require.Equal(t, 1, e.stats().TokenRequests[oauthtest.GrantRefreshToken], "the step-down was asked for while the refresh was held")

	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the read in flight did not return")
	}
	require.NoError(t, r.err, "the refresh in flight during a step-down completes")
	differentToken(t, old, r.td, "the drained refresh")
	next := e.active()
	require.NotEqual(t, active, next, "another node took over")
	proxy.SetMode(oauthtest.PassThrough())

	sameToken(t, r.td, e.mustToken(next, "ops", 0), "read on the new active node")
	require.Equal(t, 2, e.refreshes())
	e.mustToken(next, "ops", longMinTTL)
	require.Equal(t, 3, e.refreshes())
	e.requireNoReuse()
}
