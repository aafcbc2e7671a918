package flowcred

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// The JWT-bearer grant (RFC 7523) behind google.service_account and
// oauth2.jwt_bearer. Both kinds share one path: parse the key, sign an
// assertion with go-jose (RS256, or ES256/ES384/ES512 for EC keys), POST it
// through b.httpClient with the request context, and parse the answer into
// an upstreamToken or an *oauth2.RetrieveError that classifyUpstream
// understands.
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

	// googleAssertionLifetime is exp - iat for Google, which accepts at most
	// one hour (what its client libraries send).
	googleAssertionLifetime = time.Hour

	// jwtBearerAssertionLifetime is exp - iat for other providers. An
	// assertion is used once, at once; several providers accept only a few
	// minutes (Salesforce: 3), none refuses a short one.
	jwtBearerAssertionLifetime = 3 * time.Minute

	// minRSAKeyBits is the smallest RSA key RS256 allows (RFC 7518, 3.3).
	minRSAKeyBits = 2048
)

// signingKey is a parsed private key and the JWS algorithm it signs with.
type signingKey struct {
	key crypto.Signer
	alg jose.SignatureAlgorithm
	// desc names the key type for messages, e.g. "an EC P-256 key".
	desc string
}

// oidDSA identifies DSA keys in PKCS#8, which crypto/x509 does not parse.
const oidDSA = "1.2.840.10040.4.1"

// parsePrivateKey reads a PEM private key: PKCS#1 (RSA), SEC1 (EC) or PKCS#8
// (RSA or EC), whatever the PEM label says. RSA keys sign RS256; EC keys
// sign ES256, ES384 or ES512 according to their curve. Errors are phrases
// without a subject ("not a PEM private key") and never contain key
// material: callers prefix the field they came from.
func parsePrivateKey(text string) (*signingKey, error) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(text)))
	if block == nil && strings.Contains(text, `\n`) {
		// A key copied out of a JSON key file keeps its escaped newlines.
		block, _ = pem.Decode([]byte(strings.ReplaceAll(strings.TrimSpace(text), `\n`, "\n")))
	}
	if block == nil {
		return nil, errors.New("not a PEM private key (expected a -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY block)")
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, errors.New("an encrypted private key; store it unencrypted (e.g. openssl pkcs8 -topk8 -nocrypt)")
	}
	switch block.Type {
	case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY":
	case "DSA PRIVATE KEY":
		return nil, errors.New("a DSA key, which JWT assertions cannot use; use an RSA or EC (P-256, P-384, P-521) key")
	case "OPENSSH PRIVATE KEY":
		return nil, errors.New("an OpenSSH private key; convert it to PKCS#8 PEM (ssh-keygen -p -m PKCS8 -f FILE) or use a PEM RSA or EC key")
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("a PEM %q block, which flowcred cannot read; use PKCS#8 (BEGIN PRIVATE KEY), PKCS#1 (BEGIN RSA PRIVATE KEY) or SEC1 (BEGIN EC PRIVATE KEY)", truncateForMessage(block.Type))
		}
		return nil, fmt.Errorf("a PEM %q block, not a private key", truncateForMessage(block.Type))
	}

	// Try every encoding: labels are often wrong (a PKCS#8 key labelled
	// RSA PRIVATE KEY is common).
	var key interface{}
	key, err8 := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err8 != nil {
		var err error
		if key, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			if key, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
				key = nil
			}
		}
	}
	if key == nil {
		// x509's messages name algorithms and ASN.1 tags, never key bytes,
		// but only the algorithm is worth passing on.
		if strings.Contains(err8.Error(), oidDSA) {
			return nil, errors.New("a DSA key, which JWT assertions cannot use; use an RSA or EC (P-256, P-384, P-521) key")
		}
		if strings.Contains(err8.Error(), "unknown algorithm") {
			return nil, errors.New("a private key of an algorithm flowcred cannot sign with; use an RSA or EC (P-256, P-384, P-521) key")
		}
		return nil, fmt.Errorf("a PEM %q block whose content is not a valid private key", truncateForMessage(block.Type))
	}

	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < minRSAKeyBits {
			return nil, fmt.Errorf("a %d-bit RSA key; RS256 needs at least %d bits", bits, minRSAKeyBits)
		}
		return &signingKey{key: k, alg: jose.RS256, desc: fmt.Sprintf("an RSA %d-bit key", k.N.BitLen())}, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return &signingKey{key: k, alg: jose.ES256, desc: "an EC P-256 key"}, nil
		case elliptic.P384():
			return &signingKey{key: k, alg: jose.ES384, desc: "an EC P-384 key"}, nil
		case elliptic.P521():
			return &signingKey{key: k, alg: jose.ES512, desc: "an EC P-521 key"}, nil
		}
		return nil, fmt.Errorf("an EC key on curve %s; use P-256, P-384 or P-521", k.Curve.Params().Name)
	case ed25519.PrivateKey:
		return nil, errors.New("an Ed25519 key, which flowcred does not sign with; use an RSA or EC (P-256, P-384, P-521) key")
	case *ecdh.PrivateKey:
		return nil, errors.New("an X25519 key, which cannot sign; use an RSA or EC (P-256, P-384, P-521) key")
	}
	return nil, fmt.Errorf("a %T, which flowcred cannot sign with; use an RSA or EC key", key)
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
}

