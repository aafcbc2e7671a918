package flowcred

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The token lifecycle's read path, in the order a read takes it:
//
//	serveCached  the handle's published snapshot, without a lock
//	coalesce     one reader per handle holds its lock (single flight); the
//	             work after taking it runs detached from the reader
//	answerLocked the cache again (a refresh that finished while this read
//	             waited answers it), a recent failure, or a kind without an
//	             upstream (serveConfigured)
//	refresh      refresh.go: grant upstream, then commit (persist, publish)
//	             or record the failure
//
// Every step returns material or an error; a *readError is an answer the
// contract prescribes, and readAnswer maps errors to Vault answers, in this
// one place. The lifecycle knows kinds only through the registry (kinds.go).

// readOpts are the options of one material request.
type readOpts struct {
	// minTTL: the token served must have at least this much life left.
	minTTL time.Duration
	// force refreshes even when the cached token is fresh.
	force bool
	// background marks a refresh by the scheduler, which does not count as
	// a read for deciding what is "recently read".
	background bool
	// deliver, set by coalesce, hands material to the waiting reader
	// before the locked work ends (commit: a refresh that did not rotate
	// answers before its state is written).
	deliver func(*material)
}

// material is ready-to-serve credential material, immutable once built.
type material struct {
	handle, kind string
	accessToken  string
	tokenType    string
	// expiry is zero for a static token without expiry.
	expiry     time.Time
	obtainedAt time.Time
	// headers to inject, including the credential header. Shared, read-only.
	headers map[string]string
	// leaseCap is the binding's ttl (0: none).
	leaseCap time.Duration
	static   bool
	// warning is attached to every response that serves this material.
	warning string
}

// margin is the refresh margin for this token: the configured margin, at
// most half the token's lifetime.
func (m *material) margin(cfg *configEntry) time.Duration {
	margin := cfg.RefreshMargin
	if half := m.expiry.Sub(m.obtainedAt) / 2; half < margin {
		margin = half
	}
	return margin
}

// fresh reports whether m can be served without refreshing.
func (m *material) fresh(cfg *configEntry, minTTL time.Duration, now time.Time) bool {
	if m.static || m.expiry.IsZero() {
		return true
	}
	left := m.expiry.Sub(now)
	return left >= m.margin(cfg) && left >= minTTL && left > 0
}

// servable reports whether the snapshot answers a read on its own.
func (b *backend) servable(snap *snapshot, cfg *configEntry, minTTL time.Duration, now time.Time) bool {
	if snap == nil || snap.mat == nil {
		return false
	}
	if snap.mat.static && snap.epoch != b.secretsEpoch.Load() {
		return false
	}
	return snap.mat.fresh(cfg, minTTL, now)
}

// readError is a read's answer when it gets no material: a status and a
// message naming the handle, never a secret.
type readError struct {
	status int
	msg    string
}

func (e *readError) Error() string { return e.msg }

func readErrorf(status int, format string, args ...interface{}) *readError {
	return &readError{status: status, msg: fmt.Sprintf(format, args...)}
}

// errNotBound is the answer for a handle with no binding (design.md,
// "Errors": 404).
func errNotBound(handle string) *readError {
	return readErrorf(http.StatusNotFound, "no binding for handle %q", handle)
}

// errNeedsAuthorization is the answer for a binding that has no refresh
// token yet (design.md, "Errors": the 400 starts with the health word).
func errNeedsAuthorization(handle string, st *tokenState) *readError {
	if st != nil && st.Status.Health == healthPendingAuthorization {
		return readErrorf(http.StatusBadRequest, "%s: handle %q waits for the user to approve its device grant (bindings/%s/device)",
			healthNeedsAuthorization, handle, handle)
	}
	return readErrorf(http.StatusBadRequest, "%s: handle %q has no refresh token yet; connect it with bindings/%s/authorize (or bindings/%s/device), or write its refresh_token",
		healthNeedsAuthorization, handle, handle, handle)
}

