package flowcred

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// The one token-endpoint client: every grant of every kind is a
// tokenRequest sent by exchange, which builds the request, authenticates the
// client, bounds the answer, parses every answer shape (JSON or form), reads
// the lifetime and classifies failures into an *upstreamError from
// structured fields only: the HTTP status, the OAuth2 error code and Go
// error types, never message text.
//
// It is written here rather than on x/oauth2's token retrieval
// (clientcredentials.Config with grant_type overridden would cover every
// grant's request) because of what that retrieval answers:
//   - a malformed body and a 200 without access_token come back as plain
//     fmt errors, which could be classified only by matching their text;
//   - an answer that carries only an id_token (Google's target_audience
//     grant) is refused as "missing access_token";
//   - a body over 1 MiB is cut silently and then reported as unparsable;
//   - its auto-detected auth style retries after any failure, so an
//     outage costs two requests and a dead grant's invalid_grant is replaced
//     by the retry's invalid_client (see exchange).
// x/oauth2's AuthStyle values are used for auth_style.

// tokenRequest is one token request.
type tokenRequest struct {
	url  string
	form url.Values
	// clientID and clientSecret authenticate the client per style; both
	// empty: no client authentication (a JWT-bearer assertion is its own).
	clientID, clientSecret string
	style                  oauth2.AuthStyle
	// idToken: the answer's id_token is the token handed out, and its exp
	// the expiry.
	idToken bool
}

