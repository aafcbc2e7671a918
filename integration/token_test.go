package integration

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

// readToken reads token/<handle> and checks what every api_token read has:
// the echo fields, no expiry, a non-renewable lease.
func readToken(t *testing.T, handle string) *api.Secret {
	t.Helper()
	s := read(t, "token/"+handle)
	require.Equal(t, handle, s.Data["handle"])
	require.Equal(t, "api_token", s.Data["kind"])
	require.NotContains(t, s.Data, "expires_at", "a static token has no expiry")
	require.NotEmpty(t, s.LeaseID, "token reads are leased")
	require.False(t, s.Renewable, "token leases are not renewable")
	return s
}

// api_token material: access_token, token_type and ready-to-inject headers,
// under a non-renewable lease as long as the binding's ttl.
func TestAPITokenMaterial(t *testing.T) {
	env(t)

	t.Run("defaults", func(t *testing.T) {
		tok := plant("at_default")
		write(t, "bindings/at_default", map[string]interface{}{"kind": "api_token", "token": tok})
		s := readToken(t, "at_default")
		require.Equal(t, tok, s.Data["access_token"])
		require.Equal(t, "Bearer", s.Data["token_type"])
		require.Equal(t, map[string]string{"Authorization": "Bearer " + tok}, strMap(t, s.Data["headers"]))
		require.Equal(t, 3600, s.LeaseDuration, "default api_token lease is 1h")
		del(t, "bindings/at_default")
	})

	t.Run("custom header and scheme with extra headers", func(t *testing.T) {
		tok := plant("at_custom")
		write(t, "bindings/at_custom", map[string]interface{}{
			"kind":          "api_token",
			"token":         tok,
			"header":        "X-API-Key",
			"scheme":        "Token",
			"ttl":           "2m",
			"extra_headers": map[string]interface{}{"X-Team": "ops", "x-goog-user-project": "proj-1"},
		})
		s := readToken(t, "at_custom")
		require.Equal(t, tok, s.Data["access_token"])
		require.Equal(t, "Token", s.Data["token_type"])
		require.Equal(t, map[string]string{
			"X-API-Key":           "Token " + tok,
			"X-Team":              "ops",
			"x-goog-user-project": "proj-1",
		}, strMap(t, s.Data["headers"]))
		require.Equal(t, 120, s.LeaseDuration, "the lease is the binding's ttl")
		del(t, "bindings/at_custom")
	})

	t.Run("empty scheme sends the bare token", func(t *testing.T) {
		tok := plant("at_bare")
		write(t, "bindings/at_bare", map[string]interface{}{
			"kind": "api_token", "token": tok, "header": "X-Auth-Token", "scheme": "",
		})
		s := readToken(t, "at_bare")
		require.Equal(t, tok, s.Data["access_token"])
		require.Equal(t, map[string]string{"X-Auth-Token": tok}, strMap(t, s.Data["headers"]))
		del(t, "bindings/at_bare")
	})

	t.Run("referenced secret: an update changes the next read", func(t *testing.T) {
		v1, v2 := plant("at_ref_v1"), plant("at_ref_v2")
		write(t, "secrets/at_ref_s", map[string]interface{}{"value": v1})
		write(t, "bindings/at_ref", map[string]interface{}{"kind": "api_token", "token_secret": "at_ref_s"})
		require.Equal(t, v1, readToken(t, "at_ref").Data["access_token"])
		write(t, "secrets/at_ref_s", map[string]interface{}{"value": v2})
		s := readToken(t, "at_ref")
		require.Equal(t, v2, s.Data["access_token"])
		require.Equal(t, map[string]string{"Authorization": "Bearer " + v2}, strMap(t, s.Data["headers"]))
		del(t, "bindings/at_ref")
		del(t, "secrets/at_ref_s")
	})
}

// A token lease cannot be renewed, looks up as non-renewable, and
// `vault lease revoke` succeeds without touching the binding.
func TestTokenLeaseRevoke(t *testing.T) {
	s := env(t)
	tok := plant("lease_tok")
	write(t, "bindings/lease_api", map[string]interface{}{"kind": "api_token", "token": tok, "ttl": 600})
	sec := readToken(t, "lease_api")
	require.Equal(t, 600, sec.LeaseDuration)

	look, err := s.Client.Sys().Lookup(sec.LeaseID)
	require.NoError(t, err)
	require.Equal(t, false, look.Data["renewable"])
	ttl, err := look.Data["ttl"].(json.Number).Int64()
	require.NoError(t, err)
	require.Greater(t, ttl, int64(0))
	require.LessOrEqual(t, ttl, int64(600))

	_, err = s.Client.Sys().Renew(sec.LeaseID, 0)
	require.Error(t, err, "renewing a token lease must fail")

	out, err := s.CLI("lease", "revoke", sec.LeaseID)
	require.NoError(t, err)
	t.Logf("vault lease revoke: %s", out)
	// The CLI queues the revocation; wait until the lease is gone.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = s.Client.Sys().Lookup(sec.LeaseID)
		if err != nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "lease %s still exists after revoke", sec.LeaseID)
		time.Sleep(50 * time.Millisecond)
	}
	requireStatus(t, err, 400, "invalid lease")

	// Revoking the lease revoked nothing else: the binding still serves.
	require.Equal(t, tok, readToken(t, "lease_api").Data["access_token"])
	del(t, "bindings/lease_api")
}