// buildAssertion turns a binding and its resolved inputs into an assertion.
// An unusable key (from a referenced secret: inline values were checked at
// write time) is an upstreamError naming the field and the secret.
func buildAssertion(e *bindingEntry, in map[string]string) (*assertion, error) {
	switch e.Kind {
	case kindGoogleServiceAccount:
		return googleAssertion(e, in)
	case kindOAuth2JWTBearer:
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
		return &assertion{
			key:       key,
			kid:       e.Plain["key_id"],
			claims:    claims,
			lifetime:  jwtBearerAssertionLifetime,
			jti:       true,
			formScope: strings.Join(e.Scopes, " "),
		}, nil
	}
	return nil, fmt.Errorf("kind %q has no JWT-bearer grant", e.Kind)
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
	a := &assertion{lifetime: googleAssertionLifetime}
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

// jwtGrant obtains a token with a JWT-bearer grant (google.service_account,
// oauth2.jwt_bearer).
func (b *backend) jwtGrant(ctx context.Context, e *bindingEntry, in map[string]string) (*upstreamToken, error) {
	a, err := buildAssertion(e, in)
	if err != nil {
		return nil, err
	}
	signed, err := a.sign(b.now())
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {jwtBearerGrantType}, "assertion": {signed}}
	if a.formScope != "" {
		form.Set("scope", a.formScope)
	}
	tok, err := b.postTokenForm(ctx, e.tokenURL(), form, a.idToken)
	if err != nil {
		return nil, explainJWTError(e, a, err)
	}
	return tok, nil
}

