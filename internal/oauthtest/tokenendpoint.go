package oauthtest

import (
	"crypto"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TokenOptions script what a TokenEndpoint issues.
type TokenOptions struct {
	// AccessToken formats an issued access token from its number, 1, 2, ...
	// (default "at-%d-SECRET"; a constant string is issued as is).
	AccessToken string
	// TokenType of issued tokens (default "Bearer").
	TokenType string
	// ExpiresIn of issued tokens in seconds: 0 means 3600, a negative value
	// leaves expires_in out.
	ExpiresIn int
	// Scope, when set, is the scope of every issued token.
	Scope string
	// RefreshToken is the only refresh token the endpoint accepts; "" accepts
	// any. Others get 400 invalid_grant.
	RefreshToken string
	// Rotate issues a new refresh token (rotated-N-SECRET) with every refresh
	// grant, and from then on accepts only the latest.
	Rotate bool
	// OneSequence numbers access tokens and rotated refresh tokens from one
	// sequence (rotated-1-SECRET comes with at-2-SECRET); by default each
	// has its own (rotated-1-SECRET with at-1-SECRET).
	OneSequence bool
	// IssueRefreshToken, when set, comes with every token issued for any
	// grant (unless Rotate issues a new one), and is from then on the only
	// refresh token accepted: a provider that issues one with every
	// authorization. SetIssueRefreshToken changes it.
	IssueRefreshToken string
	// Grants are the grant types it serves (default refresh_token,
	// client_credentials and the JWT-bearer grant); others get 400
	// unsupported_grant_type. The authorization_code grant checks the code
	// and its PKCE verifier (SetAuthorizationCode), the JWT-bearer grant the
	// assertion's signature (Trust).
	Grants []string
	// Now is the endpoint's clock, for the ID tokens it issues (default
	// time.Now).
	Now func() time.Time
	// IDTokenLifetime of the ID tokens issued for assertions with a
	// target_audience claim (default one hour).
	IDTokenLifetime time.Duration
	// DeviceAuthorization, when set, is the answer (200, JSON) to requests
	// at DeviceAuthorizationURL: a device authorization endpoint (RFC 8628
	// section 3.1).
	DeviceAuthorization map[string]any
	// ConnState, when set, is called when a client connection to the
	// endpoint changes state (http.Server.ConnState).
	ConnState func(net.Conn, http.ConnState)
}

// TokenEndpoint is a scriptable fake token endpoint on 127.0.0.1 that needs
// no Node: an in-process issuer behind a FaultProxy, so every fault, gate
// and hold mode of the proxy applies to it (SetMode, FailNext, CloseGate,
// HoldNext, Observe, LastRequest, Count). In pass-through it issues numbered
// access tokens as TokenOptions say; Answer replaces what it issues with the
// test's own answers, RefuseNext refuses the next requests of a grant, and
// Trust makes it verify JWT-bearer assertions. It is also a revocation
// endpoint (RFC 7009) at RevocationURL and, with
// TokenOptions.DeviceAuthorization, a device authorization endpoint.
// TokenURL is the URL to bind.
type TokenEndpoint struct {
	*FaultProxy
	opts   TokenOptions
	issued atomic.Int64

	mu        sync.Mutex
	valid     string // the refresh token accepted now ("" = any)
	issueRT   string // the refresh token issued with every token ("" = none)
	seq       int    // rotations (and, with OneSequence, access tokens)
	answer    http.HandlerFunc
	refuse    map[string][]string // grant type: error codes to answer next
	grants    map[string]int64    // grant type: requests
	code      string              // the authorization code accepted ("" = any)
	challenge string              // its PKCE S256 challenge ("" = none)
	trusted   map[string]crypto.PublicKey
	assertion verifiedAssertion
	revoked   []revocation
}

// Paths of the endpoint's other endpoints, below URL().
const (
	revocationPath          = "/revoke"
	deviceAuthorizationPath = "/device"
)

// NewTokenEndpoint starts an endpoint; Close it when done.
func NewTokenEndpoint(o TokenOptions) *TokenEndpoint {
	if o.AccessToken == "" {
		o.AccessToken = "at-%d-SECRET"
	}
	if o.TokenType == "" {
		o.TokenType = "Bearer"
	}
	if o.ExpiresIn == 0 {
		o.ExpiresIn = 3600
	}
	if o.Grants == nil {
		o.Grants = []string{GrantRefreshToken, GrantClientCredentials, GrantJWTBearer}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IDTokenLifetime == 0 {
		o.IDTokenLifetime = time.Hour
	}
	e := &TokenEndpoint{opts: o, valid: o.RefreshToken, issueRT: o.IssueRefreshToken,
		refuse: map[string][]string{}, grants: map[string]int64{}}
	e.FaultProxy = newProxy(&url.URL{Scheme: "http", Host: "issuer.invalid"}, "/token", http.HandlerFunc(e.serveLocal), o.ConnState)
	return e
}

// StartTokenEndpoint is NewTokenEndpoint, closed when the test ends.
func StartTokenEndpoint(tb testing.TB, o TokenOptions) *TokenEndpoint {
	tb.Helper()
	e := NewTokenEndpoint(o)
	tb.Cleanup(e.Close)
	return e
}

// RevocationURL is the endpoint's token revocation endpoint (RFC 7009).
func (e *TokenEndpoint) RevocationURL() string { return e.URL() + revocationPath }

// DeviceAuthorizationURL is where TokenOptions.DeviceAuthorization is
// answered.
func (e *TokenEndpoint) DeviceAuthorizationURL() string { return e.URL() + deviceAuthorizationPath }

// Issued is the number of access tokens issued.
func (e *TokenEndpoint) Issued() int64 { return e.issued.Load() }

// RefreshToken is the refresh token the endpoint accepts now ("" = any).
func (e *TokenEndpoint) RefreshToken() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.valid
}

// SetRefreshToken makes rt the only refresh token accepted ("" = any).
func (e *TokenEndpoint) SetRefreshToken(rt string) {
	e.mu.Lock()
	e.valid = rt
	e.mu.Unlock()
}

// SetIssueRefreshToken changes TokenOptions.IssueRefreshToken ("" issues
// none).
func (e *TokenEndpoint) SetIssueRefreshToken(rt string) {
	e.mu.Lock()
	e.issueRT = rt
	e.mu.Unlock()
}

// Answer makes h answer every token request that passes the endpoint's
// checks (grant type, refresh token, authorization code, assertion) in
// place of a token, with r's form parsed: a test's own answer shapes. Nil
// issues tokens again. h runs without the endpoint's lock held, so it may
// call the endpoint (SetRefreshToken, say). The proxy's faults (SetMode,
// FailNext) answer before any check.
func (e *TokenEndpoint) Answer(h http.HandlerFunc) {
	e.mu.Lock()
	e.answer = h
	e.mu.Unlock()
}

// RefuseNext answers the next token requests of grant type grant 400 with
// the error codes given, one a request, in order ("" issues as usual); the
// requests after those are answered as before. A device grant's polls, say:
// RefuseNext(GrantDeviceCode, "authorization_pending", "slow_down").
func (e *TokenEndpoint) RefuseNext(grant string, codes ...string) {
	e.mu.Lock()
	e.refuse[grant] = append([]string(nil), codes...)
	e.mu.Unlock()
}

// GrantCount is the number of token requests of grant type grant that
// reached the issuer (past the proxy's faults), whatever their answer.
func (e *TokenEndpoint) GrantCount(grant string) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.grants[grant]
}

