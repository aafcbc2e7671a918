package resolver_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// appRoleLogin is a minimal api.AuthMethod for AppRole. Connectors use
// github.com/hashicorp/vault/api/auth/approle, a module this one does not
// otherwise need; the login request is the same.
type appRoleLogin struct {
	roleID, secretID string
	logins           atomic.Int64
}

func (a *appRoleLogin) Login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	a.logins.Add(1)
	return c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]interface{}{"role_id": a.roleID, "secret_id": a.secretID})
}

// TestIntegration_ConnectorVaultToken: the connector's own token on a real
// Vault. WithAuth(AppRole) renews a renewable token past its TTL, logs in
// again before its max TTL, and after a revocation; a plain token that
// expired is reported as ErrVaultTokenExpired, not ErrPermissionDenied.
func TestIntegration_ConnectorVaultToken(t *testing.T) {
	vaulttest.Require(t)
	s := vaulttest.Start(t, vaulttest.Options{})
	ctx := context.Background()
	root := s.Client
	if _, err := root.Logical().Write(s.Mount+"/bindings/crm", map[string]interface{}{"kind": "api_token", "token": staticToken, "ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("crm-reader", `path "`+s.Mount+`/token/crm" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}

	t.Run("approle: renewed, then a new login before the max TTL", func(t *testing.T) {
		if err := root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().Write("auth/approle/role/connector", map[string]interface{}{
			"token_policies": "crm-reader", "token_ttl": "3s", "token_max_ttl": "7s",
		}); err != nil {
			t.Fatal(err)
		}
		rid, err := root.Logical().Read("auth/approle/role/connector/role-id")
		if err != nil {
			t.Fatal(err)
		}
		sid, err := root.Logical().Write("auth/approle/role/connector/secret-id", nil)
		if err != nil {
			t.Fatal(err)
		}
		login := &appRoleLogin{roleID: rid.Data["role_id"].(string), secretID: sid.Data["secret_id"].(string)}
		c, err := s.ClientWithToken("")
		if err != nil {
			t.Fatal(err)
		}
		// A 1s margin on 1h material: every Resolve below reads Vault.
		p, err := resolver.NewVault(resolver.WithClient(c), resolver.WithMount(s.Mount), resolver.WithAuth(login), resolver.WithMargin(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()

		start := time.Now()
		if _, err := p.Resolve(ctx, "crm"); err != nil {
			t.Fatal(err)
		}
		first := c.Token()
		var renewedPastTTL bool
		for time.Since(start) < 8*time.Second {
			if _, err := p.Resolve(ctx, "crm"); err != nil {
				t.Fatalf("at %v: %v", time.Since(start).Round(time.Millisecond), err)
			}
			if time.Since(start) > 3500*time.Millisecond && c.Token() == first {
				renewedPastTTL = true // the 3s token still reads: it was renewed
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !renewedPastTTL {
			t.Error("the first token was not used past its 3s TTL: not renewed")
		}
		if n := login.logins.Load(); n < 2 || c.Token() == first {
			t.Fatalf("%d logins over 8s of a 7s max TTL", n)
		}

		// Revoked before its end: the 403 and lookup-self say so, and the
		// provider logs in again.
		before := login.logins.Load()
		if err := root.Auth().Token().RevokeTree(c.Token()); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Resolve(ctx, "crm"); err != nil {
			t.Fatalf("after revocation: %v", err)
		}
		if login.logins.Load() != before+1 {
			t.Fatalf("logins %d -> %d", before, login.logins.Load())
		}
	})

	t.Run("plain token: expired is not permission denied", func(t *testing.T) {
		sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"crm-reader"}, TTL: "2s", Renewable: new(bool)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.ClientWithToken(sec.Auth.ClientToken)
		if err != nil {
			t.Fatal(err)
		}
		p, err := resolver.NewVault(resolver.WithClient(c), resolver.WithMount(s.Mount), resolver.WithMargin(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Resolve(ctx, "other"); !errors.Is(err, resolver.ErrPermissionDenied) {
			t.Fatalf("a handle the live token may not read: err = %v", err)
		}
		if _, err := p.Resolve(ctx, "crm"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond)
		_, err = p.Resolve(ctx, "crm")
		var re *resolver.Error
		if !errors.Is(err, resolver.ErrVaultTokenExpired) || errors.Is(err, resolver.ErrPermissionDenied) || !errors.As(err, &re) || re.StatusCode != 403 {
			t.Fatalf("expired token: err = %v", err)
		}
	})
}
