package flowcred

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/net/http/httpguts"
)

// tokenState is a handle's token and refresh state, stored seal-wrapped at
// tokens/<handle> so that a restart or plugin reload does not force a refresh.
type tokenState struct {
	// AccessToken is the last token obtained upstream.
	AccessToken string `json:"access_token,omitempty"`
	// TokenType as the provider named it, normalised (Bearer).
	TokenType string `json:"token_type,omitempty"`
	// Expiry of AccessToken; zero means none is known.
	Expiry time.Time `json:"expiry,omitempty"`
	// ObtainedAt is when AccessToken was issued to us.
	ObtainedAt time.Time `json:"obtained_at,omitempty"`
	// Generation is the binding generation AccessToken was obtained under.
	Generation uint64 `json:"generation"`
	// RefreshToken is the newest refresh token the provider gave us. It
	// replaces the binding's configured one while RefreshOrigin matches.
	RefreshToken string `json:"refresh_token,omitempty"`
	// RefreshOrigin is a hash of the configured refresh token that
	// RefreshToken descends from. When an operator configures a different
	// refresh token, the hashes differ and the configured one is used.
	RefreshOrigin string `json:"refresh_origin,omitempty"`
	// ReauthFingerprint is a hash of the inputs that were refused with a
	// re-authorization error; while they are unchanged, reads fail fast
	// instead of asking the provider again.
	ReauthFingerprint string `json:"reauth_fingerprint,omitempty"`
	// Status is what binding reads show.
	Status bindingStatus `json:"status"`
}

// bindingStatus is the status object of design.md.
type bindingStatus struct {
	Health              string    `json:"health,omitempty"`
	LastRefreshAt       time.Time `json:"last_refresh_at,omitempty"`
	LastError           string    `json:"last_error,omitempty"`
	LastErrorCode       string    `json:"last_error_code,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures,omitempty"`
}

func getTokenState(ctx context.Context, s logical.Storage, handle string) (*tokenState, error) {
	entry, err := s.Get(ctx, tokenStoragePrefix+handle)
	if err != nil {
		return nil, fmt.Errorf("reading token state of %q: %w", handle, err)
	}
	if entry == nil {
		return nil, nil
	}
	var st tokenState
	if err := entry.DecodeJSON(&st); err != nil {
		return nil, fmt.Errorf("decoding token state of %q: %w", handle, err)
	}
	return &st, nil
}

func putTokenState(ctx context.Context, s logical.Storage, handle string, st *tokenState) error {
	entry, err := logical.StorageEntryJSON(tokenStoragePrefix+handle, st)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing token state of %q: %w", handle, err)
	}
	return nil
}

func statusData(e *bindingEntry, st *tokenState, missing []string) map[string]interface{} {
	out := map[string]interface{}{
		"health":               healthUnknown,
		"consecutive_failures": 0,
	}
	if e.Kind == kindAPIToken {
		out["health"] = healthOK
	}
	if st != nil {
		if st.Status.Health != "" {
			out["health"] = st.Status.Health
		}
		if !st.Status.LastRefreshAt.IsZero() {
			out["last_refresh_at"] = st.Status.LastRefreshAt.UTC().Format(time.RFC3339)
		}
		if !st.Expiry.IsZero() && st.AccessToken != "" {
			out["expires_at"] = st.Expiry.UTC().Format(time.RFC3339)
		}
		if st.Status.LastError != "" {
			out["last_error"] = st.Status.LastError
			out["last_error_at"] = st.Status.LastErrorAt.UTC().Format(time.RFC3339)
		}
		if st.Status.LastErrorCode != "" {
			out["last_error_code"] = st.Status.LastErrorCode
		}
		out["consecutive_failures"] = st.Status.ConsecutiveFailures
	}
	if len(missing) > 0 {
		out["missing_secrets"] = missing
		out["last_error"] = "missing " + strings.Join(missing, ", ")
		if e.Kind == kindAPIToken {
			out["health"] = healthUnknown
		}
	}
	return out
}

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