// SetAuthorizationCode makes code the only authorization code accepted,
// issued for the PKCE S256 challenge given (RFC 7636): the grant's
// code_verifier must match it ("" checks no verifier). Until it is called,
// any code is accepted.
func (e *TokenEndpoint) SetAuthorizationCode(code, challenge string) {
	e.mu.Lock()
	e.code, e.challenge = code, challenge
	e.mu.Unlock()
}

// Revoked lists the tokens revoked at RevocationURL with token_type_hint
// hint (any hint when hint is ""), oldest first.
func (e *TokenEndpoint) Revoked(hint string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, r := range e.revoked {
		if hint == "" || r.hint == hint {
			out = append(out, r.token)
		}
	}
	return out
}

type revocation struct{ token, hint string }

// serveLocal is the issuer behind the proxy.
func (e *TokenEndpoint) serveLocal(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	switch {
	case r.URL.Path == revocationPath:
		e.mu.Lock()
		e.revoked = append(e.revoked, revocation{r.PostForm.Get("token"), r.PostForm.Get("token_type_hint")})
		e.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		return
	case r.URL.Path == deviceAuthorizationPath && e.opts.DeviceAuthorization != nil:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(e.opts.DeviceAuthorization)
		return
	}
	grant := r.PostForm.Get("grant_type")
	code, desc, claims, answer := e.check(grant, r.PostForm)
	if code == "" && answer != nil {
		answer(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if code != "" {
		oauthError(w, code, desc)
		return
	}
	e.issue(w, grant, claims)
}

// check counts a token request and runs the endpoint's checks: an OAuth
// error code and description to refuse it with, or the verified
// assertion's claims (if any) and the test's Answer.
func (e *TokenEndpoint) check(grant string, form url.Values) (code, desc string, claims map[string]any, answer http.HandlerFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.grants[grant]++
	if !slices.Contains(e.opts.Grants, grant) {
		return "unsupported_grant_type", "", nil, nil
	}
	if next := e.refuse[grant]; len(next) > 0 {
		e.refuse[grant] = next[1:]
		if next[0] != "" {
			return next[0], "", nil, nil
		}
	}
	switch grant {
	case GrantRefreshToken:
		if e.valid != "" && form.Get("refresh_token") != e.valid {
			return "invalid_grant", "Token has been expired or revoked.", nil, nil
		}
	case GrantAuthorizationCode:
		if e.code != "" && (form.Get("code") != e.code || !pkceMatches(e.challenge, form.Get("code_verifier"))) {
			return "invalid_grant", "", nil, nil
		}
	case GrantJWTBearer:
		if e.trusted != nil {
			a, err := verifyAssertion(form.Get("assertion"), e.trusted)
			if err != nil {
				return "invalid_grant", ErrDescInvalidSignature, nil, nil
			}
			a.form = form
			e.assertion = a
			claims = a.claims
		}
	}
	return "", "", claims, e.answer
}

// issue answers a token: numbered, rotating or issuing a refresh token as
// the options say, or an ID token for an assertion with target_audience.
func (e *TokenEndpoint) issue(w http.ResponseWriter, grant string, claims map[string]any) {
	e.mu.Lock()
	n := e.issued.Add(1)
	out := map[string]interface{}{"token_type": e.opts.TokenType}
	switch {
	case grant == GrantRefreshToken && e.opts.Rotate:
		e.seq++
		e.valid = fmt.Sprintf("rotated-%d-SECRET", e.seq)
		out["refresh_token"] = e.valid
	case e.issueRT != "":
		e.valid = e.issueRT
		out["refresh_token"] = e.issueRT
	}
	if e.opts.OneSequence {
		e.seq++
		n = int64(e.seq)
	}
	e.mu.Unlock()
	if ta, ok := claims["target_audience"].(string); ok {
		_ = json.NewEncoder(w).Encode(map[string]string{"id_token": e.idToken(ta, claims)})
		return
	}
	out["access_token"] = e.opts.AccessToken
	if strings.Contains(e.opts.AccessToken, "%") {
		out["access_token"] = fmt.Sprintf(e.opts.AccessToken, n)
	}
	if e.opts.ExpiresIn > 0 {
		out["expires_in"] = e.opts.ExpiresIn
	}
	if e.opts.Scope != "" {
		out["scope"] = e.opts.Scope
	}
	_ = json.NewEncoder(w).Encode(out)
}

// oauthError answers 400 with an RFC 6749 error body.
func oauthError(w http.ResponseWriter, code, desc string) {
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(body)
}