// tokenResponseJSON is a token endpoint's JSON answer, success or error.
type tokenResponseJSON struct {
	AccessToken      string          `json:"access_token"`
	TokenType        string          `json:"token_type"`
	ExpiresIn        json.RawMessage `json:"expires_in"`
	IDToken          string          `json:"id_token"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
	ErrorURI         string          `json:"error_uri"`
}

// postTokenForm POSTs a token request and parses the answer. Error answers
// become *oauth2.RetrieveError (code, description, status; never the body)
// so that classifyUpstream classifies them like the other kinds'. With
// idToken, the answer's id_token is the token handed out and its exp the
// expiry.
func (b *backend) postTokenForm(ctx context.Context, tokenURL string, form url.Values, idToken bool) (*upstreamToken, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &upstreamError{class: classConfig, msg: "token_url cannot be requested: " + sanitize(err.Error(), 200)}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := b.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the token response: %w", err)
	}
	if len(body) > maxResponseBytes {
		return nil, &upstreamError{class: classTransient, status: resp.StatusCode, msg: fmt.Sprintf("token response larger than %d bytes", maxResponseBytes)}
	}
	var tr tokenResponseJSON
	jsonErr := json.Unmarshal(body, &tr)
	if resp.StatusCode < 200 || resp.StatusCode > 299 || (jsonErr == nil && tr.Error != "" && tr.AccessToken == "" && tr.IDToken == "") {
		re := &oauth2.RetrieveError{Response: resp}
		if jsonErr == nil {
			re.ErrorCode, re.ErrorDescription, re.ErrorURI = tr.Error, tr.ErrorDescription, tr.ErrorURI
		}
		return nil, re
	}
	if jsonErr != nil {
		return nil, &upstreamError{class: classTransient, status: resp.StatusCode, msg: "token endpoint answered with a body that is not a token response"}
	}
	if idToken {
		if tr.IDToken == "" {
			return nil, &upstreamError{class: classTransient, status: resp.StatusCode, msg: "token endpoint answered without an id_token"}
		}
		exp := jwtExpiry(tr.IDToken)
		if exp.IsZero() {
			return nil, &upstreamError{class: classTransient, status: resp.StatusCode, msg: "token endpoint answered with an id_token that is not a JWT with an exp"}
		}
		return &upstreamToken{AccessToken: tr.IDToken, TokenType: "Bearer", Expiry: exp}, nil
	}
	if tr.AccessToken == "" {
		return nil, &upstreamError{class: classTransient, status: resp.StatusCode, msg: "token endpoint answered without an access_token"}
	}
	out := &upstreamToken{AccessToken: tr.AccessToken, TokenType: tr.TokenType}
	if secs := parseExpiresIn(tr.ExpiresIn); secs > 0 {
		out.Expiry = b.now().Add(time.Duration(secs) * time.Second)
	}
	return out, nil
}

// parseExpiresIn reads expires_in given as a number or, as some providers
// do, a string of digits. Zero means absent or unreadable; an absurd value
// is clamped to maxTokenLifetime (a Duration in nanoseconds cannot hold
// every int64 of seconds).
func parseExpiresIn(raw json.RawMessage) int64 {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	if s == "" {
		return 0
	}
	limit := int64(maxTokenLifetime / time.Second)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return min(n, limit)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 1 {
		return int64(min(f, float64(limit)))
	}
	return 0
}

// explainJWTError classifies a refused grant and adds a hint that says what
// to fix. Google's invalid_scope is a needs_reauth too: no retry can fix it,
// only an operator changing the binding.
func explainJWTError(e *bindingEntry, a *assertion, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	ue := classifyRetrieveError(re)
	ue.hint = jwtErrorHint(e, a, ue)
	if e.Kind == kindGoogleServiceAccount && ue.code == "invalid_scope" {
		ue.class = classReauth
	}
	return ue
}

// jwtErrorHint explains the JWT-bearer errors Google (and providers that
// copy its texts) answer. It quotes only non-secret binding fields.
func jwtErrorHint(e *bindingEntry, a *assertion, ue *upstreamError) string {
	google := e.Kind == kindGoogleServiceAccount
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

// validateKindInputs checks kind-specific inputs at write time: the shape of
// google.service_account bindings and the key material given inline (key
// files, PEM keys). Referenced secrets are checked when material is issued.
// Messages name the field and never quote key material.
func validateKindInputs(e *bindingEntry) *fieldError {
	switch e.Kind {
	case kindGoogleServiceAccount:
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
	case kindOAuth2JWTBearer:
		if v, ok := e.Inline["private_key"]; ok {
			if _, err := parsePrivateKey(v); err != nil {
				return fieldErr("private_key", "%s", err)
			}
		}
	}
	return nil
}
