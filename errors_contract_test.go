package flowcred

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// design.md, "Errors": a needs_reauth binding keeps serving a cached token
// that is still valid (with a warning), even one under the refresh margin;
// once none is valid, the 400 starts with the health word.
func TestErrors_NeedsReauthServesValidTokenThenLeadingWord(t *testing.T) {
	clock := newFakeClock()
	b := getTestBackend(t, clock)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.TokenURL())
	first := b.read(t, "token/crm", nil)

	idp.SetRefreshToken("revoked")
	clock.advance(time.Hour - time.Minute) // under the 5m margin, still valid
	served := b.read(t, "token/crm", nil)
	require.Equal(t, first.Data["access_token"], served.Data["access_token"])
	require.Len(t, served.Warnings, 1)
	require.Contains(t, served.Warnings[0], "needs re-authorization")
	st := b.read(t, "bindings/crm", nil).Data["status"].(map[string]interface{})
	require.Equal(t, healthNeedsReauth, st["health"])

	// Not to a read asking more life than it has.
	resp, err := b.do(t, logical.ReadOperation, "token/crm", map[string]interface{}{"min_ttl": 3600})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.True(t, strings.HasPrefix(resp.Error().Error(), "needs_reauth: "), resp.Error().Error())

	// A forced refresh of the refused grant fails, whatever is cached.
	resp, err = b.do(t, logical.UpdateOperation, "bindings/crm/refresh", nil)
	require.NoError(t, err)
	require.True(t, resp.IsError())

	clock.advance(2 * time.Minute) // expired
	resp, err = b.do(t, logical.ReadOperation, "token/crm", nil)
	require.NoError(t, err)
	require.True(t, resp.IsError())
	msg := resp.Error().Error()
	require.True(t, strings.HasPrefix(msg, "needs_reauth: "), msg)
	require.Contains(t, msg, `"crm"`)
	require.NotContains(t, msg, testRefreshToken)
}

// An unbound handle is a 404, on token reads and on refresh.
func TestErrors_UnboundHandleIs404(t *testing.T) {
	b := getTestBackend(t, nil)
	requireStatus(t, b, "token/nobody", http.StatusNotFound, `no binding for handle "nobody"`)
	_, err := b.do(t, logical.UpdateOperation, "bindings/nobody/refresh", nil)
	var coded logical.HTTPCodedError
	require.ErrorAs(t, err, &coded)
	require.Equal(t, http.StatusNotFound, coded.Code())
}
