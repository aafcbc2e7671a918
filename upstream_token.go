package flowcred

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// upstreamToken is what a grant returns.
type upstreamToken struct {
	AccessToken  string
	TokenType    string
	RefreshToken string
	// ExpiresIn is the lifetime the provider gave (expires_in), zero if none.
	ExpiresIn time.Duration
	// Expiry is an absolute expiry (an ID token's exp), zero if none.
	Expiry time.Time
	// RefreshExpiresIn is the refresh token's remaining life when the
	// provider says (refresh_token_expires_in), zero if not.
	RefreshExpiresIn time.Duration
	// Scope is the answer's scope: the scopes granted, when the provider
	// says.
	Scope string
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

// maxTokenLifetime bounds the life the plugin believes a token has.
const maxTokenLifetime = 365 * 24 * time.Hour

// tokenExpiry is when a token obtained at now expires: expires_in counts
// from now on this node's clock, an absolute expiry (a JWT's exp) is taken
// as is, else the access token's own exp, else default_token_lifetime. A
// lifetime beyond maxTokenLifetime is clamped (a year past 9999 cannot even
// be stored).
func tokenExpiry(tok *upstreamToken, cfg *configEntry, now time.Time) time.Time {
	exp := tok.Expiry
	if tok.ExpiresIn > 0 {
		exp = now.Add(min(tok.ExpiresIn, maxTokenLifetime))
	}
	if exp.IsZero() {
		exp = jwtExpiry(tok.AccessToken)
	}
	if exp.IsZero() || !exp.After(now) {
		exp = now.Add(cfg.DefaultTokenLifetime)
	}
	if exp.Sub(now) > maxTokenLifetime {
		exp = now.Add(maxTokenLifetime)
	}
	return exp
}

// maxTokenBytes bounds an access token taken from a provider.
const maxTokenBytes = 16 << 10

// checkUpstreamToken refuses a token that cannot be put in a header as is:
// a provider (or something in front of it) must not be able to inject
// headers into every connector request through the token or its type.
func checkUpstreamToken(tok *upstreamToken) error {
	bad := func(v string) bool {
		return !httpguts.ValidHeaderFieldValue(v) || strings.ContainsAny(v, "\r\n\t ")
	}
	switch {
	case tok.AccessToken == "":
		return &upstreamError{class: classTransient, msg: "token endpoint answered without an access_token"}
	case len(tok.AccessToken) > maxTokenBytes:
		return &upstreamError{class: classTransient, msg: fmt.Sprintf("token endpoint answered with an access token longer than %d bytes", maxTokenBytes)}
	case bad(tok.AccessToken):
		return &upstreamError{class: classTransient, msg: "token endpoint answered with an access token that is not a valid header value"}
	case tok.TokenType != "" && !isHTTPToken(tok.TokenType):
		return &upstreamError{class: classTransient, msg: "token endpoint answered with a token_type that is not a valid authentication scheme"}
	}
	return nil
}

// inputsFingerprint identifies the inputs a re-authorization error refers to.
func inputsFingerprint(e *bindingEntry, inputs map[string]string) string {
	keys := make([]string, 0, len(inputs))
	for k := range inputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00", e.Generation)
	for _, k := range keys {
		fmt.Fprintf(h, "%s\x00%s\x00", k, inputs[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashSecret(v string) string {
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

func normalizeTokenType(t string) string {
	if t == "" || strings.EqualFold(t, "bearer") {
		return "Bearer"
	}
	return t
}

// jwtExpiry returns the exp claim of a JWT access token, or zero. The token
// is not verified: the expiry only decides when to refresh.
func jwtExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return time.Time{}
	}
	secs, err := claims.Exp.Int64()
	if err != nil || secs <= 0 {
		return time.Time{}
	}
	return time.Unix(secs, 0)
}
