package flowcred

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
)

// google.service_account: a JWT-bearer grant (grant_jwt_bearer.go) with
// Google's assertion: a service-account key file or email and RSA key, an
// access token for scopes or an ID token for a target_audience, and sub for
// domain-wide delegation.

// googleAssertionLifetime is exp - iat for Google, which accepts at most
// one hour (what its client libraries send).
const googleAssertionLifetime = time.Hour

var googleServiceAccountKind = &kind{
	Kind:     mustKind(kindtable.GoogleServiceAccount),
	tokenURL: googleTokenURL,
	grant:    googleServiceAccountGrant,
	validate: validateGoogleServiceAccount,
}

// googleServiceAccountGrant exchanges Google's assertion. Google's
// invalid_scope needs an operator (health needs_reauth): no retry fixes it.
func googleServiceAccountGrant(ctx context.Context, b *backend, g *grantCall) (*upstreamToken, error) {
	a, err := googleAssertion(g.binding, g.inputs)
	if err != nil {
		return nil, err
	}
	tok, err := b.assertionGrant(ctx, g.binding, a)
	if ue, ok := err.(*upstreamError); ok && ue.code == "invalid_scope" {
		ue.class = classReauth
	}
	return tok, err
}

// googleKeyFile is the part of a Google service-account key file flowcred
// uses.
type googleKeyFile struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	ClientID     string `json:"client_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	// TokenURI is read but not used: the binding's token_url decides where
	// the assertion goes (see googleAssertion).
	TokenURI string `json:"token_uri"`

	key *signingKey
}

// parseGoogleKeyFile parses and checks a service-account key file, including
// its private key. Errors never quote the file.
func parseGoogleKeyFile(text string) (*googleKeyFile, error) {
	var f googleKeyFile
	if err := json.Unmarshal([]byte(text), &f); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Errorf("not valid JSON (syntax error at byte %d); give the key file exactly as Google issued it", syn.Offset)
		case errors.As(err, &typ) && typ.Field != "":
			return nil, fmt.Errorf("not a Google service-account key file (field %q is a JSON %s)", truncateForMessage(typ.Field), typ.Value)
		case errors.As(err, &typ):
			return nil, fmt.Errorf("not a Google service-account key file (a JSON %s, not an object)", typ.Value)
		}
		return nil, errors.New("not valid JSON; give the key file exactly as Google issued it")
	}
	switch {
	case f.Type == "":
		return nil, errors.New(`not a Google service-account key file: it has no "type" (expected "service_account")`)
	case f.Type != "service_account":
		return nil, fmt.Errorf(`a Google credentials file of type %q, not a service-account key (type "service_account")`, sanitize(truncateForMessage(f.Type), 80))
	case f.ClientEmail == "":
		return nil, errors.New("a service-account key file without client_email")
	case f.PrivateKey == "":
		return nil, errors.New("a service-account key file without private_key")
	}
	key, err := parsePrivateKey(f.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("a key file whose private_key is %s", err)
	}
	if key.alg != jose.RS256 {
		return nil, fmt.Errorf("a key file whose private_key is %s; Google service-account keys are RSA", key.desc)
	}
	f.key = key
	return &f, nil
}

// googleAssertion builds the assertion Google's token endpoint expects:
// iss = the service account, aud = the token URL, and either scope (access
// token) or target_audience (ID token); sub for domain-wide delegation.
//
// The token URL is the binding's token_url, else Google's default. The key
// file's own token_uri is ignored on purpose: it is always Google's endpoint
// in real key files, and honouring it would let whoever writes the key file
// (possibly into a shared secret) send a signed, hour-long bearer assertion
// to a host the binding never named, past token_url's https/loopback check.
func googleAssertion(e *bindingEntry, in map[string]string) (*assertion, error) {
	a := &assertion{lifetime: googleAssertionLifetime, google: true}
	var email string
	if kf := in["credentials_json"]; kf != "" {
		f, err := parseGoogleKeyFile(kf)
		if err != nil {
			return nil, inputError(e, "credentials_json", err)
		}
		email, a.kid, a.clientID, a.key = f.ClientEmail, f.PrivateKeyID, f.ClientID, f.key
	} else {
		key, err := parsePrivateKey(in["private_key"])
		if err != nil {
			return nil, inputError(e, "private_key", err)
		}
		if key.alg != jose.RS256 {
			return nil, inputError(e, "private_key", fmt.Errorf("%s; Google service-account keys are RSA", key.desc))
		}
		email, a.kid, a.key = e.Plain["client_email"], e.Plain["private_key_id"], key
	}
	a.claims = map[string]interface{}{"iss": email, "aud": e.tokenURL()}
	if sub := e.Plain["subject"]; sub != "" {
		a.claims["sub"] = sub
	}
	if ta := e.Plain["target_audience"]; ta != "" {
		a.claims["target_audience"] = ta
		a.idToken = true
	} else if len(e.Scopes) > 0 {
		a.claims["scope"] = strings.Join(e.Scopes, " ")
	}
	return a, nil
}

// validateGoogleServiceAccount checks the shape of the binding and the key
// material given inline (key file, PEM key) at write time. Referenced
// secrets are checked when a token is issued. Messages name the field and
// never quote key material.
func validateGoogleServiceAccount(e *bindingEntry) *fieldError {
	_, ta := e.Plain["target_audience"]
	switch {
	case ta && len(e.Scopes) > 0:
		return fieldErr("target_audience", "an ID token for a target_audience carries no scopes; remove scopes or target_audience")
	case !ta && len(e.Scopes) == 0:
		return fieldErr("scopes", "required by kind %s unless target_audience is set: Google issues an access token for scopes, or an ID token for a target_audience", e.Kind)
	}
	if e.hasInput("credentials_json") {
		for _, f := range []string{"client_email", "private_key", "private_key_id"} {
			if e.hasInput(f) {
				return fieldErr(f, "cannot be combined with credentials_json, which carries it; clear one of them (set it to an empty string)")
			}
		}
		if v, ok := e.Inline["credentials_json"]; ok {
			if _, err := parseGoogleKeyFile(v); err != nil {
				return fieldErr("credentials_json", "%s", err)
			}
		}
		return nil
	}
	if email := e.Plain["client_email"]; email != "" && !strings.Contains(email, "@") {
		return fieldErr("client_email", "%q is not a service account's email address", truncateForMessage(email))
	}
	if v, ok := e.Inline["private_key"]; ok {
		key, err := parsePrivateKey(v)
		if err != nil {
			return fieldErr("private_key", "%s", err)
		}
		if key.alg != jose.RS256 {
			return fieldErr("private_key", "%s; Google service-account keys are RSA", key.desc)
		}
	}
	return nil
}
