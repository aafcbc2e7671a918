// The server's admin API (/__admin in testdata/oauth-server/server.js).

package oauthtest

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// MintRefreshToken creates a grant and a refresh token for clientID (one of
// the rt-* clients) and account "alice" without any browser interaction. An
// empty scope means "openid offline_access api". The token works with the
// normal refresh_token grant at TokenURL.
func (s *Server) MintRefreshToken(clientID, scope string) (string, error) {
	return s.MintRefreshTokenForAccount(clientID, scope, "")
}

// Mint is MintRefreshToken with the default scope, failing the test on an
// error.
func (s *Server) Mint(tb testing.TB, clientID string) string {
	tb.Helper()
	rt, err := s.MintRefreshToken(clientID, "")
	if err != nil {
		tb.Fatal(err)
	}
	return rt
}

// MintRefreshTokenForAccount is MintRefreshToken for a specific account id
// (the `sub` of issued id tokens); "" means "alice".
func (s *Server) MintRefreshTokenForAccount(clientID, scope, accountID string) (string, error) {
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	in := map[string]string{"client_id": clientID, "scope": scope, "account_id": accountID}
	if err := s.admin(http.MethodPost, "/refresh-tokens", in, &out); err != nil {
		return "", err
	}
	if out.RefreshToken == "" {
		return "", errors.New("oauthtest: server returned no refresh_token")
	}
	return out.RefreshToken, nil
}

// SetTTL sets the lifetime of access tokens and of id tokens issued from now
// on (rounded up to whole seconds). A zero duration leaves that TTL unchanged.
// Defaults are one hour each.
func (s *Server) SetTTL(accessTTL, idTTL time.Duration) error {
	in := map[string]int{}
	if accessTTL > 0 {
		in["access_token_ttl"] = ceilSeconds(accessTTL)
	}
	if idTTL > 0 {
		in["id_token_ttl"] = ceilSeconds(idTTL)
	}
	return s.admin(http.MethodPost, "/config", in, nil)
}

// SetRefreshTokenTTL sets the lifetime of refresh tokens issued from now on
// (default 14 days).
func (s *Server) SetRefreshTokenTTL(ttl time.Duration) error {
	return s.admin(http.MethodPost, "/config", map[string]int{"refresh_token_ttl": ceilSeconds(ttl)}, nil)
}

func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

// RegisterJWTIssuer trusts pub (RSA or ECDSA P-256/P-384; a crypto.Signer
// such as *rsa.PrivateKey is accepted and its public half used) for
// JWT-bearer assertions whose `iss` is issuer. If kid is not empty, assertions
// carrying a kid header are checked against the key with that kid only.
// replace drops the issuer's previously registered keys (key rotation).
func (s *Server) RegisterJWTIssuer(issuer, kid string, pub crypto.PublicKey, replace bool) error {
	if signer, ok := pub.(crypto.Signer); ok {
		pub = signer.Public()
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("oauthtest: marshal public key: %w", err)
	}
	in := map[string]any{
		"issuer":         issuer,
		"public_key_pem": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"replace":        replace,
	}
	if kid != "" {
		in["kid"] = kid
	}
	return s.admin(http.MethodPost, "/jwt-issuers", in, nil)
}

// RemoveJWTIssuer drops the key with kid ("" = all keys) for issuer.
func (s *Server) RemoveJWTIssuer(issuer, kid string) error {
	in := map[string]string{"issuer": issuer}
	if kid != "" {
		in["kid"] = kid
	}
	return s.admin(http.MethodDelete, "/jwt-issuers", in, nil)
}

// Stats are the server's counters since start or the last ResetStats.
type Stats struct {
	// TokenRequests counts token endpoint requests (successful or not) by
	// grant_type ("unknown" if the body had none).
	TokenRequests map[string]int `json:"token_requests"`
	// TokenSuccess counts successful token responses by grant_type.
	TokenSuccess map[string]int `json:"token_success"`
	// ByClient counts token endpoint requests by client_id.
	ByClient map[string]int `json:"by_client"`
	// Errors counts token/revocation endpoint errors by OAuth error code.
	Errors map[string]int `json:"errors"`
	// RefreshTokenReuseDetected counts refreshes with an already rotated
	// refresh token (each revoked its whole grant).
	RefreshTokenReuseDetected int `json:"refresh_token_reuse_detected"`
	GrantsRevoked             int `json:"grants_revoked"`
	RefreshTokensMinted       int `json:"refresh_tokens_minted"`
	RevocationRequests        int `json:"revocation_requests"`
	// DeviceAuthorizations counts device authorization answers (RFC 8628).
	DeviceAuthorizations int `json:"device_authorizations"`
	// StoreSize is the number of entries in the server's in-memory store.
	StoreSize int `json:"store_size"`
}

