package flowcred

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Refreshing upstream, with the handle's lock held (lifecycle.go): grant,
// then commit a success (persist, then publish) or record a failure.

// refresh obtains a new token through the kind's grant.
func (b *backend) refresh(ctx context.Context, s logical.Storage, hc *handleCache, handle string, snap *snapshot, k *kind, inputs map[string]string, o readOpts, cfg *configEntry, now time.Time, seen uint64) (*material, error) {
	st := &tokenState{}
	if snap.state != nil {
		cp := *snap.state
		st = &cp
	}
	st.BindingID = snap.binding.ID
	g := &grantCall{handle: handle, binding: snap.binding, inputs: inputs}
	var origin string
	if k.rotates {
		// The refresh token to send: the newest rotated (or connected)
		// one, unless an operator has configured a different one since.
		origin = hashSecret(inputs[refreshTokenField])
		g.refreshToken = inputs[refreshTokenField]
		if rt := storedRefreshToken(snap.binding, st, origin); rt != "" {
			g.refreshToken = rt
		}
		if g.refreshToken == "" {
			return nil, errNeedsAuthorization(handle, st)
		}
	}
	fp := inputsFingerprint(snap.binding, inputs)
	if !o.force && st.Status.Health == healthNeedsReauth && st.ReauthFingerprint == fp {
		ue := &upstreamError{class: classReauth, code: st.Status.LastErrorCode, msg: st.Status.LastError}
		return b.failureAnswer(handle, snap, ue, o, now)
	}

	if !b.writableForRefresh() {
		return nil, logical.ErrReadOnly
	}
	tok, ue := b.refreshUpstream(ctx, cfg, k, g)
	now = b.now()
	if k.rotates && tok != nil && tok.RefreshToken != "" && tok.RefreshToken != g.refreshToken {
		// Kept even when the rest of the answer is refused: the provider
		// has rotated, and the token sent is spent.
		st.RefreshToken, st.RefreshOrigin, st.RefreshEndpoint = tok.RefreshToken, origin, refreshEndpoint(snap.binding)
	}
	if ue != nil {
		b.recordFailure(ctx, s, hc, handle, snap, st, ue, fp, now, seen)
		return b.failureAnswer(handle, snap, ue, o, now)
	}
	return b.commit(ctx, s, hc, handle, snap, st, tok, cfg, o, now, seen)
}

// refreshUpstream runs the grant, bounded by http_timeout. On failure the
// error is classified and scrubbed of every secret the request carried; the
// token is also returned when it was received but refused, so that a
// rotated refresh token in it is not lost.
func (b *backend) refreshUpstream(ctx context.Context, cfg *configEntry, k *kind, g *grantCall) (*upstreamToken, *upstreamError) {
	tctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
	defer cancel()
	start := time.Now()
	tok, err := k.grant(tctx, b, g)
	if err == nil {
		if err = checkUpstreamToken(tok); err == nil {
			b.grantDone(g.handle, k.Name, nil, time.Since(start), cfg)
			return tok, nil
		}
	}
	ue := classifyUpstream(err)
	ue.scrub(scrubList(g.inputs, g.refreshToken))
	b.grantDone(g.handle, k.Name, ue, time.Since(start), cfg)
	return tok, ue
}

// commit stores a successful refresh and publishes it. A refresh token
// the provider rotated is in storage before the new access token is handed
// out. A refresh that did not rotate answers the reader first and writes
// its state after (still under the handle's lock): a crash in between costs
// one extra refresh on the next read, and loses nothing.
func (b *backend) commit(ctx context.Context, s logical.Storage, hc *handleCache, handle string, snap *snapshot, st *tokenState, tok *upstreamToken, cfg *configEntry, o readOpts, now time.Time, seen uint64) (*material, error) {
	// Written before the answer: a rotated refresh token, and any change of
	// health (a recovery is durable before anyone is told).
	durableFirst := snap.state == nil || st.RefreshToken != snap.state.RefreshToken || snap.state.Status.Health != healthOK
	st.applyToken(tok, cfg, snap.binding.Generation, now)
	if st.RefreshToken != "" && st.RefreshEndpoint == "" {
		st.RefreshEndpoint = refreshEndpoint(snap.binding) // a state stored before the field
	}
	mat := upstreamMaterial(handle, snap.binding, st)
	publish := func() {
		hc.lastFailure = nil
		hc.publish(&snapshot{binding: snap.binding, state: st, mat: mat, epoch: snap.epoch}, seen)
		b.scheduler.schedule(handle, b.backgroundDue(cfg, mat))
	}
	early := !durableFirst && o.deliver != nil
	if early {
		publish()
		o.deliver(mat)
	}
	if err := putTokenState(ctx, s, handle, st); err != nil {
		// Keep the state, with its possibly rotated refresh token, and write
		// it before anything else on the next request (or at Clean).
		hc.pending = st
		hc.snap.Store(nil)
		b.Logger().Error("storing refreshed token failed; kept in memory and retried on next read", "handle", handle, "error", err)
		return nil, fmt.Errorf("storing the refreshed token of %q: %w", handle, err)
	}
	if !early {
		publish()
	}
	if snap.state == nil || st.RefreshToken != snap.state.RefreshToken {
		if st.RefreshToken != "" {
			b.metrics.rotations.Inc()
		}
	}
	b.recordHealth(ctx, s, handle, snap.binding, snap.state, st, false)
	b.Logger().Debug("token refreshed", "handle", handle, "kind", snap.binding.Kind, "expires_at", st.Expiry.UTC().Format(time.RFC3339))
	return mat, nil
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
	b.recordHealth(ctx, s, handle, snap.binding, snap.state, st, false)
	// Keep serving the cached token (if any) with the new status; while the
	// grant is refused, every read that serves it says so.
	mat := snap.mat
	if mat != nil && ue.class == classReauth {
		cp := *mat
		cp.warning = reauthWarning(handle, ue, mat)
		mat = &cp
	}
	hc.publish(&snapshot{binding: snap.binding, state: st, mat: mat, epoch: snap.epoch}, seen)
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
	if st != nil && st.AccessToken != "" && st.Generation == be.Generation && kindOf(be.Kind).upstream() {
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
