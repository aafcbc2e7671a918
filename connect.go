package flowcred

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
)

// Connecting a refresh-token binding (design.md, "Connecting"): the
// authorization-code grant with PKCE here, the device grant in device.go.
// The refresh token obtained goes into the binding's token state, exactly
// like a rotated one, and never leaves the plugin.

// authStateTTL is how long an authorization request may take.
const authStateTTL = 10 * time.Minute

// maxPendingAuth bounds the pending authorization requests of a mount.
const maxPendingAuth = 10000

// pendingAuth is a started authorization-code grant, kept in memory: a
// plugin reload drops it, and the user starts again.
type pendingAuth struct {
	handle, bindingID string
	verifier          string
	redirectURI       string
	expires           time.Time
}

// authStates holds pending authorization requests by state.
type authStates struct {
	mu sync.Mutex
	m  map[string]*pendingAuth
}

// add stores p under a new state (256 random bits) and returns the state.
func (a *authStates) add(p *pendingAuth, now time.Time) (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	state := base64.RawURLEncoding.EncodeToString(raw[:])
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]*pendingAuth{}
	}
	for s, q := range a.m {
		if !now.Before(q.expires) {
			delete(a.m, s)
		}
	}
	if len(a.m) >= maxPendingAuth {
		return "", readErrorf(http.StatusTooManyRequests, "too many pending authorization requests (%d); complete or let them expire", maxPendingAuth)
	}
	a.m[state] = p
	return state, nil
}

// has reports whether state is a pending, unexpired request.
func (a *authStates) has(state string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.m[state]
	return p != nil && now.Before(p.expires)
}

// take returns and removes the pending request of state, if it is for
// handle (empty: any) and has not expired. A state for another handle is
// refused and kept, so that a wrong request cannot cancel someone else's.
func (a *authStates) take(state, handle string, now time.Time) (*pendingAuth, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.m[state]
	switch {
	case state == "" || p == nil:
		return nil, readErrorf(http.StatusBadRequest, "unknown or already used state; start again with bindings/<handle>/authorize")
	case handle != "" && p.handle != handle:
		return nil, readErrorf(http.StatusBadRequest, "state was issued for another handle")
	}
	delete(a.m, state)
	if !now.Before(p.expires) {
		return nil, readErrorf(http.StatusBadRequest, "state expired at %s; start again with bindings/%s/authorize", p.expires.UTC().Format(time.RFC3339), p.handle)
	}
	return p, nil
}

// connectable returns a binding of a kind that can be connected, with its
// resolved inputs.
func (b *backend) connectable(ctx context.Context, s logical.Storage, handle string) (*bindingEntry, *kind, map[string]string, error) {
	e, err := getBinding(ctx, s, handle)
	if err != nil {
		return nil, nil, nil, err
	}
	if e == nil {
		return nil, nil, nil, errNotBound(handle)
	}
	k := kindOf(e.Kind)
	if !k.rotates {
		return nil, nil, nil, readErrorf(http.StatusBadRequest, "handle %q is of kind %s, which has no refresh token to connect", handle, e.Kind)
	}
	in, err := b.resolveInputs(ctx, s, handle, e)
	if err != nil {
		return nil, nil, nil, err
	}
	return e, k, in, nil
}

// authorizationURL and deviceURL are the binding's effective endpoints.
func (e *bindingEntry) authorizationURL() string {
	if u := e.Plain["authorization_url"]; u != "" {
		return u
	}
	return kindOf(e.Kind).authorizationURL
}

func (e *bindingEntry) deviceURL() string {
	if u := e.Plain["device_authorization_url"]; u != "" {
		return u
	}
	return kindOf(e.Kind).deviceURL
}

// reservedAuthParams are set by the authorization request itself.
var reservedAuthParams = map[string]bool{
	"state": true, "code_challenge": true, "code_challenge_method": true, "client_id": true,
	"redirect_uri": true, "response_type": true, "scope": true,
}

// startAuthorization builds the authorization URL of a PKCE (S256)
// authorization-code grant, with x/oauth2's AuthCodeURL, and keeps the
// verifier.
func (b *backend) startAuthorization(ctx context.Context, s logical.Storage, handle, redirectURI string, scopes []string, extra map[string]string) (map[string]interface{}, error) {
	e, k, in, err := b.connectable(ctx, s, handle)
	if err != nil {
		return nil, err
	}
	if redirectURI == "" {
		redirectURI = e.Plain["redirect_uri"]
	}
	if redirectURI == "" {
		return nil, readErrorf(http.StatusBadRequest, "redirect_uri: required (give it here, or set the binding's redirect_uri)")
	}
	if ferr := validateTokenURL("redirect_uri", redirectURI); ferr != nil {
		return nil, readErrorf(http.StatusBadRequest, "%s", ferr.Error())
	}
	authURL := e.authorizationURL()
	if authURL == "" {
		return nil, readErrorf(http.StatusBadRequest, "handle %q has no authorization_url; set it on the binding", handle)
	}
	if scopes == nil {
		scopes = e.Scopes
	}
	keys := make([]string, 0, len(extra))
	for name := range extra {
		if reservedAuthParams[name] {
			return nil, readErrorf(http.StatusBadRequest, "extra_params: parameter %q is set by flowcred", name)
		}
		keys = append(keys, name)
	}
	sort.Strings(keys)
	now := b.now()
	verifier := oauth2.GenerateVerifier()
	state, err := b.authStates.add(&pendingAuth{handle: handle, bindingID: e.ID, verifier: verifier, redirectURI: redirectURI, expires: now.Add(authStateTTL)}, now)
	if err != nil {
		return nil, err
	}
	conf := &oauth2.Config{ClientID: in["client_id"], Endpoint: oauth2.Endpoint{AuthURL: authURL}, RedirectURL: redirectURI, Scopes: scopes}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	for name, v := range k.authParams {
		opts = append(opts, oauth2.SetAuthURLParam(name, v))
	}
	for _, name := range keys {
		opts = append(opts, oauth2.SetAuthURLParam(name, extra[name]))
	}
	return map[string]interface{}{
		"auth_url":     conf.AuthCodeURL(state, opts...),
		"state":        state,
		"expires_at":   now.Add(authStateTTL).UTC().Format(time.RFC3339),
		"redirect_uri": redirectURI,
	}, nil
}