// material returns a handle's credential material, refreshing it when the
// cached token is not fresh (or when force is set). Exactly one of the
// results is non-nil, except that a served material may come with a
// response carrying warnings.
func (b *backend) material(ctx context.Context, s logical.Storage, handle string, o readOpts) (*material, *logical.Response, error) {
	minTTL, force := o.minTTL, o.force
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	hc := b.handles.get(handle)
	now := b.now()
	if !force {
		if snap := hc.snap.Load(); b.servable(snap, cfg, minTTL, now) {
			if !o.background {
				hc.touch(now)
			}
			return snap.mat, nil, nil
		}
	}

	waitStart := now
	if err := hc.acquire(ctx); err != nil {
		return nil, nil, err
	}
	defer hc.release()
	if !o.background {
		hc.touch(b.now())
	}

	snap, err := b.loadSnapshot(ctx, s, hc, handle)
	if err != nil {
		return nil, nil, err
	}
	if snap == nil {
		return nil, logical.ErrorResponse("no binding for handle %q", handle), nil
	}
	now = b.now()
	if !force && b.servable(snap, cfg, minTTL, now) {
		return snap.mat, nil, nil
	}
	// A refresh that completed while this request waited answers it too,
	// even when the provider issues less life than min_ttl asks for.
	if m := snap.mat; !force && m != nil && !m.static && m.obtainedAt.After(waitStart) && m.expiry.After(now) {
		return m, nil, nil
	}
	spec := kindSpecs[snap.binding.Kind]
	inputs, missingResp, err := b.resolveInputs(ctx, s, handle, snap.binding)
	if err != nil || missingResp != nil {
		return nil, missingResp, err
	}
	if !spec.upstream {
		mat := staticMaterial(handle, snap.binding, inputs, now)
		hc.snap.Store(&snapshot{binding: snap.binding, state: snap.state, mat: mat, epoch: snap.epoch})
		return mat, nil, nil
	}

	// A failure that happened while this request waited for the lock
	// answers it too: concurrent readers cause one upstream request, even
	// when it fails.
	if f := hc.lastFailure; f != nil && !force && (!f.at.Before(waitStart) || now.Before(f.retryAfter)) {
		return b.failureAnswer(handle, snap, f.err, minTTL, now)
	}

	st := &tokenState{}
	if snap.state != nil {
		cp := *snap.state
		st = &cp
	}
	fp := inputsFingerprint(snap.binding, inputs)
	if !force && st.Status.Health == healthNeedsReauth && st.ReauthFingerprint == fp {
		ue := &upstreamError{class: classReauth, code: st.Status.LastErrorCode, msg: st.Status.LastError}
		return b.failureAnswer(handle, snap, ue, minTTL, now)
	}

	// Choose the refresh token: the newest rotated one, unless an operator
	// has configured a different one since.
	origin := hashSecret(inputs["refresh_token"])
	refreshToken := inputs["refresh_token"]
	if st.RefreshToken != "" && st.RefreshOrigin == origin {
		refreshToken = st.RefreshToken
	}

	tctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
	tok, err := b.fetchToken(tctx, snap.binding, inputs, refreshToken)
	cancel()
	if err == nil {
		err = checkUpstreamToken(tok)
	}
	now = b.now()
	if err != nil {
		ue := classifyUpstream(err)
		b.recordFailure(ctx, s, hc, handle, snap, st, ue, fp, now)
		return b.failureAnswer(handle, snap, ue, minTTL, now)
	}

	// Success. Persist before handing anything out: a rotated refresh token
	// must be in storage before the provider's new access token is used.
	if tok.RefreshToken != "" && tok.RefreshToken != refreshToken {
		st.RefreshToken = tok.RefreshToken
		st.RefreshOrigin = origin
	}
	st.AccessToken = tok.AccessToken
	st.TokenType = normalizeTokenType(tok.TokenType)
	st.ObtainedAt = now
	// expires_in counts from now on this node's clock; an absolute expiry
	// (a JWT's exp) is taken as is.
	st.Expiry = tok.Expiry
	if tok.ExpiresIn > 0 {
		st.Expiry = now.Add(tok.ExpiresIn)
	}
	if st.Expiry.IsZero() {
		st.Expiry = jwtExpiry(tok.AccessToken)
	}
	if st.Expiry.IsZero() || !st.Expiry.After(now) {
		st.Expiry = now.Add(cfg.DefaultTokenLifetime)
	}
	st.Generation = snap.binding.Generation
	st.ReauthFingerprint = ""
	st.Status = bindingStatus{Health: healthOK, LastRefreshAt: now}
	if err := putTokenState(ctx, s, handle, st); err != nil {
		// Keep the state, with its possibly rotated refresh token, and write
		// it before anything else on the next request.
		hc.pending = st
		hc.snap.Store(nil)
		b.Logger().Error("storing refreshed token failed; kept in memory and retried on next read", "handle", handle, "error", err)
		return nil, nil, fmt.Errorf("storing the refreshed token of %q: %w", handle, err)
	}
	hc.lastFailure = nil
	mat := upstreamMaterial(handle, snap.binding, st)
	hc.snap.Store(&snapshot{binding: snap.binding, state: st, mat: mat, epoch: snap.epoch})
	b.scheduler.schedule(handle, b.backgroundDue(cfg, mat))
	b.Logger().Debug("token refreshed", "handle", handle, "kind", snap.binding.Kind, "expires_at", st.Expiry.UTC().Format(time.RFC3339))
	return mat, nil, nil
}

