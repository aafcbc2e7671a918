package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"
)

// Errors a host can branch on with errors.Is. The error returned by Resolve
// wraps exactly one of them and keeps Vault's message. They are decided from
// Vault's HTTP status and, for the plugin's 400s, the leading word of its
// message, which the plugin's contract keeps stable (docs/errors.md); never
// from other wording.
var (
	// ErrNotFound: the handle has no binding (the plugin answers 404), or
	// nothing is mounted at the path (Vault's own 404).
	ErrNotFound = errors.New("credential handle not found")
	// ErrNeedsReauth: the provider refused the binding's grant
	// (invalid_grant, invalid_client, unauthorized_client) and no cached
	// token is still valid; a person must re-authorize. Retrying does not
	// help. The plugin answers 400 "needs_reauth: ...".
	ErrNeedsReauth = errors.New("credential needs re-authorization")
	// ErrNeedsAuthorization: the binding has never been connected (it has
	// no refresh token yet); a person must complete the authorization. The
	// plugin answers 400 "needs_authorization: ...".
	ErrNeedsAuthorization = errors.New("credential needs authorization")
	// ErrUnavailable: Vault is unreachable, sealed or failing, or the
	// provider is down and the plugin has no valid cached token (502).
	// Retrying later may help.
	ErrUnavailable = errors.New("credential service unavailable")
	// ErrPermissionDenied: Vault answered 403 and the connector's own
	// Vault token is still valid: its policy does not allow reading the
	// handle.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrVaultTokenExpired: Vault answered 403 because the connector's
	// own Vault token has expired or was revoked (and, with WithAuth, a
	// new login failed). See VaultProvider for how this is decided.
	ErrVaultTokenExpired = errors.New("vault token expired")
	// ErrMisconfigured: the plugin refused the read for another reason
	// that an operator must fix: a referenced secret is missing, the
	// provider refused the request (invalid_scope, ...), an invalid handle.
	ErrMisconfigured = errors.New("credential binding misconfigured")
)

// Leading words of the plugin's 400 messages (design.md, "Errors").
const (
	wordNeedsReauth        = "needs_reauth"
	wordNeedsAuthorization = "needs_authorization"
)

// Error is a failed resolve. It wraps one of the sentinel errors above and,
// when Vault answered, the *api.ResponseError.
type Error struct {
	// Handle is the handle that was resolved.
	Handle string
	// StatusCode is Vault's HTTP status, 0 when Vault did not answer.
	StatusCode int
	// Messages are Vault's error messages. They never carry a secret: the
	// plugin builds them from names and the provider's error code.
	Messages []string

	kind  error
	cause error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "resolve %q: %s", e.Handle, e.kind)
	if len(e.Messages) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Messages, "; "))
	} else if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(oneLine(e.cause.Error()))
	}
	return b.String()
}

// Unwrap returns the sentinel and the underlying cause.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// classify turns a failed Vault read into an *Error.
func classify(ctx context.Context, handle string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return responseError(handle, re.StatusCode, re.Errors, err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The caller gave up: say so rather than blaming Vault.
		return &Error{Handle: handle, kind: ErrUnavailable, cause: ctxErr}
	}
	return &Error{Handle: handle, kind: ErrUnavailable, cause: err}
}

// responseError maps a Vault answer to a sentinel, by status and, for a
// 400, the message's leading word only (after cleanMessages has removed
// Vault's own "1 error occurred:" wrapping, should a version add it).
func responseError(handle string, status int, msgs []string, cause error) *Error {
	e := &Error{Handle: handle, StatusCode: status, Messages: cleanMessages(msgs), cause: cause}
	switch {
	case status == http.StatusForbidden:
		e.kind = ErrPermissionDenied // read may turn it into ErrVaultTokenExpired
	case status == http.StatusNotFound:
		e.kind = ErrNotFound
	case status == http.StatusBadRequest && leadingWord(e.Messages) == wordNeedsReauth:
		e.kind = ErrNeedsReauth
	case status == http.StatusBadRequest && leadingWord(e.Messages) == wordNeedsAuthorization:
		e.kind = ErrNeedsAuthorization
	case status == http.StatusTooManyRequests || status >= 500:
		e.kind = ErrUnavailable
	default:
		e.kind = ErrMisconfigured
	}
	return e
}

// leadingWord is what precedes the first ":" of Vault's first error
// message, when that is one word (letters, digits and _), else "".
func leadingWord(msgs []string) string {
	if len(msgs) == 0 {
		return ""
	}
	w, _, ok := strings.Cut(strings.TrimSpace(msgs[0]), ":")
	if !ok || w == "" || strings.IndexFunc(w, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 {
		return ""
	}
	return w
}

// cleanMessages keeps Vault's messages on one line each.
func cleanMessages(msgs []string) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if m = oneLine(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// oneLine folds Vault's multi-line error texts ("1 error occurred:\n\t* ...").
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "1 error occurred:", "")
	fields := strings.Fields(strings.ReplaceAll(s, "\t* ", " "))
	return strings.Join(fields, " ")
}
