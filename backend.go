// Package flowcred is a Vault secrets engine that turns credential handles
// into ready-to-use credential material: access tokens refreshed and cached
// by the plugin, served under Vault's leases, audit log and ACLs.
package flowcred

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// Version is set at build time with -ldflags "-X github.com/flowcred/vault-plugin-flowcred.Version=1.2.3".
var Version = "0.0.0-dev"

const (
	// operationPrefixFlowcred prefixes every OpenAPI operation ID.
	operationPrefixFlowcred = "flowcred"

	// Storage prefixes. Everything below them is seal-wrapped.
	configStorageKey       = "config"
	bindingStoragePrefix   = "bindings/"
	secretStoragePrefix    = "secrets/"
	tokenStoragePrefix     = "tokens/"
	pluginName             = "flowcred"
	backendHelpSynopsis    = "Credential handles for workflow connectors: bindings in, ready-to-use tokens out."
	backendHelpDescription = `
flowcred binds credential handles (e.g. google_sales) to credential material:
OAuth2 refresh tokens, client credentials, service-account and JWT-bearer
grants, and static API tokens. Read token/<handle> to get an access token,
its expiry and the headers to inject; the plugin refreshes and caches tokens
and serves them under non-renewable Vault leases.
`
)

// Factory is the plugin entry point Vault calls for every mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend(defaultDeps())
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// deps are the backend's outside world, replaced by tests.
type deps struct {
	// now is the clock.
	now func() time.Time
	// transport carries upstream token requests; nil means a fresh
	// http.Transport per backend.
	transport http.RoundTripper
}

func defaultDeps() deps {
	return deps{now: time.Now}
}

type backend struct {
	*framework.Backend
	deps

	// Lock order: a handle's lock (handles.lock) before its binding stripe
	// (bindingLocks) before refsLock. Only a handle's lock is ever held
	// across an upstream call or a wait on another handle; a binding write
	// takes its stripe and refsLock only to store, then waits on the handle
	// (forgetBinding) with neither held.

	// handles holds per-handle state: the single-flight lock, the cached
	// binding and token. Only bound handles that were used have an entry.
	handles handleMap

	// secretsEpoch increases whenever a stored secret changes (locally or
	// by Invalidate). Cached material resolved from secrets under an older
	// epoch is reloaded.
	secretsEpoch atomic.Uint64

	// bindingLocks serialise writes and deletes of a binding, striped by
	// handle, so that a write needs no per-handle entry in handles.
	bindingLocks []*locksutil.LockEntry

	// refsLock orders secret deletes against binding writes: a binding write
	// holds it for reading, a secret delete for writing, so a secret cannot
	// be deleted while a binding that references it is being written.
	refsLock sync.RWMutex

	// config is the mount configuration, loaded lazily and dropped by
	// Invalidate("config").
	configMu sync.Mutex
	config   atomic.Pointer[configEntry]

	// httpClient makes upstream calls; its timeout is set per request from config.
	httpClient *http.Client

	// userAgent is sent on upstream calls.
	userAgent atomic.Value

	// scheduler drives background refresh of recently read handles.
	scheduler *refreshScheduler

	// authStates are the pending authorization-code grants (connect.go).
	authStates authStates
	// callbackFailures limits failed public callbacks (path_connect.go).
	callbackFailures *failureLimiter
	// health counts bindings by health (health.go); metrics are the
	// plugin's Prometheus metrics (metrics.go); webhooks delivers the
	// outbox (webhooks.go).
	health   healthCounts
	metrics  *metrics
	webhooks deliverer

	// pollers poll the token endpoint for pending device grants (device.go).
	pollers devicePollers

	// sysView is the system view given to the framework, with the answers
	// asked on every request cached (sysview.go); nil before Setup.
	sysView *cachingSystemView

	// storageView is the mount's storage, kept from InitializeFunc so that
	// Clean can write token states whose write failed.
	storageView logical.Storage
}

