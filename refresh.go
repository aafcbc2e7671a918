package flowcred

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// readOpts are the options of one material request.
type readOpts struct {
	// minTTL: the token served must have at least this much life left.
	minTTL time.Duration
	// force refreshes even when the cached token is fresh.
	force bool
	// background marks a refresh by the scheduler, which does not count as
	// a read for deciding what is "recently read".
	background bool
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

// materialResult carries a locked read's outcome to the reader.
type materialResult struct {
	mat  *material
	resp *logical.Response
	err  error
}

// material returns a handle's credential material, refreshing it when the
// cached token is not fresh (or when force is set). Exactly one of the
// results is non-nil, except that a served material may come with a
// response carrying warnings.
//
// Everything after taking the handle's lock runs detached from the reader:
// a refresh, once sent, runs to completion (bounded by http_timeout) and
// stores its result even when the reader hangs up, because a rotating
// provider has spent the refresh token it was sent. The reader waits on its
// own context; its cancellation is never a provider failure.
func (b *backend) material(ctx context.Context, s logical.Storage, handle string, o readOpts) (*material, *logical.Response, error) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	now := b.now()
	if hc := b.handles.peek(handle); hc != nil && !o.force {
		if snap := hc.snap.Load(); b.servable(snap, cfg, o.minTTL, now) {
			if !o.background {
				b.touched(hc, handle, cfg, snap.mat, now)
			}
			return snap.mat, nil, nil
		}
	}

	hc, err := b.handles.lock(ctx, handle)
	if err != nil {
		return nil, nil, err
	}
	done := make(chan materialResult, 1)
	go func() {
		defer b.handles.unlock(handle, hc)
		m, r, err := b.materialLocked(context.WithoutCancel(ctx), s, hc, handle, o, cfg, now)
		done <- materialResult{m, r, err}
	}()
	select {
	case r := <-done:
		return r.mat, r.resp, r.err
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// materialLocked is material with the handle's lock held: load, answer from
// the cache if that is allowed, else refresh upstream and commit.
func (b *backend) materialLocked(ctx context.Context, s logical.Storage, hc *handleCache, handle string, o readOpts, cfg *configEntry, waitStart time.Time) (*material, *logical.Response, error) {
	seen := hc.resets.Load()
	snap, err := b.loadSnapshot(ctx, s, hc, handle, seen)
	if err != nil {
		return nil, nil, err
	}
	if snap == nil {
		return nil, logical.ErrorResponse("no binding for handle %q", handle), nil
	}
	now := b.now()
	if m := b.cachedAnswer(snap, cfg, o, waitStart, now); m != nil {
		if !o.background {
			b.touched(hc, handle, cfg, m, now)
		}
		return m, nil, nil
	}
	if !o.background {
		hc.touch(now)
	}
	inputs, missingResp, err := b.resolveInputs(ctx, s, handle, snap.binding)
	if err != nil || missingResp != nil {
		return nil, missingResp, err
	}
	if !kindSpecs[snap.binding.Kind].upstream {
		if ferr := checkStaticInputs(snap.binding, inputs); ferr != nil {
			return nil, logical.ErrorResponse("handle %q: %s", handle, ferr.Error()), nil
		}
		mat := staticMaterial(handle, snap.binding, inputs, now)
		hc.publish(&snapshot{binding: snap.binding, state: snap.state, mat: mat, epoch: snap.epoch}, seen)
		return mat, nil, nil
	}

	// A failure that happened while this request waited for the lock
	// answers it too: concurrent readers cause one upstream request, even
	// when it fails.
	if f := hc.lastFailure; f != nil && !o.force && (!f.at.Before(waitStart) || now.Before(f.retryAfter)) {
		return b.failureAnswer(handle, snap, f.err, o.minTTL, now)
	}

	st := &tokenState{}
	if snap.state != nil {
		cp := *snap.state
		st = &cp
	}
	st.BindingID = snap.binding.ID
	fp := inputsFingerprint(snap.binding, inputs)
	if !o.force && st.Status.Health == healthNeedsReauth && st.ReauthFingerprint == fp {
		ue := &upstreamError{class: classReauth, code: st.Status.LastErrorCode, msg: st.Status.LastError}
		return b.failureAnswer(handle, snap, ue, o.minTTL, now)
	}

	// The refresh token to send: the newest rotated one, unless an operator
	// has configured a different one since.
	origin := hashSecret(inputs["refresh_token"])
	refreshToken := inputs["refresh_token"]
	if st.RefreshToken != "" && st.RefreshOrigin == origin {
		refreshToken = st.RefreshToken
	}
	tok, ue := b.refreshUpstream(ctx, cfg, snap.binding, inputs, refreshToken)
	now = b.now()
	if tok != nil && tok.RefreshToken != "" && tok.RefreshToken != refreshToken {
		// Kept even when the rest of the answer is refused: the provider
		// has rotated, and the token sent is spent.
		st.RefreshToken, st.RefreshOrigin = tok.RefreshToken, origin
	}
	if ue != nil {
		b.recordFailure(ctx, s, hc, handle, snap, st, ue, fp, now, seen)
		return b.failureAnswer(handle, snap, ue, o.minTTL, now)
	}
	return b.commit(ctx, s, hc, handle, snap, st, tok, cfg, now, seen)
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

// refreshUpstream asks the provider for a token, bounded by http_timeout.
// On failure the error is classified and scrubbed of every secret the
// request carried; the token is also returned when it was received but
// refused, so that a rotated refresh token in it is not lost.
func (b *backend) refreshUpstream(ctx context.Context, cfg *configEntry, e *bindingEntry, inputs map[string]string, refreshToken string) (*upstreamToken, *upstreamError) {
	tctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
	defer cancel()
	tok, err := b.fetchToken(tctx, e, inputs, refreshToken)
	if err == nil {
		if err = checkUpstreamToken(tok); err == nil {
			return tok, nil
		}
	}
	ue := classifyUpstream(err)
	ue.scrub(scrubList(inputs, refreshToken))
	return tok, ue
}

// commit stores a successful refresh, then publishes it. The rotated
// refresh token is in storage before the new access token is handed out.
func (b *backend) commit(ctx context.Context, s logical.Storage, hc *handleCache, handle string, snap *snapshot, st *tokenState, tok *upstreamToken, cfg *configEntry, now time.Time, seen uint64) (*material, *logical.Response, error) {
	st.AccessToken = tok.AccessToken
	st.TokenType = normalizeTokenType(tok.TokenType)
	st.ObtainedAt = now
	st.Expiry = tokenExpiry(tok, cfg, now)
	st.Generation = snap.binding.Generation
	st.ReauthFingerprint = ""
	st.Status = bindingStatus{Health: healthOK, LastRefreshAt: now}
	if err := putTokenState(ctx, s, handle, st); err != nil {
		// Keep the state, with its possibly rotated refresh token, and write
		// it before anything else on the next request (or at Clean).
		hc.pending = st
		hc.snap.Store(nil)
		b.Logger().Error("storing refreshed token failed; kept in memory and retried on next read", "handle", handle, "error", err)
		return nil, nil, fmt.Errorf("storing the refreshed token of %q: %w", handle, err)
	}
	hc.lastFailure = nil
	mat := upstreamMaterial(handle, snap.binding, st)
	hc.publish(&snapshot{binding: snap.binding, state: st, mat: mat, epoch: snap.epoch}, seen)
	b.scheduler.schedule(handle, b.backgroundDue(cfg, mat))
	b.Logger().Debug("token refreshed", "handle", handle, "kind", snap.binding.Kind, "expires_at", st.Expiry.UTC().Format(time.RFC3339))
	return mat, nil, nil
}

// loadSnapshot returns the handle's current snapshot, reading storage when
// the in-memory one was dropped. Called with the handle's lock held; seen
// is the handle's reset count when the caller started.
func (b *backend) loadSnapshot(ctx context.Context, s logical.Storage, hc *handleCache, handle string, seen uint64) (*snapshot, error) {
	epoch := b.secretsEpoch.Load()
	if hc.pending == nil {
		if snap := hc.snap.Load(); snap != nil && (snap.mat == nil || !snap.mat.static || snap.epoch == epoch) {
			return snap, nil
		}
	}
	be, err := getBinding(ctx, s, handle)
	if err != nil {
		return nil, err
	}
	if p := hc.pending; p != nil {
		// A state whose write failed belongs to the binding it was obtained
		// under; a binding deleted (and maybe created again) since never
		// sees it.
		if be != nil && p.BindingID == be.ID {
			if err := putTokenState(ctx, s, handle, p); err != nil {
				return nil, fmt.Errorf("storing the pending token state of %q: %w", handle, err)
			}
		}
		hc.pending = nil
		hc.snap.Store(nil)
	}
	if be == nil {
		return nil, nil
	}
	st, err := getTokenState(ctx, s, handle)
	if err != nil {
		return nil, err
	}
	if st != nil && st.BindingID != be.ID {
		st = nil // left behind by an earlier binding of the same handle
	}
	snap := &snapshot{binding: be, state: st, epoch: epoch}
	if st != nil && st.AccessToken != "" && st.Generation == be.Generation && kindSpecs[be.Kind].upstream {
		snap.mat = upstreamMaterial(handle, be, st)
		if st.Status.Health == healthNeedsReauth {
			snap.mat.warning = fmt.Sprintf("handle %q needs re-authorization: %s", handle, st.Status.LastError)
		}
		if cfg := b.config.Load(); cfg != nil {
			b.scheduler.schedule(handle, b.backgroundDue(cfg, snap.mat))
		}
	}
	hc.publish(snap, seen)
	return snap, nil
}

// resolveInputs returns the binding's secret-capable inputs by field,
// reading referenced secrets. A missing secret is a 400 naming the field
// and the secret.
func (b *backend) resolveInputs(ctx context.Context, s logical.Storage, handle string, e *bindingEntry) (map[string]string, *logical.Response, error) {
	in := make(map[string]string, len(e.Inline)+len(e.Refs))
	for f, v := range e.Inline {
		in[f] = v
	}
	for f, name := range e.Refs {
		sec, err := getSecret(ctx, s, name)
		if err != nil {
			return nil, nil, err
		}
		if sec == nil {
			return nil, logical.ErrorResponse("handle %q: field %s%s references secret %q, which does not exist",
				handle, f, secretRefSuffix, name), nil
		}
		in[f] = sec.Value
	}
	return in, nil, nil
}

// recordFailure updates and stores the status after a failed refresh.
func (b *backend) recordFailure(ctx context.Context, s logical.Storage, hc *handleCache, handle string, snap *snapshot, st *tokenState, ue *upstreamError, fp string, now time.Time, seen uint64) {
	st.Status.Health = ue.health()
	st.Status.LastError = ue.Error()
	st.Status.LastErrorCode = ue.code
	st.Status.LastErrorAt = now
	st.Status.ConsecutiveFailures++
	if ue.class == classReauth {
		st.ReauthFingerprint = fp
	}
	f := &refreshFailure{at: now, err: ue}
	if ue.class != classReauth {
		// Back off: honour Retry-After, else grow with consecutive failures.
		backoff := time.Duration(1<<min(st.Status.ConsecutiveFailures-1, 5)) * time.Second
		if ue.retryAfter > backoff {
			backoff = ue.retryAfter
		}
		f.retryAfter = now.Add(min(backoff, 5*time.Minute))
	}
	hc.lastFailure = f
	logFn := b.Logger().Warn
	if ue.class == classReauth {
		logFn = b.Logger().Error
	}
	logFn("token refresh failed", "handle", handle, "kind", snap.binding.Kind,
		"token_endpoint_host", hostOf(snap.binding.tokenURL()), "status", ue.status, "error_code", ue.code,
		"consecutive_failures", st.Status.ConsecutiveFailures)
	if err := putTokenState(ctx, s, handle, st); err != nil {
		// The state may hold a refresh token rotated by a refused answer:
		// keep it and write it first, like a failed commit.
		hc.pending = st
		hc.snap.Store(nil)
		b.Logger().Warn("storing binding status failed; kept in memory and retried on next read", "handle", handle, "error", err)
		return
	}
	// Keep serving the cached token (if any) with the new status; while the
	// grant is refused, every read that serves it says so.
	mat := snap.mat
	if mat != nil && ue.class == classReauth {
		cp := *mat
		cp.warning = fmt.Sprintf("handle %q needs re-authorization: %s; serving the cached token until it expires at %s",
			handle, ue.Error(), mat.expiry.UTC().Format(time.RFC3339))
		mat = &cp
	}
	hc.publish(&snapshot{binding: snap.binding, state: st, mat: mat, epoch: snap.epoch}, seen)
}

// failureAnswer serves the cached token when a transient failure allows it
// (with a warning), else returns the error the contract prescribes.
func (b *backend) failureAnswer(handle string, snap *snapshot, ue *upstreamError, minTTL time.Duration, now time.Time) (*material, *logical.Response, error) {
	switch ue.class {
	case classReauth:
		return nil, logical.ErrorResponse("handle %q needs re-authorization: %s", handle, ue.Error()), nil
	case classConfig:
		return nil, logical.ErrorResponse("handle %q: token request refused: %s", handle, ue.Error()), nil
	}
	if m := snap.mat; m != nil && m.expiry.After(now) {
		cp := *m
		cp.warning = fmt.Sprintf("handle %q is degraded: %s; serving the cached token, which expires at %s",
			handle, ue.Error(), m.expiry.UTC().Format(time.RFC3339))
		return &cp, nil, nil
	}
	return nil, nil, logical.CodedError(502, fmt.Sprintf("handle %q: %s, and no cached token is valid", handle, ue.Error()))
}
