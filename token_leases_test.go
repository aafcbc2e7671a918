package flowcred

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// token_leases=false (design.md, "Leases for token reads"): no lease, and
// the data says when to read again (ttl) and the token's lifetime
// (rotation_period); the default keeps the lease.
func TestTokenLeases_Unleased(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.TokenURL())
	b.write(t, "bindings/static", map[string]interface{}{"kind": "api_token", "token": testAPIToken, "ttl": "15m"})

	leased := b.read(t, "token/crm", nil)
	require.NotNil(t, leased.Secret)
	require.NotContains(t, leased.Data, "ttl")
	require.Equal(t, true, b.read(t, "config", nil).Data["token_leases"])

	b.write(t, "config", map[string]interface{}{"token_leases": false})
	require.Equal(t, false, b.read(t, "config", nil).Data["token_leases"])
	clock.advance(10 * time.Minute)
	resp := b.read(t, "token/crm", nil)
	require.Nil(t, resp.Secret)
	require.Equal(t, leased.Data["access_token"], resp.Data["access_token"])
	require.EqualValues(t, 3600-600-300, resp.Data["ttl"]) // life left minus the 5m margin
	require.EqualValues(t, 3600, resp.Data["rotation_period"])

	st := b.read(t, "token/static", nil)
	require.Nil(t, st.Secret)
	require.EqualValues(t, 900, st.Data["ttl"])
	require.EqualValues(t, 900, st.Data["rotation_period"])

	resp, err := b.do(t, "update", "config", map[string]interface{}{"token_leases": "maybe"})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), "token_leases")
}
