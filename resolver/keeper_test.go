package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/fakevault"
	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// fakeLogin is an api.AuthMethod that issues conn-1, conn-2, ... and
// registers each with the fake Vault under policy.
type fakeLogin struct {
	fv        *fakevault.Server
	lease     int // seconds
	renewable bool
	policy    func(method, path string) bool
	logins    atomic.Int64
	fail      atomic.Pointer[error]
}

func allowAll(string, string) bool { return true }

func (f *fakeLogin) Login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	if err := f.fail.Load(); err != nil {
		return nil, *err
	}
	tok := fmt.Sprintf("conn-%d", f.logins.Add(1))
	f.fv.AddToken(tok, f.policy)
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: tok, LeaseDuration: f.lease, Renewable: f.renewable}}, nil
}

// tokensSeen records the X-Vault-Token of each token read of the fake Vault.
func tokensSeen(fv *fakevault.Server) func() []string {
	var mu sync.Mutex
	var seen []string
	fv.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/v1/flowcred/token/") {
			mu.Lock()
			seen = append(seen, r.Header.Get("X-Vault-Token"))
			mu.Unlock()
		}
		return false
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// authProvider is a provider on fv with WithAuth(login) and no token of its own.
func authProvider(t *testing.T, fv *fakevault.Server, login *fakeLogin) *resolver.VaultProvider {
	t.Helper()
	p, err := resolver.NewVault(resolver.WithClient(vaultClient(t, fv.Addr, "")), resolver.WithAuth(login))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestWithAuth_LogsInBeforeTheFirstRead(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	seen := tokensSeen(fv)
	login := &fakeLogin{fv: fv, lease: 3600, renewable: false, policy: allowAll}
	p := authProvider(t, fv, login)
	if _, err := p.Resolve(context.Background(), "crm"); err != nil {
		t.Fatal(err)
	}
	if login.logins.Load() != 1 || strings.Join(seen(), ",") != "conn-1" {
		t.Fatalf("%d logins, reads with %q", login.logins.Load(), seen())
	}
	if p.Client().Token() != "conn-1" {
		t.Fatal("the login did not set the client's token")
	}
}

// LifetimeWatcher ends within the last 10-20% of a token that cannot be
// extended; the provider logs in again then, before the token expires and
// without waiting for a read.
func TestWithAuth_LogsInAgainBeforeTheTokenEnds(t *testing.T) {
	t.Parallel()
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	seen := tokensSeen(fv)
	login := &fakeLogin{fv: fv, lease: 2, renewable: false, policy: allowAll}
	p := authProvider(t, fv, login)
	start := time.Now()
	if _, err := p.Resolve(context.Background(), "crm"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second login", func() bool { return login.logins.Load() >= 2 })
	if d := time.Since(start); d >= 2*time.Second {
		t.Fatalf("logged in again after %v, when the 2s token had ended", d)
	}
	p.Invalidate("crm")
	if _, err := p.Resolve(context.Background(), "crm"); err != nil {
		t.Fatal(err)
	}
	if got := seen(); len(got) != 2 || got[1] == "conn-1" {
		t.Fatalf("reads with %q, want the second with the new token", got)
	}
}

// A token revoked before its end: the read's 403 and a failed lookup-self
// say it has ended; the provider logs in and reads again.
func TestWithAuth_RevokedTokenLogsInAgain(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	seen := tokensSeen(fv)
	login := &fakeLogin{fv: fv, lease: 3600, policy: allowAll}
	p := authProvider(t, fv, login)
	if _, err := p.Resolve(context.Background(), "crm"); err != nil {
		t.Fatal(err)
	}
	fv.AddToken("conn-1", func(string, string) bool { return false }) // revoked
	p.Invalidate("crm")
	if _, err := p.Resolve(context.Background(), "crm"); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if got := strings.Join(seen(), ","); got != "conn-1,conn-1,conn-2" || login.logins.Load() != 2 {
		t.Fatalf("reads with %s, %d logins", got, login.logins.Load())
	}
}

// A token that may not look itself up (no default policy) and may not read
// the handle: one new login, then the 403 of the fresh token is a denial.
func TestWithAuth_DenialOfAFreshTokenIsPermissionDenied(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	login := &fakeLogin{fv: fv, lease: 3600, policy: func(_, path string) bool { return path == "flowcred/token/other" }}
	p := authProvider(t, fv, login)
	_, err := p.Resolve(context.Background(), "crm")
	if !errors.Is(err, resolver.ErrPermissionDenied) || errors.Is(err, resolver.ErrVaultTokenExpired) {
		t.Fatalf("err = %v, want ErrPermissionDenied", err)
	}
	if n := login.logins.Load(); n != 2 {
		t.Fatalf("%d logins, want 2 (the first and one retry)", n)
	}
}

func TestWithAuth_LoginFailure(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	refused := error(&api.ResponseError{HTTPMethod: "PUT", StatusCode: 400, Errors: []string{"invalid role or secret ID"}})
	_, dialErr := http.Get("http://127.0.0.1:1/")
	down := error(&api.ResponseError{HTTPMethod: "PUT", StatusCode: 503, Errors: []string{"Vault is sealed"}})
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"credentials refused", refused, resolver.ErrVaultTokenExpired},
		{"vault sealed", down, resolver.ErrUnavailable},
		{"vault unreachable", dialErr, resolver.ErrUnavailable},
		{"auth method failed", errors.New("reading the service account token: no such file"), resolver.ErrVaultTokenExpired},
	} {
		t.Run(c.name, func(t *testing.T) {
			login := &fakeLogin{fv: fv, lease: 3600, policy: allowAll}
			login.fail.Store(&c.err)
			p := authProvider(t, fv, login)
			_, err := p.Resolve(context.Background(), "crm")
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v does not wrap the login's error", err)
			}
			// Vault recovers: the next read logs in.
			login.fail.Store(nil)
			if _, err := p.Resolve(context.Background(), "crm"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Without WithAuth, a 403 with a token that can no longer look itself up
// is ErrVaultTokenExpired; a 403 with a live token is ErrPermissionDenied.
func TestResolve_ExpiredVaultToken(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	fv.AddToken("narrow", func(_, path string) bool { return path == "auth/token/lookup-self" })
	ctx := context.Background()

	expired, _ := resolver.NewVault(resolver.WithClient(vaultClient(t, fv.Addr, "expired-or-revoked")))
	_, err := expired.Resolve(ctx, "crm")
	var re *resolver.Error
	if !errors.Is(err, resolver.ErrVaultTokenExpired) || errors.Is(err, resolver.ErrPermissionDenied) || !errors.As(err, &re) || re.StatusCode != 403 {
		t.Fatalf("expired token: err = %v", err)
	}
	narrow, _ := resolver.NewVault(resolver.WithClient(vaultClient(t, fv.Addr, "narrow")))
	if _, err := narrow.Resolve(ctx, "crm"); !errors.Is(err, resolver.ErrPermissionDenied) || errors.Is(err, resolver.ErrVaultTokenExpired) {
		t.Fatalf("live token without the policy: err = %v", err)
	}
}

// WithTokenRenewal renews a renewable VAULT_TOKEN with the LifetimeWatcher.
func TestWithTokenRenewal_RenewsTheToken(t *testing.T) {
	t.Parallel()
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	var renewals atomic.Int64
	fv.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/auth/token/lookup-self":
			_, _ = w.Write([]byte(`{"data":{"id":"periodic","ttl":3,"renewable":true}}`))
			return true
		case "/v1/auth/token/renew-self":
			renewals.Add(1)
			_, _ = w.Write([]byte(`{"auth":{"client_token":"periodic","lease_duration":3,"renewable":true}}`))
			return true
		}
		return false
	})
	fv.AddToken("periodic", allowAll)
	p, err := resolver.NewVault(resolver.WithClient(vaultClient(t, fv.Addr, "periodic")), resolver.WithTokenRenewal())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve(context.Background(), "crm"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a renewal", func() bool { return renewals.Load() >= 1 })
	_ = p.Close()
	n := renewals.Load()
	time.Sleep(2500 * time.Millisecond) // more than a renewal interval of a 3s token
	if renewals.Load() != n {
		t.Fatal("renewals went on after Close")
	}
}

// Close stops the watcher: no login after it.
func TestWithAuth_CloseStopsLoggingIn(t *testing.T) {
	t.Parallel()
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	login := &fakeLogin{fv: fv, lease: 2, policy: allowAll}
	p := authProvider(t, fv, login)
	if _, err := p.Resolve(context.Background(), "crm"); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	time.Sleep(2500 * time.Millisecond) // past the watcher's end for a 2s token
	if n := login.logins.Load(); n != 1 {
		t.Fatalf("%d logins after Close", n)
	}
	if _, err := p.Resolve(context.Background(), "crm"); err != nil {
		t.Fatalf("a cached read after Close: %v", err)
	}
}
