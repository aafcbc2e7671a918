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
// wraps one of them and keeps Vault's message.
var (
	// ErrNotFound: the handle has no binding (the plugin answers "no
	// binding for handle"), or nothing is mounted at the path.
	ErrNotFound = errors.New("credential handle not found")
	// ErrNeedsReauth: the provider refused the binding's grant
	// (invalid_grant, invalid_client, unauthorized_client); a person must
	// re-authorize. Retrying does not help.
	ErrNeedsReauth = errors.New("credential needs re-authorization")
	// ErrUnavailable: Vault is unreachable, sealed or failing, or the
	// provider is down and the plugin has no valid cached token (502).
	// Retrying later may help.
	ErrUnavailable = errors.New("credential service unavailable")
	// ErrPermissionDenied: the Vault token may not read the handle (403).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrMisconfigured: the plugin refused the read for another reason
	// that an operator must fix: a referenced secret is missing, the
	// provider refused the request (invalid_scope, ...), an invalid handle.
	ErrMisconfigured = errors.New("credential binding misconfigured")
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

// responseError maps a Vault answer to a sentinel. The plugin's 400s are
// told apart by their message, which is part of its contract.
func responseError(handle string, status int, msgs []string, cause error) *Error {
	msgs = cleanMessages(msgs)
	e := &Error{Handle: handle, StatusCode: status, Messages: msgs, cause: cause}
	joined := strings.Join(msgs, "; ")
	switch {
	case status == http.StatusForbidden:
		e.kind = ErrPermissionDenied
	case status == http.StatusNotFound:
		e.kind = ErrNotFound
	case status == http.StatusBadRequest && strings.Contains(joined, "no binding for handle"):
		e.kind = ErrNotFound
	case status == http.StatusBadRequest && strings.Contains(joined, "needs re-authorization"):
		e.kind = ErrNeedsReauth
	case status == http.StatusTooManyRequests || status >= 500:
		e.kind = ErrUnavailable
	default:
		e.kind = ErrMisconfigured
	}
	return e
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