// tokenAnswer is a token endpoint's answer, success or error (RFC 6749
// sections 5.1 and 5.2; RFC 8693 and OIDC add id_token).
type tokenAnswer struct {
	AccessToken      string          `json:"access_token"`
	TokenType        string          `json:"token_type"`
	RefreshToken     string          `json:"refresh_token"`
	ExpiresIn        json.RawMessage `json:"expires_in"`
	RefreshExpiresIn json.RawMessage `json:"refresh_token_expires_in"`
	IDToken          string          `json:"id_token"`
	Scope            string          `json:"scope"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
}

// tokenClient sends token requests through the backend's upstream client
// (no redirects followed, User-Agent set).
type tokenClient struct {
	http *http.Client
}

// exchange sends r and returns the token or an *upstreamError.
func (c *tokenClient) exchange(ctx context.Context, r *tokenRequest) (*upstreamToken, error) {
	return call(ctx, c, r, func(resp *http.Response, body []byte) (*upstreamToken, error) {
		return parseAnswer(resp, body, r.idToken)
	})
}

// call sends r and parses the answer with parse. With
// oauth2.AuthStyleAutoDetect the client credentials go in an Authorization
// header and, only when the provider refuses that client authentication,
// once more in the form body.
func call[T any](ctx context.Context, c *tokenClient, r *tokenRequest, parse func(*http.Response, []byte) (T, error)) (T, error) {
	once := func(style oauth2.AuthStyle) (T, error) {
		resp, body, err := c.post(ctx, r, style)
		if err != nil {
			var zero T
			return zero, err
		}
		return parse(resp, body)
	}
	if r.style != oauth2.AuthStyleAutoDetect {
		return once(r.style)
	}
	out, err := once(oauth2.AuthStyleInHeader)
	var ue *upstreamError
	if err == nil || !errors.As(err, &ue) || !clientAuthRefused(ue) {
		return out, err
	}
	return once(oauth2.AuthStyleInParams)
}

// clientAuthRefused reports whether a refusal may mean "send the client
// credentials another way".
func clientAuthRefused(ue *upstreamError) bool {
	switch ue.code {
	case "invalid_client", "invalid_request":
		return true
	}
	return ue.status == http.StatusUnauthorized
}

// post sends the request once with the given client authentication and
// returns the answer's body, at most maxResponseBytes of it.
func (c *tokenClient) post(ctx context.Context, r *tokenRequest, style oauth2.AuthStyle) (*http.Response, []byte, error) {
	form := url.Values{}
	for k, v := range r.form {
		form[k] = v
	}
	useHeader := style == oauth2.AuthStyleInHeader && (r.clientID != "" || r.clientSecret != "")
	if !useHeader {
		if r.clientID != "" {
			form.Set("client_id", r.clientID)
		}
		if r.clientSecret != "" {
			form.Set("client_secret", r.clientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, &upstreamError{class: classConfig, msg: "token_url cannot be requested: " + sanitize(err.Error(), 200)}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if useHeader {
		// RFC 6749 section 2.3.1: both parts form-encoded first.
		req.SetBasicAuth(url.QueryEscape(r.clientID), url.QueryEscape(r.clientSecret))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, transportError(err)
	}
	defer resp.Body.Close()
	// At most maxResponseBytes are read; an answer that fills them is
	// refused as too large.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, nil, transportError(err)
	}
	if len(body) == maxResponseBytes {
		return nil, nil, &upstreamError{class: classTransient, status: resp.StatusCode, msg: fmt.Sprintf("token response larger than %d bytes", maxResponseBytes-1)}
	}
	return resp, body, nil
}

// parseAnswer turns a token endpoint's answer into a token or a classified
// refusal.
func parseAnswer(resp *http.Response, body []byte, idToken bool) (*upstreamToken, error) {
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// No redirect is followed (it would re-post the grant to wherever
		// Location says): whatever the body says, this is a failure of the
		// provider or of what is in front of it.
		return nil, redirectError(resp)
	}
	a, parsed := decodeAnswer(resp.Header.Get("Content-Type"), body)
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if !ok || (parsed && a.Error != "" && a.AccessToken == "" && a.IDToken == "") {
		return nil, refusal(resp, a)
	}
	notToken := func(what string) error {
		return &upstreamError{class: classTransient, status: resp.StatusCode, msg: "token endpoint answered " + what}
	}
	switch {
	case !parsed:
		return nil, notToken("with a body that is not a token response")
	case idToken && a.IDToken == "":
		return nil, notToken("without an id_token")
	case idToken:
		exp := jwtExpiry(a.IDToken)
		if exp.IsZero() {
			return nil, notToken("with an id_token that is not a JWT with an exp")
		}
		return &upstreamToken{AccessToken: a.IDToken, TokenType: "Bearer", Expiry: exp, Scope: a.Scope}, nil
	case a.AccessToken == "":
		return nil, notToken("without an access_token")
	}
	return &upstreamToken{
		AccessToken:  a.AccessToken,
		TokenType:    a.TokenType,
		RefreshToken: a.RefreshToken,
		ExpiresIn:    time.Duration(parseExpiresIn(a.ExpiresIn)) * time.Second,
		Scope:        a.Scope,
		// Microsoft, Google (for testing-mode apps) and GitHub send it.
		RefreshExpiresIn: time.Duration(parseExpiresIn(a.RefreshExpiresIn)) * time.Second,
	}, nil
}

// notSuccess is the error of an answer that is not a 2xx: a redirect (not
// followed) or a refusal classified by its status and error code; nil for
// a 2xx. Every endpoint's parser starts with it.
func notSuccess(resp *http.Response, body []byte) error {
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return redirectError(resp)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a, _ := decodeAnswer(resp.Header.Get("Content-Type"), body)
		return refusal(resp, a)
	}
	return nil
}

// decodeAnswer reads a JSON answer, or a form-encoded one when the content
// type says so (as some providers still answer, and x/oauth2 accepts).
func decodeAnswer(contentType string, body []byte) (*tokenAnswer, bool) {
	a := &tokenAnswer{}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		vals, err := url.ParseQuery(string(body))
		if err != nil || len(vals) == 0 {
			return a, false
		}
		a.AccessToken, a.TokenType, a.RefreshToken = vals.Get("access_token"), vals.Get("token_type"), vals.Get("refresh_token")
		a.IDToken, a.Scope = vals.Get("id_token"), vals.Get("scope")
		a.Error, a.ErrorDescription = vals.Get("error"), vals.Get("error_description")
		if e := vals.Get("expires_in"); e != "" {
			a.ExpiresIn = json.RawMessage(e)
		}
		if e := vals.Get("refresh_token_expires_in"); e != "" {
			a.RefreshExpiresIn = json.RawMessage(e)
		}
		return a, true
	}
	if err := json.Unmarshal(body, a); err != nil {
		return a, false
	}
	return a, true
}

// refusal classifies an error answer by its status and OAuth2 error code.
// Its message is built from those and the sanitized error_description,
// never from the body.
func refusal(resp *http.Response, a *tokenAnswer) *upstreamError {
	ue := &upstreamError{status: resp.StatusCode, code: errorCode(a.Error), description: sanitize(a.ErrorDescription, 300)}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		ue.retryAfter = parseRetryAfter(ra)
	}
	switch {
	case ue.code != "" && reauthCodes[ue.code]:
		ue.class = classReauth
	case transientCodes[ue.code] || ue.status == http.StatusTooManyRequests || ue.status >= 500:
		ue.class = classTransient
	case ue.code != "":
		ue.class = classConfig
	default:
		// A 4xx without an OAuth2 error body (an HTML error page, a proxy):
		// nothing says the grant is dead, so treat it as transient.
		ue.class = classTransient
	}
	switch {
	case ue.code != "" && ue.description != "":
		ue.msg = fmt.Sprintf("provider answered %s: %s", ue.code, ue.description)
	case ue.code != "":
		ue.msg = "provider answered " + ue.code
	default:
		ue.msg = fmt.Sprintf("token endpoint answered HTTP %d without an OAuth2 error", ue.status)
	}
	return ue
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

// errorCode keeps a provider's error code when it looks like one (RFC 6749
// codes are words such as invalid_grant): it is shown in the status, the
// health listing, webhooks and metrics-free logs, so anything else, which
// could echo what the request sent, becomes "unrecognized_error".
func errorCode(code string) string {
	if code == "" {
		return ""
	}
	if len(code) > 64 {
		return "unrecognized_error"
	}
	for _, c := range code {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "unrecognized_error"
		}
	}
	return code
}
