package resolver

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Option configures a VaultProvider.
type Option func(*VaultProvider) error

// WithClient uses c instead of a client built from the VAULT_* environment.
// The client's token, namespace and retry settings are used as they are
// (WithAuth replaces the token when it logs in).
func WithClient(c *api.Client) Option {
	return func(p *VaultProvider) error {
		if c == nil {
			return errors.New("resolver: WithClient: nil client")
		}
		p.client = c
		return nil
	}
}

// WithMount sets the plugin's mount path (default "flowcred").
func WithMount(mount string) Option {
	return func(p *VaultProvider) error {
		m := strings.Trim(mount, "/")
		if m == "" {
			return errors.New("resolver: WithMount: empty mount path")
		}
		p.mount = m
		return nil
	}
}

// WithMargin re-reads a handle when less than d is left of its lease or of
// its token's life. The default (0) is 10% of the lease. A margin at least
// as long as the lease disables caching.
func WithMargin(d time.Duration) Option {
	return func(p *VaultProvider) error {
		if d < 0 {
			return fmt.Errorf("resolver: WithMargin: negative margin %s", d)
		}
		p.margin = d
		return nil
	}
}

// WithClock replaces time.Now for the material cache, for tests. (The
// connector's own Vault token is watched on the real clock.)
func WithClock(now func() time.Time) Option {
	return func(p *VaultProvider) error {
		if now == nil {
			return errors.New("resolver: WithClock: nil clock")
		}
		p.now = now
		return nil
	}
}

// WithAuth logs in to Vault with m (a vault/api auth method: approle,
// kubernetes, aws, ... from github.com/hashicorp/vault/api/auth/...) before
// the first read, keeps the token alive with vault/api's LifetimeWatcher
// (renewing it while Vault allows, watching it when it is not renewable),
// and logs in again when it ends: ahead of its max TTL, or when a read is
// refused because the token was revoked. The login sets the token on the
// provider's client. Call Close to stop the watcher.
func WithAuth(m api.AuthMethod) Option {
	return func(p *VaultProvider) error {
		if m == nil {
			return errors.New("resolver: WithAuth: nil auth method")
		}
		p.keeper.method = m
		p.keeper.renew = true
		return nil
	}
}

// WithTokenRenewal keeps the client's existing token (VAULT_TOKEN) alive:
// before the first read the provider looks the token up (auth/token/
// lookup-self, in Vault's default policy) and, if it is renewable, renews it
// with vault/api's LifetimeWatcher until Vault stops extending it. A token
// that cannot be renewed any more is not replaced; reads then fail with
// ErrVaultTokenExpired. Use WithAuth to log in again instead. Call Close to
// stop the watcher.
func WithTokenRenewal() Option {
	return func(p *VaultProvider) error {
		p.keeper.renew = true
		return nil
	}
}
