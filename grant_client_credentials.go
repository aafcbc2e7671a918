package flowcred

import (
	"context"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
)

// oauth2.client_credentials: the client-credentials grant (RFC 6749
// section 4.4), with the binding's token_params (audience, resource, ...).

var clientCredentialsKind = &kind{
	Kind:      mustKind(kindtable.OAuth2ClientCreds),
	authStyle: oauth2.AuthStyleAutoDetect,
	grant:     clientCredentialsGrant,
}

func clientCredentialsGrant(ctx context.Context, b *backend, g *grantCall) (*upstreamToken, error) {
	e := g.binding
	form := url.Values{}
	for k, v := range e.TokenParams {
		form.Set(k, v)
	}
	form.Set("grant_type", "client_credentials")
	if len(e.Scopes) > 0 {
		form.Set("scope", strings.Join(e.Scopes, " "))
	}
	tok, err := b.clientGrant(ctx, g, form)
	if tok != nil {
		tok.RefreshToken = "" // a client-credentials grant has nothing to rotate
	}
	return tok, err
}

// clientGrant sends a grant authenticated with the binding's client_id and
// client_secret, the way its auth_style says (shared with the refresh-token
// family).
func (b *backend) clientGrant(ctx context.Context, g *grantCall, form url.Values) (*upstreamToken, error) {
	return b.tokenClient().exchange(ctx, clientRequest(g.binding, g.inputs, g.binding.tokenURL(), form))
}

// clientRequest is a request to one of the binding's endpoints (token,
// device authorization, revocation) authenticated with its client_id and
// client_secret as its auth_style says.
func clientRequest(e *bindingEntry, in map[string]string, endpoint string, form url.Values) *tokenRequest {
	return &tokenRequest{
		url: endpoint, form: form,
		clientID: in["client_id"], clientSecret: in["client_secret"],
		style: kindOf(e.Kind).authStyleOf(e),
	}
}
