package oauthtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
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
	// RefreshToken is the only refresh token the endpoint accepts; "" accepts
	// any. Others get 400 invalid_grant.
	RefreshToken string
	// Rotate issues a new refresh token (rotated-N-SECRET) with every refresh
	// grant, and from then on accepts only the latest.
	Rotate bool
	// Grants are the grant types it serves (default refresh_token,
	// client_credentials and the JWT-bearer grant); others get 400
	// unsupported_grant_type.
	Grants []string
}

// TokenEndpoint is a scriptable fake token endpoint on 127.0.0.1 that needs
// no Node: an in-process issuer behind a FaultProxy, so every fault, gate
// and hold mode of the proxy applies to it (SetMode, FailNext, CloseGate,
// HoldNext, Observe, LastRequest, Count). In pass-through it issues numbered
// access tokens as TokenOptions say. TokenURL is the URL to bind.
type TokenEndpoint struct {
	*FaultProxy
	opts   TokenOptions
	issued atomic.Int64

	mu    sync.Mutex
	valid string // the refresh token accepted now ("" = any)
	seq   int    // rotations
}

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
	e := &TokenEndpoint{opts: o, valid: o.RefreshToken}
	e.FaultProxy = newProxy(&url.URL{Scheme: "http", Host: "issuer.invalid"}, "/token", http.HandlerFunc(e.issue))
	return e
}

// StartTokenEndpoint is NewTokenEndpoint, closed when the test ends.
func StartTokenEndpoint(tb testing.TB, o TokenOptions) *TokenEndpoint {
	tb.Helper()
	e := NewTokenEndpoint(o)
	tb.Cleanup(e.Close)
	return e
}

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

func (e *TokenEndpoint) issue(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	grant := r.PostForm.Get("grant_type")
	if !slices.Contains(e.opts.Grants, grant) {
		oauthError(w, "unsupported_grant_type", "")
		return
	}
	out := map[string]interface{}{"token_type": e.opts.TokenType}
	if grant == GrantRefreshToken {
		e.mu.Lock()
		if e.valid != "" && r.PostForm.Get("refresh_token") != e.valid {
			e.mu.Unlock()
			oauthError(w, "invalid_grant", "Token has been expired or revoked.")
			return
		}
		if e.opts.Rotate {
			e.seq++
			e.valid = fmt.Sprintf("rotated-%d-SECRET", e.seq)
			out["refresh_token"] = e.valid
		}
		e.mu.Unlock()
	}
	n := e.issued.Add(1)
	out["access_token"] = e.opts.AccessToken
	if strings.Contains(e.opts.AccessToken, "%") {
		out["access_token"] = fmt.Sprintf(e.opts.AccessToken, n)
	}
	if e.opts.ExpiresIn > 0 {
		out["expires_in"] = e.opts.ExpiresIn
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
