package flowcred

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/helper/useragent"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// upstreamToken is what a grant returns.
type upstreamToken struct {
	AccessToken  string
	TokenType    string
	RefreshToken string
	// ExpiresIn is the lifetime the provider gave (expires_in), zero if none.
	ExpiresIn time.Duration
	// Expiry is an absolute expiry (from a JWT's exp), zero if none.
	Expiry time.Time
}

// fetchToken obtains a new token for a binding with an upstream.
func (b *backend) fetchToken(ctx context.Context, e *bindingEntry, in map[string]string, refreshToken string) (*upstreamToken, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, b.httpClient)
	switch e.Kind {
	case kindGoogleOAuth2, kindOAuth2RefreshToken:
		return refreshGrant(ctx, e, in, refreshToken)
	case kindOAuth2ClientCreds:
		return clientCredentialsGrant(ctx, e, in)
	case kindGoogleServiceAccount, kindOAuth2JWTBearer:
		return b.jwtGrant(ctx, e, in)
	}
	return nil, fmt.Errorf("kind %q has no upstream grant", e.Kind)
}

func authStyle(e *bindingEntry) oauth2.AuthStyle {
	switch e.Plain["auth_style"] {
	case "header":
		return oauth2.AuthStyleInHeader
	case "params":
		return oauth2.AuthStyleInParams
	}
	if e.Kind == kindGoogleOAuth2 {
		// Google accepts both; the body is what its own libraries send.
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleAutoDetect
}

// withAuthStyle runs a grant with the binding's auth style. For auto it
// sends the client credentials in an Authorization header and, only when
// the provider refuses that client authentication, again in the form body.
// (x/oauth2's own auto-detection retries after any error: every failure of
// an outage then costs two requests, and a dead grant's invalid_grant is
// replaced by the second attempt's invalid_client.)
func withAuthStyle(e *bindingEntry, grant func(oauth2.AuthStyle) (*oauth2.Token, error)) (*oauth2.Token, error) {
	style := authStyle(e)
	if style != oauth2.AuthStyleAutoDetect {
		return grant(style)
	}
	tok, err := grant(oauth2.AuthStyleInHeader)
	var re *oauth2.RetrieveError
	if err == nil || !errors.As(err, &re) || !clientAuthRefused(re) {
		return tok, err
	}
	return grant(oauth2.AuthStyleInParams)
}

// clientAuthRefused reports whether a token error may mean "send the client
// credentials another way".
func clientAuthRefused(re *oauth2.RetrieveError) bool {
	switch re.ErrorCode {
	case "invalid_client", "invalid_request":
		return true
	}
	return re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized
}

// refreshGrant runs the refresh-token grant (RFC 6749 section 6). It goes
// through clientcredentials.Config with grant_type overridden, not
// oauth2.Config's TokenSource, because only the former sends the
// configured scopes (section 6 allows narrowing them) and returns the raw
// answer, from which expires_in is read for every answer shape.
func refreshGrant(ctx context.Context, e *bindingEntry, in map[string]string, refreshToken string) (*upstreamToken, error) {
	params := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	tok, err := tokenRequest(ctx, e, in, params)
	if err != nil {
		return nil, err
	}
	out := fromOAuth2Token(tok)
	// Report only a new refresh token the provider actually sent.
	if tok.RefreshToken == refreshToken {
		out.RefreshToken = ""
	}
	return out, nil
}

// clientCredentialsGrant runs the client-credentials grant (RFC 6749 section 4.4).
func clientCredentialsGrant(ctx context.Context, e *bindingEntry, in map[string]string) (*upstreamToken, error) {
	params := url.Values{}
	for k, v := range e.TokenParams {
		params.Set(k, v)
	}
	tok, err := tokenRequest(ctx, e, in, params)
	if err != nil {
		return nil, err
	}
	out := fromOAuth2Token(tok)
	out.RefreshToken = "" // a client-credentials grant has nothing to rotate
	return out, nil
}

// tokenRequest POSTs a token request with x/oauth2's retrieval: the client
// authenticated as the binding's auth_style says (withAuthStyle), the
// binding's scopes, and params (which may override grant_type).
func tokenRequest(ctx context.Context, e *bindingEntry, in map[string]string, params url.Values) (*oauth2.Token, error) {
	return withAuthStyle(e, func(style oauth2.AuthStyle) (*oauth2.Token, error) {
		conf := &clientcredentials.Config{
			ClientID:       in["client_id"],
			ClientSecret:   in["client_secret"],
			TokenURL:       e.tokenURL(),
			Scopes:         e.Scopes,
			EndpointParams: params,
			AuthStyle:      style,
		}
		return conf.Token(ctx)
	})
}

// fromOAuth2Token converts x/oauth2's token. expires_in is read from the
// raw answer (JSON number or string, or a form value) rather than from
// Token.Expiry, which x/oauth2 computes on its own clock.
func fromOAuth2Token(tok *oauth2.Token) *upstreamToken {
	var raw string
	switch v := tok.Extra("expires_in").(type) {
	case string:
		raw = v
	case int64:
		raw = strconv.FormatInt(v, 10)
	case float64:
		raw = strconv.FormatFloat(v, 'f', -1, 64)
	}
	return &upstreamToken{
		AccessToken:  tok.AccessToken,
		TokenType:    tok.TokenType,
		RefreshToken: tok.RefreshToken,
		ExpiresIn:    time.Duration(parseExpiresIn([]byte(raw))) * time.Second,
	}
}

// upstreamMaterial builds the material for a token obtained upstream.
func upstreamMaterial(handle string, e *bindingEntry, st *tokenState) *material {
	tt := normalizeTokenType(st.TokenType)
	headers := make(map[string]string, len(e.ExtraHeaders)+1)
	for k, v := range e.ExtraHeaders {
		headers[k] = v
	}
	headers["Authorization"] = tt + " " + st.AccessToken
	return &material{
		handle:      handle,
		kind:        e.Kind,
		accessToken: st.AccessToken,
		tokenType:   tt,
		expiry:      st.Expiry,
		obtainedAt:  st.ObtainedAt,
		headers:     headers,
		leaseCap:    e.TTL,
	}
}

// maxResponseBytes bounds what the transport reads of a token response.
const maxResponseBytes = 1 << 20

// newUpstreamTransport is the transport for token requests: no proxies from
// the environment are needed for loopback tests, but honour them like any
// Go client would.
func newUpstreamTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	t.ResponseHeaderTimeout = 0 // the request context carries the timeout
	return t
}

// userAgentTransport sets the User-Agent and bounds the response body.
type userAgentTransport struct {
	b    *backend
	next http.RoundTripper
}

func (t *userAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", t.b.userAgent.Load().(string))
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: maxResponseBytes}
	return resp, nil
}

// limitedBody ends a response body after a bound, so a provider (or a
// proxy in front of it) cannot make the plugin read without end.
type limitedBody struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("token response larger than %d bytes", maxResponseBytes)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

func userAgentString(env *logical.PluginEnvironment) string {
	return useragent.PluginString(env, pluginName+"/"+Version)
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
