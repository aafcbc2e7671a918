package flowcred

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
)

// The JWT-bearer grant family (RFC 7523 section 2.1): oauth2.jwt_bearer
// here, and google.service_account (grant_google_service_account.go) on the
// same assertion type. A grant parses the key, signs an assertion with
// go-jose (RS256, or ES256/ES384/ES512 for EC keys) and exchanges it through
// the token client (tokenclient.go) with no client authentication: the
// assertion is the credential.
//
// golang.org/x/oauth2/jwt is not used: it signs RS256 only, posts without the
// request context (so the mount's http_timeout and a cancelled request would
// not stop it while the handle's lock is held), takes its clock from
// time.Now, and returns error bodies without parsing the OAuth2 error code.

const (
	jwtBearerGrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

	// assertionBackdate moves iat into the past so that a Vault host whose
	// clock runs a little ahead of the provider's is not refused: Google
	// rejects assertions that look issued in the future. x/oauth2/jws and
	// Google's client libraries use the same 10 seconds.
	assertionBackdate = 10 * time.Second

	// jwtBearerAssertionLifetime is exp - iat for other providers than
	// Google. An assertion is used once, at once; several providers accept
	// only a few minutes (Salesforce: 3), none refuses a short one.
	jwtBearerAssertionLifetime = 3 * time.Minute
)

var jwtBearerKind = &kind{
	Kind:     mustKind(kindtable.OAuth2JWTBearer),
	grant:    jwtBearerGrant,
	validate: validateJWTBearer,
}

func jwtBearerGrant(ctx context.Context, b *backend, g *grantCall) (*upstreamToken, error) {
	e, in := g.binding, g.inputs
	key, err := parsePrivateKey(in["private_key"])
	if err != nil {
		return nil, inputError(e, "private_key", err)
	}
	iss := e.Plain["issuer"]
	claims := map[string]interface{}{"iss": iss, "sub": iss, "aud": e.tokenURL()}
	if sub := e.Plain["subject"]; sub != "" {
		claims["sub"] = sub
	}
	if aud := e.Plain["audience"]; aud != "" {
		claims["aud"] = aud
	}
	return b.assertionGrant(ctx, e, &assertion{
		key:       key,
		kid:       e.Plain["key_id"],
		claims:    claims,
		lifetime:  jwtBearerAssertionLifetime,
		jti:       true,
		formScope: strings.Join(e.Scopes, " "),
	})
}

// validateJWTBearer checks an inline private key at write time (a
// referenced one is checked when a token is issued).
func validateJWTBearer(e *bindingEntry) *fieldError {
	if v, ok := e.Inline["private_key"]; ok {
		if _, err := parsePrivateKey(v); err != nil {
			return fieldErr("private_key", "%s", err)
		}
	}
	return nil
}

// assertion is one JWT-bearer request, ready to sign.
type assertion struct {
	key *signingKey
	// kid goes in the JWS header when set.
	kid string
	// claims are the fixed claims; iat, exp (and jti) are added at signing.
	claims map[string]interface{}
	// lifetime is exp - iat.
	lifetime time.Duration
	// jti adds a unique token ID (RFC 7523 allows it; many providers
	// require it to prevent replay). Google's libraries send none.
	jti bool
	// formScope is sent as the scope form parameter (oauth2.jwt_bearer);
	// Google takes scopes in the assertion instead.
	formScope string
	// idToken: the answer carries an ID token to hand out instead of an
	// access token (google.service_account with target_audience).
	idToken bool
	// clientID is the service account's numeric client ID when known, for
	// the domain-wide delegation hint.
	clientID string
	// google: the provider is Google, whose answers the hints explain in
	// Google's terms.
	google bool
}

// inputError reports an unusable secret input at issue time. The binding
// needs an operator (health needs_reauth); the fingerprint of the inputs
// makes the next read try again once the secret or binding changes.
func inputError(e *bindingEntry, field string, err error) *upstreamError {
	src := field
	if name, ok := e.Refs[field]; ok {
		src = fmt.Sprintf("%s%s (secret %q)", field, secretRefSuffix, name)
	}
	return &upstreamError{class: classReauth, msg: fmt.Sprintf("%s is %s", src, err)}
}

