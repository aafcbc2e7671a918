// Package ha tests flowcred on a three-node Vault cluster with integrated
// storage (internal/vaultcluster) against a real OAuth2 server
// (internal/oauthtest): reads through standbys, failover, refreshes cut off
// by a dying node, background refresh and storage coherence on the node that
// takes over.
//
// The oracle for "no refresh token was lost or reused" is the OAuth2
// server's reuse detection: the rt-rotate client gets a new refresh token on
// every refresh, and presenting a rotated one fails with invalid_grant,
// revokes the grant and counts in Stats.RefreshTokenReuseDetected.
//
// Gated by FLOWCRED_INTEGRATION=1 (scripts/test.sh); scripts/ha-failover.sh
// runs the failover tests in a loop.
package ha

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaultcluster"
	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// longMinTTL is more than any token's life (1 h): a read with it refreshes.
const longMinTTL = 2 * time.Hour

// env is a cluster and an OAuth2 server for one test.
type env struct {
	t   *testing.T
	c   *vaultcluster.Cluster
	idp *oauthtest.Server
}

// newEnv starts a cluster and an OAuth2 server of the test's own.
func newEnv(t *testing.T) *env {
	t.Helper()
	vaulttest.Require(t)
	idp := oauthtest.Start(t)
	c := vaultcluster.Start(t, vaultcluster.Options{})
	t.Logf("cluster up in %s", c.StartDuration.Round(time.Millisecond))
	return &env{t: t, c: c, idp: idp}
}

// onCluster gives a test a shared cluster, healed (every node running, a
// settled active node), and an OAuth2 server of its own.
func onCluster(t *testing.T, c *vaultcluster.Cluster) *env {
	t.Helper()
	start := time.Now()
	require.NoError(t, c.Heal())
	if d := time.Since(start); d > time.Second {
		t.Logf("cluster healed in %s", d.Round(time.Millisecond))
	}
	c.LogOnFailure(t)
	return &env{t: t, c: c, idp: oauthtest.Start(t)}
}

func (e *env) path(p string) string { return e.c.Mount + "/" + p }

// active returns the active node, waiting for one.
func (e *env) active() *vaultcluster.Node {
	e.t.Helper()
	n, err := e.c.WaitActive()
	require.NoError(e.t, err)
	return n
}

// standby returns a standby node.
func (e *env) standby() *vaultcluster.Node {
	e.t.Helper()
	e.active()
	s := e.c.Standbys()
	require.NotEmpty(e.t, s, "a standby node")
	return s[0]
}

// failover kills the active node, waits for another to take over and
// returns (killed, new active).
func (e *env) failover() (*vaultcluster.Node, *vaultcluster.Node) {
	e.t.Helper()
	old := e.active()
	start := time.Now()
	e.c.Kill(old)
	next, err := e.c.WaitActive()
	require.NoError(e.t, err)
	require.NotEqual(e.t, old, next)
	e.t.Logf("failover: killed %s, %s active after %s", old, next, time.Since(start).Round(time.Millisecond))
	return old, next
}

func (e *env) write(n *vaultcluster.Node, p string, data map[string]any) *api.Secret {
	e.t.Helper()
	s, err := n.Client.Logical().Write(e.path(p), data)
	require.NoError(e.t, err, "write %s through %s", p, n)
	return s
}

func (e *env) read(n *vaultcluster.Node, p string) *api.Secret {
	e.t.Helper()
	s, err := n.Client.Logical().Read(e.path(p))
	require.NoError(e.t, err, "read %s through %s", p, n)
	require.NotNil(e.t, s, "read %s through %s: not found", p, n)
	return s
}