// readAnswer maps an error of material to Vault's answer: a 400 is an error
// response (Vault's usual shape for a request that cannot be served as
// asked), another status a coded error, anything else an internal error.
func readAnswer(err error) (*logical.Response, error) {
	var re *readError
	if !errors.As(err, &re) {
		return nil, err
	}
	if re.status == http.StatusBadRequest {
		return logical.ErrorResponse(re.msg), nil
	}
	return nil, logical.CodedError(re.status, re.msg)
}

// material returns a handle's credential material, refreshing it when the
// cached token is not fresh (or when force is set), or an error (readAnswer
// renders it).
func (b *backend) material(ctx context.Context, s logical.Storage, handle string, o readOpts) (*material, error) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	now := b.now()
	if m := b.serveCached(handle, cfg, o, now); m != nil {
		b.metrics.hits.Inc()
		return m, nil
	}
	b.metrics.misses.Inc()
	return b.coalesce(ctx, s, handle, o, cfg, now)
}

// serveCached answers from the handle's published snapshot when it may,
// without taking the handle's lock.
func (b *backend) serveCached(handle string, cfg *configEntry, o readOpts, now time.Time) *material {
	hc := b.handles.peek(handle)
	if hc == nil || o.force {
		return nil
	}
	snap := hc.snap.Load()
	if !b.servable(snap, cfg, o.minTTL, now) {
		return nil
	}
	if !o.background {
		b.touched(hc, handle, cfg, snap.mat, now)
	}
	return snap.mat
}

// lockedResult carries a locked read's outcome to the reader.
type lockedResult struct {
	mat *material
	err error
}