// sign returns the compact JWS of the assertion issued at now.
func (a *assertion) sign(now time.Time) (string, error) {
	iat := now.Add(-assertionBackdate)
	claims := make(map[string]interface{}, len(a.claims)+3)
	for k, v := range a.claims {
		claims[k] = v
	}
	claims["iat"] = iat.Unix()
	claims["exp"] = iat.Add(a.lifetime).Unix()
	if a.jti {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return "", fmt.Errorf("generating the assertion's jti: %w", err)
		}
		claims["jti"] = hex.EncodeToString(id[:])
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding the assertion: %w", err)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if a.kid != "" {
		opts = opts.WithHeader("kid", a.kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: a.key.alg, Key: a.key.key}, opts)
	if err != nil {
		return "", fmt.Errorf("preparing the %s signer: %w", a.key.alg, err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("signing the assertion with %s: %w", a.key.alg, err)
	}
	return jws.CompactSerialize()
}

// assertionGrant signs a and exchanges it for a token. A refusal is
// explained (jwtErrorHint) in terms of the binding's fields.
func (b *backend) assertionGrant(ctx context.Context, e *bindingEntry, a *assertion) (*upstreamToken, error) {
	signed, err := a.sign(b.now())
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {jwtBearerGrantType}, "assertion": {signed}}
	if a.formScope != "" {
		form.Set("scope", a.formScope)
	}
	tok, err := b.tokenClient().exchange(ctx, &tokenRequest{
		url: e.tokenURL(), form: form, style: oauth2.AuthStyleInParams, idToken: a.idToken,
	})
	if ue, ok := err.(*upstreamError); ok {
		ue.hint = jwtErrorHint(e, a, ue)
	}
	return tok, err
}

// jwtErrorHint explains the JWT-bearer errors Google (and providers that
// copy its texts) answer. It quotes only non-secret binding fields.
func jwtErrorHint(e *bindingEntry, a *assertion, ue *upstreamError) string {
	google := a.google
	iss, _ := a.claims["iss"].(string)
	desc := strings.ToLower(ue.description)
	switch ue.code {
	case "invalid_grant":
		switch {
		case strings.Contains(desc, "invalid jwt signature"):
			if google {
				return fmt.Sprintf("the key was deleted or disabled, or is not a key of %s: create a new key for the service account and update the binding's credentials_json (or private_key and private_key_id)", truncateForMessage(iss))
			}
			return fmt.Sprintf("the provider does not trust this key for issuer %q (key_id %q): register its public key with the provider, or update private_key and key_id", truncateForMessage(iss), truncateForMessage(a.kid))
		case strings.Contains(desc, "short-lived token"), strings.Contains(desc, "iat and exp"), strings.Contains(desc, "reasonable timeframe"):
			return "the provider finds the assertion's iat/exp out of range, which means clock skew: check the Vault host's clock (NTP), then refresh the binding (bindings/<handle>/refresh)"
		case strings.Contains(desc, "account not found"):
			if google {
				return fmt.Sprintf("the service account %s does not exist or is disabled: check client_email, or enable the account", truncateForMessage(iss))
			}
			return fmt.Sprintf("the provider does not know issuer %q: check issuer", truncateForMessage(iss))
		case strings.Contains(desc, "email or user id"):
			sub, _ := a.claims["sub"].(string)
			return fmt.Sprintf("subject %q is not a user of the Workspace domain: fix subject", truncateForMessage(sub))
		case strings.Contains(desc, "audience"):
			return "the provider expects another aud claim: set token_url (or audience) to the endpoint the provider names"
		}
	case "unauthorized_client":
		if !google {
			return fmt.Sprintf("the provider does not let issuer %q use the JWT-bearer grant: allow the grant for it", truncateForMessage(iss))
		}
		if _, dwd := a.claims["sub"]; !dwd {
			return "the service account may not use this grant; to impersonate a user, set subject and grant domain-wide delegation"
		}
		client := "the service account's client ID (its unique ID)"
		if a.clientID != "" {
			client = "client ID " + truncateForMessage(a.clientID)
		}
		return fmt.Sprintf("domain-wide delegation is not granted for these scopes: in the Google Admin console (Security > Access and data control > API controls > Manage Domain Wide Delegation) authorize %s for %s", client, truncateForMessage(strings.Join(e.Scopes, ",")))
	case "invalid_scope":
		if ta := e.Plain["target_audience"]; ta != "" {
			return fmt.Sprintf("the provider refused target_audience %q: fix target_audience", truncateForMessage(ta))
		}
		if len(e.Scopes) == 0 {
			return "no scopes were requested: set scopes (or target_audience for an ID token)"
		}
		if google {
			return fmt.Sprintf("Google refused the scopes %s: use full scope URLs such as https://www.googleapis.com/auth/cloud-platform, or set target_audience for an ID token", truncateForMessage(strings.Join(e.Scopes, ",")))
		}
		return fmt.Sprintf("the provider refused the scopes %s: fix scopes", truncateForMessage(strings.Join(e.Scopes, ",")))
	}
	return ""
}
