package flowcred

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// revoker is an RFC 7009 revocation endpoint.
type revoker struct {
	*httptest.Server
	mu      sync.Mutex
	revoked []string
	status  int
}

func newRevoker(t *testing.T) *revoker {
	r := &revoker{status: http.StatusOK}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_ = req.ParseForm()
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.status != http.StatusOK {
			w.WriteHeader(r.status)
			return
		}
		if req.PostForm.Get("token_type_hint") == "refresh_token" {
			r.revoked = append(r.revoked, req.PostForm.Get("token"))
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *revoker) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.revoked...)
}

func TestRevokeOnDelete(t *testing.T) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t)
	rev := newRevoker(t)
	idp.rotate = true
	bindRefresh(t, b, "crm", idp.URL)
	b.write(t, "bindings/crm", map[string]interface{}{"revoke_on_delete": true, "revocation_url": rev.URL})
	b.read(t, "token/crm", nil) // rotates: the current refresh token is the rotated one

	// The provider fails: 502, and the binding is kept.
	rev.mu.Lock()
	rev.status = http.StatusServiceUnavailable
	rev.mu.Unlock()
	_, err := b.do(t, logical.DeleteOperation, "bindings/crm", nil)
	var coded logical.HTTPCodedError
	require.ErrorAs(t, err, &coded)
	require.Equal(t, http.StatusBadGateway, coded.Code())
	require.NotContains(t, err.Error(), "rotated-")
	b.read(t, "bindings/crm", nil)

	rev.mu.Lock()
	rev.status = http.StatusOK
	rev.mu.Unlock()
	_, err = b.do(t, logical.DeleteOperation, "bindings/crm", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"rotated-1-SECRET"}, rev.got())
	resp, err := b.do(t, logical.ReadOperation, "bindings/crm", nil)
	require.NoError(t, err)
	require.Nil(t, resp)

	// force deletes even when the revocation fails.
	bindRefresh(t, b, "crm2", idp.URL)
	b.write(t, "bindings/crm2", map[string]interface{}{"revoke_on_delete": true, "revocation_url": rev.URL})
	rev.mu.Lock()
	rev.status = http.StatusInternalServerError
	rev.mu.Unlock()
	_, err = b.do(t, logical.DeleteOperation, "bindings/crm2", map[string]interface{}{"force": true})
	require.NoError(t, err)
}

func TestRevokeOnDelete_SharedRefreshTokenIsNotRevoked(t *testing.T) {
	b := getTestBackend(t, nil)
	rev := newRevoker(t)
	b.write(t, "secrets/rt", map[string]interface{}{"value": testRefreshToken})
	for _, h := range []string{"a", "b"} {
		b.write(t, "bindings/"+h, map[string]interface{}{
			"kind": "oauth2.refresh_token", "client_id": "c", "refresh_token_secret": "rt",
			"token_url": "https://idp.example/token", "revoke_on_delete": true, "revocation_url": rev.URL,
		})
	}
	_, err := b.do(t, logical.DeleteOperation, "bindings/a", nil)
	require.NoError(t, err)
	require.Empty(t, rev.got())
	_, err = b.do(t, logical.DeleteOperation, "bindings/b", nil)
	require.NoError(t, err)
	require.Equal(t, []string{testRefreshToken}, rev.got(), "the last user revokes it")

	// Google's endpoint is the default for google.oauth2; writes refuse force and http URLs.
	b.write(t, "bindings/g", map[string]interface{}{"kind": "google.oauth2", "client_id": "c", "client_secret": "s", "revoke_on_delete": true})
	e, err := getBinding(t.Context(), b.s, "g")
	require.NoError(t, err)
	require.Equal(t, googleRevokeURL, e.revocationURL())
	requireWriteStatus(t, b, "bindings/g", map[string]interface{}{"revocation_url": "http://example.com/revoke"}, 400, "revocation_url")
	requireWriteStatus(t, b, "bindings/g", map[string]interface{}{"force": true}, 400, "force")
}