// coalesce takes the handle's lock, so that concurrent readers cause one
// upstream request, and answers the read under it.
//
// Everything after taking the lock runs detached from the reader: a
// refresh, once sent, runs to completion (bounded by http_timeout) and
// stores its result even when the reader hangs up, because a rotating
// provider has spent the refresh token it was sent. The reader waits on its
// own context; its cancellation is never a provider failure.
func (b *backend) coalesce(ctx context.Context, s logical.Storage, handle string, o readOpts, cfg *configEntry, waitStart time.Time) (*material, error) {
	hc, err := b.handles.lock(ctx, handle)
	if err != nil {
		return nil, err
	}
	done := make(chan lockedResult, 1)
	var once sync.Once
	send := func(r lockedResult) { once.Do(func() { done <- r }) }
	o.deliver = func(m *material) { send(lockedResult{mat: m}) }
	go func() {
		m, err := b.answerLocked(context.WithoutCancel(ctx), s, hc, handle, o, cfg, waitStart)
		// Unlocked before the answer is sent, so that a reader that got its
		// answer finds the handle's entry in its final state (an unbound
		// handle's is gone).
		b.handles.unlock(handle, hc)
		send(lockedResult{m, err})
	}()
	select {
	case r := <-done:
		return r.mat, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answerLocked answers a read with the handle's lock held.
func (b *backend) answerLocked(ctx context.Context, s logical.Storage, hc *handleCache, handle string, o readOpts, cfg *configEntry, waitStart time.Time) (*material, error) {
	seen := hc.resets.Load()
	snap, err := b.loadSnapshot(ctx, s, hc, handle, seen)
	if err != nil {
		return nil, err
	}
	if snap == nil {
		return nil, errNotBound(handle)
	}
	now := b.now()
	if m := b.cachedAnswer(snap, cfg, o, waitStart, now); m != nil {
		if !o.background {
			b.touched(hc, handle, cfg, m, now)
		}
		return m, nil
	}
	if !o.background {
		hc.touch(now)
	}
	inputs, err := b.resolveInputs(ctx, s, handle, snap.binding)
	if err != nil {
		return nil, err
	}
	k := kindOf(snap.binding.Kind)
	if !k.upstream() {
		return b.serveConfigured(hc, handle, snap, k, inputs, now, seen)
	}
	// A failure that happened while this request waited for the lock
	// answers it too: concurrent readers cause one upstream request, even
	// when it fails.
	if f := hc.lastFailure; f != nil && !o.force && (!f.at.Before(waitStart) || now.Before(f.retryAfter)) {
		return b.failureAnswer(handle, snap, f.err, o, now)
	}
	return b.refresh(ctx, s, hc, handle, snap, k, inputs, o, cfg, now, seen)
}

// serveConfigured builds and publishes the material of a kind without an
// upstream.
func (b *backend) serveConfigured(hc *handleCache, handle string, snap *snapshot, k *kind, inputs map[string]string, now time.Time, seen uint64) (*material, error) {
	mat, ferr := k.serve(handle, snap.binding, inputs, now)
	if ferr != nil {
		return nil, readErrorf(http.StatusBadRequest, "handle %q: %s", handle, ferr.Error())
	}
	hc.publish(&snapshot{binding: snap.binding, state: snap.state, mat: mat, epoch: snap.epoch}, seen)
	return mat, nil
}

// cachedAnswer returns the cached material when it may answer the read
// without a refresh, else nil.
func (b *backend) cachedAnswer(snap *snapshot, cfg *configEntry, o readOpts, waitStart, now time.Time) *material {
	m := snap.mat
	switch {
	case o.force || m == nil:
		return nil
	case b.servable(snap, cfg, o.minTTL, now):
		return m
	case m.static:
		return nil
	case m.obtainedAt.After(waitStart) && m.expiry.After(now):
		// A refresh that completed while this request waited answers it
		// too, even when the provider issues less life than min_ttl asks.
		return m
	case m.fresh(cfg, 0, now) && now.Sub(m.obtainedAt) < cfg.MinRefreshInterval:
		// min_ttl asks for more than the last refresh gave: at most one
		// refresh per min_refresh_interval (tokenResponse warns).
		return m
	}
	return nil
}

// failureAnswer answers a read after a failed refresh: the cached token
// while it is valid (with a warning; for a refused grant, only to a read
// whose min_ttl it meets, and not to a forced refresh), else the error the
// contract prescribes. A needs_reauth error starts with that health word
// (design.md, "Errors").
func (b *backend) failureAnswer(handle string, snap *snapshot, ue *upstreamError, o readOpts, now time.Time) (*material, error) {
	m := snap.mat
	valid := m != nil && m.expiry.After(now)
	switch ue.class {
	case classReauth:
		// Served while valid, the margin waived; not to a read whose
		// min_ttl it cannot meet, nor to a forced refresh.
		if valid && !o.force && m.expiry.Sub(now) >= o.minTTL {
			cp := *m
			cp.warning = reauthWarning(handle, ue, m)
			return &cp, nil
		}
		return nil, readErrorf(http.StatusBadRequest, "%s: handle %q needs re-authorization: %s", healthNeedsReauth, handle, ue.Error())
	case classConfig:
		return nil, readErrorf(http.StatusBadRequest, "handle %q: token request refused: %s", handle, ue.Error())
	}
	if valid {
		cp := *m
		cp.warning = fmt.Sprintf("handle %q is degraded: %s; serving the cached token, which expires at %s",
			handle, ue.Error(), m.expiry.UTC().Format(time.RFC3339))
		return &cp, nil
	}
	return nil, readErrorf(http.StatusBadGateway, "handle %q: %s, and no cached token is valid", handle, ue.Error())
}

// reauthWarning goes with a cached token served while the grant is refused.
func reauthWarning(handle string, ue *upstreamError, m *material) string {
	return fmt.Sprintf("handle %q needs re-authorization: %s; serving the cached token until it expires at %s",
		handle, ue.Error(), m.expiry.UTC().Format(time.RFC3339))
}

// resolveInputs returns the binding's secret-capable inputs by field,
// reading referenced secrets. A missing secret is a 400 naming the field
// and the secret.
func (b *backend) resolveInputs(ctx context.Context, s logical.Storage, handle string, e *bindingEntry) (map[string]string, error) {
	in := make(map[string]string, len(e.Inline)+len(e.Refs))
	for f, v := range e.Inline {
		in[f] = v
	}
	for f, name := range e.Refs {
		sec, err := getSecret(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if sec == nil {
			return nil, readErrorf(http.StatusBadRequest, "handle %q: field %s%s references secret %q, which does not exist",
				handle, f, secretRefSuffix, name)
		}
		in[f] = sec.Value
	}
	return in, nil
}
