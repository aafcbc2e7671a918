package resolver

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
)

// Provider resolves a credential handle to credential material. It is the
// seed's CredentialProvider.
type Provider interface {
	Resolve(ctx context.Context, handle string) (*Material, error)
}

// Refresher is implemented by providers that can replace a token an API
// rejected: Refresh returns material whose token differs from rejected's
// when one can be had, bypassing any cache. Transport uses it on a 401.
type Refresher interface {
	Refresh(ctx context.Context, handle string, rejected *Material) (*Material, error)
}

// DefaultMount is where the flowcred plugin is mounted unless WithMount says otherwise.
const DefaultMount = "flowcred"

// handlePattern is the plugin's framework.GenericNameRegex, anchored.
var handlePattern = regexp.MustCompile(`^\w(([\w-.]+)?\w)?$`)

// VaultProvider resolves handles by reading <mount>/token/<handle> through
// Vault's API. It caches each handle's material until its lease (or the
// token's own expiry, if sooner) nears its end: by default when less than
// 10% of the lease is left, or WithMargin's margin. Concurrent resolves of
// one handle make one Vault read; different handles never wait on each
// other. A VaultProvider is safe for concurrent use.
type VaultProvider struct {
	client *api.Client
	mount  string
	margin time.Duration
	now    func() time.Time

	// keeper looks after the client's own Vault token (WithAuth,
	// WithTokenRenewal, and telling an expired token from a denial).
	keeper *keeper

	mu      sync.Mutex
	entries map[string]*entry
}

// entry is one handle's cache and single-flight lock.
type entry struct {
	// lock is a one-slot semaphore held during a Vault read, so that
	// waiting can be abandoned when the caller's context ends.
	lock chan struct{}
	// mat is the cached material, read without the lock.
	mat atomic.Pointer[Material]
	// reads counts finished Vault reads; lastErr is the error of the last
	// one when it can answer other callers too (nil on success, or when the
	// reader's own context ended). lastErr is guarded by lock.
	reads   atomic.Uint64
	lastErr error
}

// NewVault returns a provider that reads flowcred tokens from Vault. Unless
// WithClient is given, the Vault client is configured like the vault CLI's:
// VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT, VAULT_MAX_RETRIES
// and the other VAULT_* variables (api.DefaultConfig). Behind a Vault Agent
// API proxy with use_auto_auth_token, VAULT_TOKEN may be empty.
func NewVault(opts ...Option) (*VaultProvider, error) {
	p := &VaultProvider{mount: DefaultMount, now: time.Now, entries: map[string]*entry{}, keeper: newKeeper()}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, err
		}
	}
	if p.client == nil {
		cfg := api.DefaultConfig()
		if cfg.Error != nil {
			return nil, fmt.Errorf("resolver: reading VAULT_* environment: %w", cfg.Error)
		}
		c, err := api.NewClient(cfg)
		if err != nil {
			return nil, fmt.Errorf("resolver: creating Vault client: %w", err)
		}
		p.client = c
	}
	p.keeper.client = p.client
	return p, nil
}

// Client returns the Vault client the provider uses.
func (p *VaultProvider) Client() *api.Client { return p.client }

// Mount returns the plugin's mount path.
func (p *VaultProvider) Mount() string { return p.mount }

// Resolve returns the handle's material, from the cache while it is fresh,
// else from Vault. The result is the caller's own copy.
//
// When Vault cannot be reached (ErrUnavailable) but the cached token has not
// expired yet, the cached material is returned with a warning in Warnings.
func (p *VaultProvider) Resolve(ctx context.Context, handle string) (*Material, error) {
	if err := checkHandle(handle); err != nil {
		return nil, err
	}
	e := p.entry(handle)
	if m := e.mat.Load(); m != nil && p.fresh(m, p.now()) {
		return m.Clone(), nil
	}
	seen := e.reads.Load()
	if err := e.acquire(ctx); err != nil {
		return nil, &Error{Handle: handle, kind: ErrUnavailable, cause: err}
	}
	defer e.release()

	cached := e.mat.Load()
	if cached != nil && p.fresh(cached, p.now()) {
		return cached.Clone(), nil // another caller read it while we waited
	}
	if e.reads.Load() != seen && e.lastErr != nil {
		// A read that finished while we waited failed: it answers us too,
		// so that waiters do not queue up behind a failing Vault.
		return p.fallback(cached, e.lastErr)
	}
	m, err := p.read(ctx, handle, 0)
	p.finish(ctx, e, m, err)
	if err != nil {
		return p.fallback(cached, err)
	}
	return m.Clone(), nil
}

