package resolver_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// TestIntegration_RealVault runs the resolver against a real Vault with the
// plugin: material and lease from the real API, a policy that grants one
// handle, the Transport's 401 retry through the plugin's min_ttl refresh,
// and the error mapping on Vault's real answers.
func TestIntegration_RealVault(t *testing.T) {
	vaulttest.Require(t)
	s := vaulttest.Start(t, vaulttest.Options{})
	te := newTokenEndpoint(t)
	ctx := context.Background()
	write := func(path string, data map[string]interface{}) {
		t.Helper()
		if _, err := s.Client.Logical().Write(s.Mount+"/"+path, data); err != nil {
			t.Fatal(err)
		}
	}
	write("bindings/crm", map[string]interface{}{"kind": "api_token", "token": staticToken, "ttl": "10m"})
	write("bindings/google_sales", map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": "client-id", "client_secret": clientSecret,
		"refresh_token": refreshToken, "token_url": te.URL(),
		"extra_headers": map[string]interface{}{"x-goog-user-project": "sales-project"},
	})
	write("bindings/reauth", map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": "client-id", "refresh_token": "revoked-refresh-token", "token_url": te.URL(),
	})

	p, err := resolver.NewVault(resolver.WithClient(s.Client), resolver.WithMount(s.Mount))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("static material and lease", func(t *testing.T) {
		m, err := p.Resolve(ctx, "crm")
		if err != nil {
			t.Fatal(err)
		}
		if m.AccessToken != staticToken || m.Headers["Authorization"] != "Bearer "+staticToken || m.LeaseDuration != 10*time.Minute ||
			!strings.HasPrefix(m.LeaseID, s.Mount+"/token/crm/") {
			t.Fatalf("material %v", m)
		}
	})

	t.Run("from the VAULT_ environment", func(t *testing.T) {
		t.Setenv("VAULT_ADDR", s.Addr)
		t.Setenv("VAULT_TOKEN", s.Token)
		t.Setenv("VAULT_MAX_RETRIES", "0")
		envP, err := resolver.NewVault(resolver.WithMount(s.Mount))
		if err != nil {
			t.Fatal(err)
		}
		if m, err := envP.Resolve(ctx, "crm"); err != nil || m.AccessToken != staticToken {
			t.Fatalf("%v %v", m, err)
		}
	})

	// A token with only the example connector policy.
	policy, err := os.ReadFile("../examples/agent/connector-google_sales.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Client.Sys().PutPolicy("connector-google_sales", strings.ReplaceAll(string(policy), "flowcred/", s.Mount+"/")); err != nil {
		t.Fatal(err)
	}
	sec, err := s.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"connector-google_sales"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	connClient, err := s.ClientWithToken(sec.Auth.ClientToken)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := resolver.NewVault(resolver.WithClient(connClient), resolver.WithMount(s.Mount))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("transport retries a 401 with a refreshed token", func(t *testing.T) {
		a := newAPIServer(t)
		c := &http.Client{Transport: &resolver.Transport{Provider: conn, Handle: "google_sales"}}
		get := func() (int, string) {
			resp, err := c.Get(a.srv.URL + "/v1/leads")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, _ := get(); code != http.StatusOK {
			t.Fatalf("first request: %d", code)
		}
		first := te.issued.Load()
		a.revoke("tok-" + strconv.FormatInt(first, 10))
		if code, _ := get(); code != http.StatusOK {
			t.Fatalf("after revocation: %d", code)
		}
		if te.issued.Load() != first+1 {
			t.Fatalf("the plugin did not refresh on min_ttl: %d grants", te.issued.Load())
		}
		reqs := a.requests()
		if len(reqs) != 3 || reqs[1] == reqs[2] {
			t.Fatalf("API saw %q", reqs)
		}
	})

	te.mode.Store("invalid_grant")
	_, reauthErr := p.Resolve(ctx, "reauth")
	te.mode.Store("")
	_, notFoundErr := p.Resolve(ctx, "unbound")
	_, deniedErr := conn.Resolve(ctx, "crm")
	wrongMount, _ := resolver.NewVault(resolver.WithClient(s.Client), resolver.WithMount("not-mounted"))
	_, noMountErr := wrongMount.Resolve(ctx, "crm")
	for _, c := range []struct {
		name   string
		err    error
		want   error
		status int
		msg    string
	}{
		{"no binding", notFoundErr, resolver.ErrNotFound, 404, `no binding for handle "unbound"`},
		{"needs reauth", reauthErr, resolver.ErrNeedsReauth, 400, "needs_reauth: "},
		{"needs reauth: the provider's code", reauthErr, resolver.ErrNeedsReauth, 400, "invalid_grant"},
		{"permission denied", deniedErr, resolver.ErrPermissionDenied, 403, "permission denied"},
		{"nothing mounted", noMountErr, resolver.ErrNotFound, 404, "no handler for route"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var re *resolver.Error
			if !errors.Is(c.err, c.want) || !errors.As(c.err, &re) || re.StatusCode != c.status {
				t.Fatalf("err = %v (status %d), want %v with %d", c.err, re.StatusCode, c.want, c.status)
			}
			if !strings.Contains(c.err.Error(), c.msg) || strings.Contains(c.err.Error(), "\n") {
				t.Fatalf("err %q: want one line containing %q", c.err, c.msg)
			}
		})
	}
}

