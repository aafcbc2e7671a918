package flowcred

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// tokenState is a handle's token and refresh state, stored seal-wrapped at
// tokens/<handle> so that a restart or plugin reload does not force a refresh.
type tokenState struct {
	// AccessToken is the last token obtained upstream.
	AccessToken string `json:"access_token,omitempty"`
	// TokenType as the provider named it, normalised (Bearer).
	TokenType string `json:"token_type,omitempty"`
	// Expiry of AccessToken; zero means none is known.
	Expiry time.Time `json:"expiry,omitempty"`
	// ObtainedAt is when AccessToken was issued to us.
	ObtainedAt time.Time `json:"obtained_at,omitempty"`
	// Generation is the binding generation AccessToken was obtained under.
	Generation uint64 `json:"generation"`
	// BindingID is the ID of the binding this state belongs to: a binding
	// deleted and created again under the same handle has another ID and
	// never sees this state.
	BindingID string `json:"binding_id,omitempty"`
	// RefreshToken is the newest refresh token the provider gave us. It
	// replaces the binding's configured one while RefreshOrigin matches.
	RefreshToken string `json:"refresh_token,omitempty"`
	// RefreshOrigin is a hash of the configured refresh token that
	// RefreshToken descends from. When an operator configures a different
	// refresh token, the hashes differ and the configured one is used.
	RefreshOrigin string `json:"refresh_origin,omitempty"`
	// RefreshEndpoint is a hash of the token URL RefreshToken was obtained
	// from. A binding whose token_url changed since never sends it (to the
	// new endpoint, or to a revocation endpoint): an operator who can
	// write the binding cannot aim a refresh token they never held at a
	// host of their choosing. Empty in states stored before this field:
	// accepted, and set by the next refresh.
	RefreshEndpoint string `json:"refresh_endpoint,omitempty"`
	// ReauthFingerprint is a hash of the inputs that were refused with a
	// re-authorization error; while they are unchanged, reads fail fast
	// instead of asking the provider again.
	ReauthFingerprint string `json:"reauth_fingerprint,omitempty"`
	// ReauthDueAt is when the refresh token ends, when the provider said
	// (refresh_token_expires_in); zero when unknown.
	ReauthDueAt time.Time `json:"reauth_due_at,omitempty"`
	// GrantedScopes are the scopes the provider said it granted (the token
	// answer's scope), kept from the last answer that said.
	GrantedScopes []string `json:"granted_scopes,omitempty"`
	// Status is what binding reads show.
	Status bindingStatus `json:"status"`
}

// applyToken records a token a grant returned at now under binding
// generation gen: the access token, its expiry and the granted scopes, and
// health ok. The refresh token is the caller's business.
func (st *tokenState) applyToken(tok *upstreamToken, cfg *configEntry, gen uint64, now time.Time) {
	st.AccessToken = tok.AccessToken
	st.TokenType = normalizeTokenType(tok.TokenType)
	st.ObtainedAt = now
	st.Expiry = tokenExpiry(tok, cfg, now)
	st.Generation = gen
	st.ReauthFingerprint = ""
	if sc := strings.Fields(tok.Scope); len(sc) > 0 {
		st.GrantedScopes = sc
	}
	if tok.RefreshExpiresIn > 0 {
		st.ReauthDueAt = now.Add(tok.RefreshExpiresIn)
	}
	st.Status = bindingStatus{Health: healthOK, LastRefreshAt: now}
}

// refreshEndpoint identifies where a binding's refresh tokens come from.
func refreshEndpoint(e *bindingEntry) string { return hashSecret("token_url\x00" + e.tokenURL()) }

// storedRefreshToken is the refresh token of st the binding may send: the
// newest rotated or connected one, while the configured refresh token it
// descends from (origin) and the token URL it came from are unchanged.
func storedRefreshToken(e *bindingEntry, st *tokenState, origin string) string {
	if st == nil || st.RefreshToken == "" || st.RefreshOrigin != origin {
		return ""
	}
	if st.RefreshEndpoint != "" && st.RefreshEndpoint != refreshEndpoint(e) {
		return ""
	}
	return st.RefreshToken
}