// bindRotating binds handle to a fresh rt-rotate grant at tokenURL (the
// server's or a proxy's) and returns the refresh token it was given.
func (e *env) bindRotating(n *vaultcluster.Node, handle, tokenURL string) {
	e.t.Helper()
	rt, err := e.idp.MintRefreshToken(oauthtest.ClientRTRotate, "")
	require.NoError(e.t, err)
	e.write(n, "bindings/"+handle, map[string]any{
		"kind":          "oauth2.refresh_token",
		"client_id":     oauthtest.ClientRTRotate,
		"client_secret": oauthtest.SecretRTRotate,
		"refresh_token": rt,
		"token_url":     tokenURL,
		// rt-rotate must use client_secret_basic; say so rather than have
		// auto-detection try the form body after a refused grant.
		"auth_style": "header",
	})
}

// tokenData is the part of a token read the tests look at.
type tokenData struct {
	AccessToken string
	ExpiresAt   string
	Headers     map[string]any
	LeaseID     string
	Warnings    []string
}

// readToken reads token/<handle> through n, with min_ttl when > 0.
func (e *env) readToken(ctx context.Context, n *vaultcluster.Node, handle string, minTTL time.Duration) (*tokenData, error) {
	var q map[string][]string
	if minTTL > 0 {
		q = map[string][]string{"min_ttl": {strconv.Itoa(int(minTTL / time.Second))}}
	}
	s, err := n.Client.Logical().ReadWithDataWithContext(ctx, e.path("token/"+handle), q)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("token/%s: not found", handle)
	}
	td := &tokenData{LeaseID: s.LeaseID, Warnings: s.Warnings}
	td.AccessToken, _ = s.Data["access_token"].(string)
	td.ExpiresAt, _ = s.Data["expires_at"].(string)
	td.Headers, _ = s.Data["headers"].(map[string]any)
	if td.AccessToken == "" {
		return nil, fmt.Errorf("token/%s: no access_token", handle)
	}
	return td, nil
}

func (e *env) mustToken(n *vaultcluster.Node, handle string, minTTL time.Duration) *tokenData {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	td, err := e.readToken(ctx, n, handle, minTTL)
	require.NoError(e.t, err, "token/%s through %s", handle, n)
	return td
}

// status is the binding's status object, read through n.
func (e *env) status(n *vaultcluster.Node, handle string) map[string]any {
	e.t.Helper()
	st, ok := e.read(n, "bindings/"+handle).Data["status"].(map[string]any)
	require.True(e.t, ok, "bindings/%s has a status object", handle)
	return st
}

func (e *env) stats() oauthtest.Stats {
	e.t.Helper()
	st, err := e.idp.Stats()
	require.NoError(e.t, err)
	return st
}

// refreshes is the number of successful refresh-token grants so far.
func (e *env) refreshes() int {
	e.t.Helper()
	return e.stats().TokenSuccess[oauthtest.GrantRefreshToken]
}

// requireNoReuse fails if the server ever saw a rotated refresh token again.
func (e *env) requireNoReuse() {
	e.t.Helper()
	st := e.stats()
	require.Zero(e.t, st.RefreshTokenReuseDetected, "refresh token reuse detected by the OAuth2 server")
	require.Zero(e.t, st.GrantsRevoked, "grants revoked by the OAuth2 server")
}

// sameToken compares tokens without printing them.
func sameToken(t *testing.T, want, got *tokenData, msg string, args ...any) {
	t.Helper()
	if want.AccessToken != got.AccessToken {
		t.Fatalf("%s: a different access token was served", fmt.Sprintf(msg, args...))
	}
}

func differentToken(t *testing.T, old, got *tokenData, msg string, args ...any) {
	t.Helper()
	if old.AccessToken == got.AccessToken {
		t.Fatalf("%s: the old access token was served", fmt.Sprintf(msg, args...))
	}
}

// statusCode is the HTTP status of a Vault API error, 0 if err is not one.
func statusCode(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// requireStatus fails unless err is a Vault API error with the given status.
func requireStatus(t *testing.T, err error, want int) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, want, statusCode(err), "want HTTP %d (%s), got %v", want, http.StatusText(want), err)
}

// eventually polls cond every 250 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
