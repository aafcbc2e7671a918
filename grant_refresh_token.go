package flowcred

import (
	"context"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
)

// The refresh-token grant family (RFC 6749 section 6): oauth2.refresh_token
// for any provider, and google.oauth2 with Google's defaults. The provider
// may rotate the refresh token; the lifecycle keeps the newest (rotates).

// googleTokenURL is the token endpoint the google.* kinds use unless a
// binding says otherwise.
const googleTokenURL = "https://oauth2.googleapis.com/token"

var refreshTokenKind = &kind{
	Kind:      mustKind(kindtable.OAuth2RefreshToken),
	authStyle: oauth2.AuthStyleAutoDetect,
	rotates:   true,
	grant:     refreshGrant,
}

// Google's authorization and device endpoints, the defaults for connecting
// google.oauth2 bindings.
const (
	googleAuthURL   = "https://accounts.google.com/o/oauth2/v2/auth"
	googleDeviceURL = "https://oauth2.googleapis.com/device/code"
	googleRevokeURL = "https://oauth2.googleapis.com/revoke"
)

var googleOAuth2Kind = &kind{
	Kind:             mustKind(kindtable.GoogleOAuth2),
	tokenURL:         googleTokenURL,
	authorizationURL: googleAuthURL,
	deviceURL:        googleDeviceURL,
	revocationURL:    googleRevokeURL,
	// A refresh token only with offline access; prompt=consent makes
	// Google issue one again on a reconnect.
	authParams: map[string]string{"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
	// Google accepts both; the body is what its own libraries send.
	authStyle: oauth2.AuthStyleInParams,
	rotates:   true,
	grant:     refreshGrant,
}

// refreshGrant sends the refresh token, with the binding's scopes (section
// 6 allows narrowing them). Only a refresh token the provider actually
// changed is reported as rotated.
func refreshGrant(ctx context.Context, b *backend, g *grantCall) (*upstreamToken, error) {
	e := g.binding
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {g.refreshToken}}
	if len(e.Scopes) > 0 {
		form.Set("scope", strings.Join(e.Scopes, " "))
	}
	tok, err := b.clientGrant(ctx, g, form)
	if tok != nil && tok.RefreshToken == g.refreshToken {
		tok.RefreshToken = ""
	}
	return tok, err
}
