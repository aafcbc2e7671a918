package resolver

import (
	"context"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
)

// TokenSource returns an oauth2.TokenSource for the handle, for clients that
// take one: oauth2.NewClient, Google's option.WithTokenSource, and most cloud
// SDKs.
//
// It is reuse-aware. Token returns the provider's cached token until the
// provider would read Vault again (less than the margin left of the lease
// or of the token's life: 10% by default, see WithMargin), then reads
// token/<handle> once for all concurrent callers. The oauth2.Token's Expiry
// is that instant, not the token's own expiry, so an oauth2.ReuseTokenSource
// wrapping it (oauth2.NewClient and Google's transports add one) asks again
// ahead of the lease's end rather than at the token's. Errors are the
// provider's: an *Error matched with errors.Is (ErrNotFound, ErrNeedsReauth,
// ErrVaultTokenExpired, ...).
//
// An oauth2.Token is presented as one Authorization header. Token therefore
// fails with ErrMisconfigured for material presented another way (an
// api_token binding with its own header, or with an empty scheme), and a
// binding's extra_headers (x-goog-user-project, ...) are not sent; use
// NewClient or Transport for those.
//
// oauth2.TokenSource has no context: Vault reads use context.Background and
// are bounded by the Vault client's timeout.
func (p *VaultProvider) TokenSource(handle string) oauth2.TokenSource {
	return &tokenSource{p: p, handle: handle}
}

// tokenSource serves from the provider's cache: no cache of its own, so
// every TokenSource of a handle shares one Vault read.
type tokenSource struct {
	p      *VaultProvider
	handle string
}

// Token implements oauth2.TokenSource.
func (s *tokenSource) Token() (*oauth2.Token, error) {
	m, err := s.p.Resolve(context.Background(), s.handle)
	if err != nil {
		return nil, err
	}
	if !bearerShaped(m) {
		return nil, &Error{Handle: s.handle, kind: ErrMisconfigured, Messages: []string{
			"the material is not sent as \"Authorization: <type> <token>\" (" + strings.Join(m.HeaderNames(), ", ") +
				"), which an oauth2.Token cannot express; use NewClient or Transport"}}
	}
	return &oauth2.Token{AccessToken: m.AccessToken, TokenType: m.TokenType, Expiry: s.p.refreshAt(m)}, nil
}

// bearerShaped reports whether oauth2.Transport, given the material's token
// and type, would send the credential header the material has.
func bearerShaped(m *Material) bool {
	if m.TokenType == "" || m.AccessToken == "" {
		return false // oauth2.Token.Type() would turn "" into Bearer
	}
	want := m.TokenType + " " + m.AccessToken
	if strings.EqualFold(m.TokenType, "bearer") {
		want = "Bearer " + m.AccessToken
	}
	if len(m.Headers) == 0 {
		return true // built by hand: Apply would send exactly that
	}
	for k, v := range m.Headers {
		if strings.EqualFold(k, "Authorization") {
			return v == want || v == m.TokenType+" "+m.AccessToken
		}
	}
	return false
}

// NewClient returns an *http.Client whose requests carry the handle's
// material: every header (Authorization and the binding's extra_headers),
// from the provider's cache, with a 401 retried once with a fresh token (see
// Transport). As with oauth2.NewClient, the Transport of an *http.Client
// stored in ctx under oauth2.HTTPClient is the base that sends the requests;
// ctx is not otherwise kept. Give the client a Timeout as usual.
func (p *VaultProvider) NewClient(ctx context.Context, handle string) *http.Client {
	t := &Transport{Provider: p, Handle: handle}
	if ctx != nil {
		if hc, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && hc != nil {
			t.Base = hc.Transport
		}
	}
	return &http.Client{Transport: t}
}