// Stats fetches the server's counters.
func (s *Server) Stats() (Stats, error) {
	var st Stats
	err := s.admin(http.MethodGet, "/stats", nil, &st)
	return st, err
}

// MustStats is Stats, failing the test on an error.
func (s *Server) MustStats(tb testing.TB) Stats {
	tb.Helper()
	st, err := s.Stats()
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// ResetStats zeroes the counters and forgets the last assertion.
func (s *Server) ResetStats() error {
	return s.admin(http.MethodPost, "/stats/reset", nil, nil)
}

// LastAssertion returns the claims of the last successfully verified
// JWT-bearer assertion (iss, sub, aud, scope, iat, exp, kid, alg,
// target_audience, form_scope; absent ones omitted); empty if none.
func (s *Server) LastAssertion() (map[string]any, error) {
	out := map[string]any{}
	err := s.admin(http.MethodGet, "/last-assertion", nil, &out)
	return out, err
}

// Revoke revokes refreshToken's whole grant (all its refresh and access
// tokens). The standard RFC 7009 endpoint is also available at RevocationURL.
func (s *Server) Revoke(refreshToken string) error {
	return s.admin(http.MethodPost, "/revoke", map[string]string{"refresh_token": refreshToken}, nil)
}

// RevokeAccount revokes every grant of accountID (the login a Browser
// signed in with), with its refresh and access tokens; for clientID only
// when it is not empty. It returns how many grants it revoked. This is how
// a test revokes a refresh token it never saw, one a connect flow gave the
// plugin.
func (s *Server) RevokeAccount(accountID, clientID string) (int, error) {
	var out struct {
		GrantsRevoked int `json:"grants_revoked"`
	}
	in := map[string]string{"account_id": accountID}
	if clientID != "" {
		in["client_id"] = clientID
	}
	err := s.admin(http.MethodPost, "/revoke-account", in, &out)
	return out.GrantsRevoked, err
}

// SetDeviceInterval sets the interval device authorizations announce
// (default 5 s) and the minimum gap between two polls of one device code
// below which the token endpoint answers slow_down (0: the interval).
// oidc-provider itself announces no interval and never answers slow_down;
// the test server adds both (RFC 8628 sections 3.2 and 3.5). Whole seconds,
// rounded up.
func (s *Server) SetDeviceInterval(interval, minPollGap time.Duration) error {
	return s.admin(http.MethodPost, "/config", map[string]int{
		"device_interval":     ceilSeconds(interval),
		"device_min_poll_gap": ceilSeconds(minPollGap),
	}, nil)
}

// IssuedToken is a token or code the server issued.
type IssuedToken struct {
	// Kind is AccessToken, RefreshToken, AuthorizationCode or DeviceCode.
	Kind     string `json:"kind"`
	Value    string `json:"value"`
	ClientID string `json:"client_id"`
	// AccountID is the user's login; empty for a device code not approved.
	AccountID string `json:"account_id"`
}

// Issued lists every opaque access token, refresh token, authorization code
// and device code the server has stored since it started (for clientID only,
// unless empty), including those since used, revoked or expired: what a leak
// scan plants for tokens a test never saw (those a connect flow gave the
// plugin). JWT access tokens are listed by their jti, not their value.
func (s *Server) Issued(clientID string) ([]IssuedToken, error) {
	var out struct {
		Tokens []IssuedToken `json:"tokens"`
	}
	path := "/issued"
	if clientID != "" {
		path += "?client_id=" + url.QueryEscape(clientID)
	}
	err := s.admin(http.MethodGet, path, nil, &out)
	return out.Tokens, err
}

func (s *Server) admin(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.AdminURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("oauthtest: admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("oauthtest: admin %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("oauthtest: admin %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("oauthtest: admin %s %s: decoding %q: %w", method, path, b, err)
		}
	}
	return nil
}