// needsAuthorization reports whether a binding of a kind that can be
// connected has no refresh token to send: none configured, and none
// obtained by connecting (or rotated from one that is no longer
// configured).
func needsAuthorization(e *bindingEntry, st *tokenState) bool {
	k := kindOf(e.Kind)
	if k == nil || !k.rotates || e.hasInput(refreshTokenField) {
		return false
	}
	return storedRefreshToken(e, st, hashSecret("")) == ""
}

// bindingStatus is the status object of design.md.
type bindingStatus struct {
	Health              string    `json:"health,omitempty"`
	LastRefreshAt       time.Time `json:"last_refresh_at,omitempty"`
	LastError           string    `json:"last_error,omitempty"`
	LastErrorCode       string    `json:"last_error_code,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures,omitempty"`
}

func getTokenState(ctx context.Context, s logical.Storage, handle string) (*tokenState, error) {
	return getJSON[tokenState](ctx, s, tokenStoragePrefix+handle, fmt.Sprintf("token state of %q", handle))
}

// currentTokenState is the newest token state of a handle's binding e: the
// published one when this node has it (a refresh that did not rotate
// publishes before its write lands, commit in refresh.go), else storage's.
func (b *backend) currentTokenState(ctx context.Context, s logical.Storage, handle string, e *bindingEntry) (*tokenState, error) {
	if hc := b.handles.peek(handle); hc != nil {
		if snap := hc.snap.Load(); snap != nil && snap.state != nil && snap.binding.ID == e.ID && snap.binding.Generation == e.Generation {
			return snap.state, nil
		}
	}
	return getTokenState(ctx, s, handle)
}

func putTokenState(ctx context.Context, s logical.Storage, handle string, st *tokenState) error {
	return putJSON(ctx, s, tokenStoragePrefix+handle, fmt.Sprintf("token state of %q", handle), st)
}

// bindingHealth is a binding's health from its token state: the stored
// health, else ok for a kind without an upstream and unknown for one that
// has not refreshed yet; needs_authorization when it has no refresh token
// to send (unless a device grant is pending). statusData adds what missing
// secrets change.
func bindingHealth(e *bindingEntry, st *tokenState) string {
	h := healthUnknown
	if k := kindOf(e.Kind); k != nil && !k.upstream() {
		h = healthOK
	}
	if st != nil && st.Status.Health != "" {
		h = st.Status.Health
	}
	if h != healthPendingAuthorization && needsAuthorization(e, st) {
		h = healthNeedsAuthorization
	}
	return h
}

func statusData(e *bindingEntry, st *tokenState, missing []string) map[string]interface{} {
	out := map[string]interface{}{
		"health":               bindingHealth(e, st),
		"consecutive_failures": 0,
	}
	if st != nil {
		if !st.Status.LastRefreshAt.IsZero() {
			out["last_refresh_at"] = st.Status.LastRefreshAt.UTC().Format(time.RFC3339)
		}
		if !st.Expiry.IsZero() && st.AccessToken != "" {
			out["expires_at"] = st.Expiry.UTC().Format(time.RFC3339)
		}
		if st.Status.LastError != "" {
			out["last_error"] = st.Status.LastError
			out["last_error_at"] = st.Status.LastErrorAt.UTC().Format(time.RFC3339)
		}
		if st.Status.LastErrorCode != "" {
			out["last_error_code"] = st.Status.LastErrorCode
		}
		out["consecutive_failures"] = st.Status.ConsecutiveFailures
		if len(st.GrantedScopes) > 0 {
			out["granted_scopes"] = st.GrantedScopes
		}
		if !st.ReauthDueAt.IsZero() {
			out["reauth_due_at"] = st.ReauthDueAt.UTC().Format(time.RFC3339)
		}
	}
	if len(missing) > 0 {
		out["missing_secrets"] = missing
		out["last_error"] = "missing " + strings.Join(missing, ", ")
		if k := kindOf(e.Kind); k != nil && !k.upstream() {
			out["health"] = healthUnknown
		}
	}
	return out
}
