package resolver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// stubVault answers token reads with a fixed status and error messages, and
// auth/token/lookup-self with lookupStatus (200 with a token's data, or an
// error status), counting the lookups.
type stubVault struct {
	addr    string
	lookups atomic.Int64
}

func newStubVault(t *testing.T, status int, msgs []string, lookupStatus int) *stubVault {
	t.Helper()
	sv := &stubVault{}
	sv.addr = newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/auth/token/lookup-self" {
			sv.lookups.Add(1)
			w.WriteHeader(lookupStatus)
			if lookupStatus == http.StatusOK {
				_, _ = w.Write([]byte(`{"data":{"id":"stub","ttl":3600,"renewable":false}}`))
				return
			}
			_, _ = w.Write([]byte(`{"errors":["permission denied"]}`))
			return
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string][]string{"errors": msgs})
	}))
	return sv
}

// The sentinel follows the status and, for a 400, the leading word of the
// message only: other wording (including the plugin's wording before the
// 404 and health-word contract) decides nothing.
func TestResolve_ErrorByStatusAndLeadingWord(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		msgs   []string
		lookup int // lookup-self status on a 403
		want   error
	}{
		{"404 with a message", 404, []string{`no binding for handle "x"`}, 0, resolver.ErrNotFound},
		{"404 without a message", 404, []string{}, 0, resolver.ErrNotFound},
		{"needs_reauth", 400, []string{`needs_reauth: handle "x": provider answered invalid_grant`}, 0, resolver.ErrNeedsReauth},
		{"needs_reauth folded by Vault", 400, []string{"1 error occurred:\n\t* needs_reauth: handle \"x\"\n\n"}, 0, resolver.ErrNeedsReauth},
		{"needs_authorization", 400, []string{`needs_authorization: handle "x" has no refresh token yet`}, 0, resolver.ErrNeedsAuthorization},
		{"health word elsewhere", 400, []string{`handle "x": needs_reauth: invalid_grant`}, 0, resolver.ErrMisconfigured},
		{"health word without colon", 400, []string{`needs_reauth handle "x"`}, 0, resolver.ErrMisconfigured},
		{"a longer word", 400, []string{`needs_reauth_soon: x`}, 0, resolver.ErrMisconfigured},
		{"old wording of re-authorization", 400, []string{`handle "x" needs re-authorization: provider answered invalid_grant`}, 0, resolver.ErrMisconfigured},
		{"old wording of no binding", 400, []string{`no binding for handle "x"`}, 0, resolver.ErrMisconfigured},
		{"needs_reauth word with another status", 502, []string{`needs_reauth: x`}, 0, resolver.ErrUnavailable},
		{"missing secret", 400, []string{`handle "x": field token_secret references secret "s", which does not exist`}, 0, resolver.ErrMisconfigured},
		{"provider down", 502, []string{`handle "x": token endpoint answered HTTP 500, and no cached token is valid`}, 0, resolver.ErrUnavailable},
		{"rate limited", 429, []string{"request path \"flowcred/token/x\": rate limit quota exceeded"}, 0, resolver.ErrUnavailable},
		{"denied, token valid", 403, []string{"permission denied"}, 200, resolver.ErrPermissionDenied},
		{"denied, token expired", 403, []string{"permission denied"}, 403, resolver.ErrVaultTokenExpired},
		{"denied, lookup fails otherwise", 403, []string{"permission denied"}, 500, resolver.ErrPermissionDenied},
	} {
		t.Run(c.name, func(t *testing.T) {
			sv := newStubVault(t, c.status, c.msgs, c.lookup)
			p, err := resolver.NewVault(resolver.WithClient(vaultClient(t, sv.addr, "connector-token")))
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Resolve(context.Background(), "x")
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			for _, other := range []error{resolver.ErrNotFound, resolver.ErrNeedsReauth, resolver.ErrNeedsAuthorization,
				resolver.ErrUnavailable, resolver.ErrPermissionDenied, resolver.ErrVaultTokenExpired, resolver.ErrMisconfigured} {
				if other != c.want && errors.Is(err, other) {
					t.Fatalf("err %v also matches %v", err, other)
				}
			}
			var re *resolver.Error
			if !errors.As(err, &re) || re.StatusCode != c.status {
				t.Fatalf("err %v: want a *resolver.Error with status %d", err, c.status)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("err is not one line: %q", err)
			}
			if c.status != 403 && sv.lookups.Load() != 0 {
				t.Fatal("a token lookup for an answer other than 403")
			}
		})
	}
}