// loadSnapshot returns the handle's current snapshot, reading storage when
// the in-memory one was dropped. Called with the handle's lock held.
func (b *backend) loadSnapshot(ctx context.Context, s logical.Storage, hc *handleCache, handle string) (*snapshot, error) {
	epoch := b.secretsEpoch.Load()
	if hc.pending != nil {
		if err := putTokenState(ctx, s, handle, hc.pending); err != nil {
			return nil, fmt.Errorf("storing the pending token state of %q: %w", handle, err)
		}
		hc.pending = nil
		hc.snap.Store(nil)
	}
	if snap := hc.snap.Load(); snap != nil && (snap.mat == nil || !snap.mat.static || snap.epoch == epoch) {
		return snap, nil
	}
	be, err := getBinding(ctx, s, handle)
	if err != nil {
		return nil, err
	}
	if be == nil {
		return nil, nil
	}
	st, err := getTokenState(ctx, s, handle)
	if err != nil {
		return nil, err
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
	hc.snap.Store(snap)
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
func (b *backend) recordFailure(ctx context.Context, s logical.Storage, hc *handleCache, handle string, snap *snapshot, st *tokenState, ue *upstreamError, fp string, now time.Time) {
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
		b.Logger().Warn("storing binding status failed", "handle", handle, "error", err)
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
	hc.snap.Store(&snapshot{binding: snap.binding, state: st, mat: mat, epoch: snap.epoch})
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

// maxTokenBytes bounds an access token taken from a provider.
const maxTokenBytes = 16 << 10

// checkUpstreamToken refuses a token that cannot be put in a header as is:
// a provider (or something in front of it) must not be able to inject
// headers into every connector request through the token or its type.
func checkUpstreamToken(tok *upstreamToken) error {
	bad := func(v string) bool {
		return !httpguts.ValidHeaderFieldValue(v) || strings.ContainsAny(v, "\r\n\t ")
	}
	switch {
	case tok.AccessToken == "":
		return &upstreamError{class: classTransient, msg: "token endpoint answered without an access_token"}
	case len(tok.AccessToken) > maxTokenBytes:
		return &upstreamError{class: classTransient, msg: fmt.Sprintf("token endpoint answered with an access token longer than %d bytes", maxTokenBytes)}
	case bad(tok.AccessToken):
		return &upstreamError{class: classTransient, msg: "token endpoint answered with an access token that is not a valid header value"}
	case tok.TokenType != "" && !isHTTPToken(tok.TokenType):
		return &upstreamError{class: classTransient, msg: "token endpoint answered with a token_type that is not a valid authentication scheme"}
	}
	return nil
}

// inputsFingerprint identifies the inputs a re-authorization error refers to.
func inputsFingerprint(e *bindingEntry, inputs map[string]string) string {
	keys := make([]string, 0, len(inputs))
	for k := range inputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00", e.Generation)
	for _, k := range keys {
		fmt.Fprintf(h, "%s\x00%s\x00", k, inputs[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashSecret(v string) string {
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

func normalizeTokenType(t string) string {
	if t == "" || strings.EqualFold(t, "bearer") {
		return "Bearer"
	}
	return t
}

// jwtExpiry returns the exp claim of a JWT access token, or zero. The token
// is not verified: the expiry only decides when to refresh.
func jwtExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return time.Time{}
	}
	secs, err := claims.Exp.Int64()
	if err != nil || secs <= 0 {
		return time.Time{}
	}
	return time.Unix(secs, 0)
}