// Refresh reads the handle from Vault, bypassing the cache, with min_ttl
// longer than the rejected token's remaining life so that the plugin
// obtains a new token. If another caller already replaced the rejected
// token, that material is returned without a read. A nil rejected means
// "re-read now". It needs only read access on <mount>/token/<handle>.
func (p *VaultProvider) Refresh(ctx context.Context, handle string, rejected *Material) (*Material, error) {
	if err := checkHandle(handle); err != nil {
		return nil, err
	}
	e := p.entry(handle)
	if err := e.acquire(ctx); err != nil {
		return nil, &Error{Handle: handle, kind: ErrUnavailable, cause: err}
	}
	defer e.release()
	now := p.now()
	if m := e.mat.Load(); m != nil && rejected != nil && m.AccessToken != rejected.AccessToken && p.fresh(m, now) {
		return m.Clone(), nil
	}
	var minTTL time.Duration
	if rejected != nil {
		if end := rejected.tokenEnd(); !end.IsZero() {
			// A few seconds over the remaining life make the plugin
			// refresh although expires_in is truncated to whole seconds
			// and the local end was estimated from the read's start.
			minTTL = end.Sub(now).Truncate(time.Second) + 5*time.Second
			if minTTL < time.Second {
				minTTL = time.Second
			}
		}
	}
	m, err := p.read(ctx, handle, minTTL)
	p.finish(ctx, e, m, err)
	if err != nil {
		return nil, err
	}
	return m.Clone(), nil
}

// Invalidate drops the handle's cached material; the next Resolve reads Vault.
func (p *VaultProvider) Invalidate(handle string) {
	p.mu.Lock()
	e := p.entries[handle]
	p.mu.Unlock()
	if e != nil {
		e.mat.Store(nil)
	}
}

func (p *VaultProvider) entry(handle string) *entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[handle]
	if e == nil {
		e = &entry{lock: make(chan struct{}, 1)}
		p.entries[handle] = e
	}
	return e
}

func (e *entry) acquire(ctx context.Context) error {
	select {
	case e.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *entry) release() { <-e.lock }

// finish records a read's outcome. Called with the entry's lock held.
func (p *VaultProvider) finish(ctx context.Context, e *entry, m *Material, err error) {
	e.lastErr = err
	if ctx.Err() != nil {
		// The reader gave up; that says nothing about Vault.
		e.lastErr = nil
	}
	if err == nil {
		e.mat.Store(m)
	}
	e.reads.Add(1)
}

// fallback serves cached material whose token is still valid when Vault is
// unavailable; any other error is returned as is.
func (p *VaultProvider) fallback(cached *Material, err error) (*Material, error) {
	if cached == nil || !errors.Is(err, ErrUnavailable) || !p.usable(cached, p.now()) {
		return nil, err
	}
	m := cached.Clone()
	m.Warnings = append(m.Warnings, "serving cached material: "+err.Error())
	return m, nil
}

// deadline is the end of the material's lease or token, whichever comes
// first, and the span it is a margin of. Zero when neither is known.
func deadline(m *Material) (time.Time, time.Duration) {
	var end time.Time
	var span time.Duration
	switch {
	case m.LeaseDuration > 0:
		end, span = m.FetchedAt.Add(m.LeaseDuration), m.LeaseDuration
	case m.readAgain > 0:
		// No lease (mount config token_leases=false): data.ttl says when.
		end, span = m.FetchedAt.Add(m.readAgain), m.readAgain
	}
	if t := m.tokenEnd(); !t.IsZero() && (end.IsZero() || t.Before(end)) {
		end = t
		if span == 0 {
			span = t.Sub(m.FetchedAt)
		}
	}
	return end, span
}

// fresh reports whether m can be served without asking Vault.
func (p *VaultProvider) fresh(m *Material, now time.Time) bool {
	at := p.refreshAt(m)
	return !at.IsZero() && now.Before(at)
}

// refreshAt is when Resolve stops serving m from the cache and reads Vault
// again; zero when m has neither lease nor expiry.
func (p *VaultProvider) refreshAt(m *Material) time.Time {
	end, span := deadline(m)
	if end.IsZero() {
		return end
	}
	margin := p.margin
	if margin == 0 {
		margin = span / 10
	}
	return end.Add(-margin)
}

// usable reports whether m's token is still valid, margin or not.
func (p *VaultProvider) usable(m *Material, now time.Time) bool {
	if t := m.tokenEnd(); !t.IsZero() {
		return now.Before(t)
	}
	end, _ := deadline(m)
	return !end.IsZero() && now.Before(end)
}

func checkHandle(handle string) error {
	if !handlePattern.MatchString(handle) || len(handle) > 128 {
		return &Error{Handle: handle, kind: ErrMisconfigured,
			Messages: []string{"not a valid handle name (letters, digits, _, - and ., starting and ending with a letter, digit or _; at most 128 characters)"}}
	}
	return nil
}