// TestIntegration_UnleasedAnswer: with token_leases=false the answer has no
// lease, and the provider caches it by data.ttl.
func TestIntegration_UnleasedAnswer(t *testing.T) {
	vaulttest.Require(t)
	s := vaulttest.Start(t, vaulttest.Options{})
	for path, data := range map[string]map[string]interface{}{
		"config":       {"token_leases": false},
		"bindings/crm": {"kind": "api_token", "token": staticToken, "ttl": "10m"},
	} {
		if _, err := s.Client.Logical().Write(s.Mount+"/"+path, data); err != nil {
			t.Fatal(err)
		}
	}
	clk := newClock()
	p, err := resolver.NewVault(resolver.WithClient(s.Client), resolver.WithMount(s.Mount), resolver.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m1, err := p.Resolve(ctx, "crm")
	if err != nil {
		t.Fatal(err)
	}
	if m1.LeaseID != "" || m1.LeaseDuration != 0 {
		t.Fatalf("lease %q %v on an unleased mount", m1.LeaseID, m1.LeaseDuration)
	}
	clk.Advance(8 * time.Minute) // under 90% of the 600s ttl
	m2, err := p.Resolve(ctx, "crm")
	if err != nil || !m2.FetchedAt.Equal(m1.FetchedAt) {
		t.Fatalf("at 8m of a 10m ttl: read again (%v)", err)
	}
	clk.Advance(time.Minute + time.Second) // past 90%
	m3, err := p.Resolve(ctx, "crm")
	if err != nil || m3.FetchedAt.Equal(m1.FetchedAt) {
		t.Fatalf("at 9m1s of a 10m ttl: served from the cache (%v)", err)
	}
}

// BenchmarkIntegration_Resolve compares a cached resolve with a Vault read
// per resolve against a real dev Vault (api_token binding, no upstream).
//
//	FLOWCRED_INTEGRATION=1 ... go test -run '^$' -bench Integration ./resolver
func BenchmarkIntegration_Resolve(b *testing.B) {
	vaulttest.Require(b)
	s := vaulttest.Start(b, vaulttest.Options{})
	if _, err := s.Client.Logical().Write(s.Mount+"/bindings/crm", map[string]interface{}{"kind": "api_token", "token": staticToken}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		margin time.Duration
	}{{"cached", 0}, {"vault-read-each-time", 2 * time.Hour}} {
		b.Run(c.name, func(b *testing.B) {
			p, err := resolver.NewVault(resolver.WithClient(s.Client), resolver.WithMount(s.Mount), resolver.WithMargin(c.margin))
			if err != nil {
				b.Fatal(err)
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.Resolve(context.Background(), "crm"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