func newBackend(d deps) *backend {
	if d.now == nil {
		d.now = time.Now
	}
	b := &backend{deps: d}
	tr := d.transport
	if tr == nil {
		tr = newUpstreamTransport()
	}
	b.httpClient = &http.Client{Transport: &userAgentTransport{b: b, next: tr}, CheckRedirect: noRedirect}
	b.handles.init()
	b.bindingLocks = locksutil.CreateLocks()
	b.scheduler = newRefreshScheduler()
	b.callbackFailures = newFailureLimiter()
	b.metrics = newMetrics(b)
	b.webhooks.wake = make(chan struct{}, 1)
	b.userAgent.Store("flowcred/" + Version)

	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelpDescription),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			// The connect redirect target; it answers 404 unless the mount
			// config enables it (public_callback).
			Unauthenticated: []string{"callback"},
			SealWrapStorage: []string{
				devicePrefix,
				outboxPrefix,
				configStorageKey,
				bindingStoragePrefix,
				secretStoragePrefix,
				tokenStoragePrefix,
			},
		},
		// Order matters: the framework matches the first pattern (the
		// actions under bindings/<handle>/ come before bindings/<handle>).
		// A name that matches no path is answered in HandleRequest.
		Paths: framework.PathAppend(
			[]*framework.Path{pathConfig(b), pathValidate(b)},
			pathSecrets(b),
			pathBindings(b),
			pathToken(b),
			pathConnect(b),
			[]*framework.Path{pathMetrics(b), pathHealth(b)},
		),
		Secrets:        []*framework.Secret{secretToken(b)},
		Invalidate:     b.invalidate,
		Clean:          b.clean,
		InitializeFunc: b.initialize,
		PeriodicFunc:   b.periodic,
		RunningVersion: "v" + Version,
	}
	return b
}

func (b *backend) initialize(ctx context.Context, req *logical.InitializationRequest) error {
	b.storageView = req.Storage
	if env, err := b.System().PluginEnv(ctx); err == nil && env != nil {
		b.userAgent.Store(userAgentString(env))
	}
	if err := b.loadHealth(ctx, req.Storage); err != nil {
		b.Logger().Warn("loading the health index failed", "error", err)
	}
	if b.WriteSafeReplicationState() {
		if err := b.resumePollers(ctx, req.Storage); err != nil {
			b.Logger().Warn("resuming pending device grants failed", "error", err)
		}
		b.startDeliverer(req.Storage)
	}
	return nil
}

// invalidate keeps in-memory state coherent when storage changes underneath
// this node (replication, or another node's write).
func (b *backend) invalidate(ctx context.Context, key string) {
	switch {
	case key == configStorageKey:
		b.config.Store(nil)
	case strings.HasPrefix(key, bindingStoragePrefix):
		b.handles.drop(strings.TrimPrefix(key, bindingStoragePrefix))
	case strings.HasPrefix(key, tokenStoragePrefix):
		b.handles.drop(strings.TrimPrefix(key, tokenStoragePrefix))
	case strings.HasPrefix(key, secretStoragePrefix):
		b.secretsEpoch.Add(1)
	}
}

// clean drops all in-memory state when the mount is unmounted or reloaded,
// after writing every token state whose write had failed.
func (b *backend) clean(ctx context.Context) {
	b.stopPollers()
	b.stopDeliverer()
	b.writePending(ctx)
	b.handles.clear()
	b.scheduler.clear()
	b.config.Store(nil)
	b.httpClient.CloseIdleConnections()
}

// cleanWait bounds how long Clean waits for a handle's refresh in flight.
const cleanWait = 10 * time.Second

// writePending writes the token states whose write failed (they may hold
// a rotated refresh token, the only copy there is). It waits a little for
// each busy handle, whose refresh writes its own result.
func (b *backend) writePending(ctx context.Context) {
	if b.storageView == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanWait)
	defer cancel()
	for handle, hc := range b.handles.entries() {
		if hc.acquire(ctx) != nil {
			b.Logger().Warn("clean: a refresh was still in flight", "handle", handle)
			continue
		}
		if p := hc.pending; p != nil {
			if err := putTokenState(ctx, b.storageView, handle, p); err != nil {
				b.Logger().Error("clean: storing a pending token state failed", "handle", handle, "error", err)
			} else {
				hc.pending = nil
			}
		}
		hc.release()
	}
}