// completeAuthorization exchanges a code for the pending request of state
// (for handle, or any handle when empty: the public callback) and stores
// the refresh token. It returns the handle connected.
func (b *backend) completeAuthorization(ctx context.Context, s logical.Storage, handle, state, code string) (string, error) {
	p, err := b.authStates.take(state, handle, b.now())
	if err != nil {
		return "", err
	}
	if code == "" {
		return p.handle, readErrorf(http.StatusBadRequest, "code: required")
	}
	e, _, in, err := b.connectable(ctx, s, p.handle)
	if err != nil {
		return p.handle, err
	}
	if e.ID != p.bindingID {
		return p.handle, readErrorf(http.StatusBadRequest, "binding %q was deleted and created again since the authorization began; start again", p.handle)
	}
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return p.handle, err
	}
	if !b.writableForRefresh() {
		return p.handle, logical.ErrReadOnly // a code is spent once: only where its token can be stored
	}
	// The exchange and the store run to completion even if the caller
	// hangs up: the code is spent once sent.
	ctx = context.WithoutCancel(ctx)
	tctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
	defer cancel()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {p.redirectURI}, "code_verifier": {p.verifier}}
	tok, err := b.clientGrant(tctx, &grantCall{binding: e, inputs: in}, form)
	return p.handle, b.storeConnected(ctx, s, p.handle, e, in, tok, err, append(scrubList(in, code), p.verifier))
}

// storeConnected keeps the refresh token a connect obtained in the
// binding's token state, with its access token, under the handle's lock.
// The refresh token replaces a configured one for as long as that stays
// configured, like a rotated one.
func (b *backend) storeConnected(ctx context.Context, s logical.Storage, handle string, e *bindingEntry, in map[string]string, tok *upstreamToken, err error, secrets []string) error {
	if err == nil {
		err = checkUpstreamToken(tok)
	}
	if err == nil && tok.RefreshToken == "" {
		err = &upstreamError{class: classConfig, msg: "the provider issued no refresh token (ask for offline access: for Google access_type=offline, which flowcred sends; for OIDC providers the offline_access scope)"}
	}
	if err != nil {
		ue := classifyUpstream(err)
		ue.scrub(secrets)
		if ue.class == classTransient {
			return readErrorf(http.StatusBadGateway, "handle %q: connecting failed: %s", handle, ue.Error())
		}
		return readErrorf(http.StatusBadRequest, "handle %q: connecting failed: %s", handle, ue.Error())
	}
	cfg, cerr := b.getConfig(ctx, s)
	if cerr != nil {
		return cerr
	}
	hc, lerr := b.handles.lock(ctx, handle)
	if lerr != nil {
		return lerr
	}
	defer b.handles.unlock(handle, hc)
	cur, gerr := getBinding(ctx, s, handle)
	if gerr != nil {
		return gerr
	}
	if cur == nil || cur.ID != e.ID {
		return readErrorf(http.StatusBadRequest, "binding %q was deleted or replaced while connecting; start again", handle)
	}
	st := &tokenState{}
	old, gerr := b.currentTokenState(ctx, s, handle, cur)
	if gerr != nil {
		return gerr
	}
	if old != nil && old.BindingID == cur.ID {
		cp := *old
		st = &cp
	} else {
		old = nil
	}
	st.BindingID = cur.ID
	st.RefreshToken, st.RefreshOrigin, st.RefreshEndpoint = tok.RefreshToken, hashSecret(in[refreshTokenField]), refreshEndpoint(cur)
	st.applyToken(tok, cfg, cur.Generation, b.now())
	if perr := putTokenState(ctx, s, handle, st); perr != nil {
		return fmt.Errorf("storing the connected token of %q: %w", handle, perr)
	}
	hc.lastFailure = nil
	hc.reset()
	b.metrics.rotations.Inc()
	b.recordHealth(ctx, s, handle, cur, old, st, true)
	return nil
}

// isReadError reports whether err is an answer for the caller (not an
// internal failure).
func isReadError(err error) bool {
	var re *readError
	return errors.As(err, &re)
}

// splitScopes reads scopes given as a list or as one string split on
// spaces and commas (design.md).
func splitScopes(v []string) []string {
	var out []string
	for _, s := range v {
		out = append(out, strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })...)
	}
	return out
}
