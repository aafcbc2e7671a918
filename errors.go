package flowcred

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Binding health values (design.md, "Failures").
const (
	healthOK          = "ok"
	healthDegraded    = "degraded"
	healthNeedsReauth = "needs_reauth"
	healthUnknown     = "unknown"
	// A refresh-token binding that has no refresh token yet, and one whose
	// device grant waits for the user (design.md, "Connecting").
	healthNeedsAuthorization   = "needs_authorization"
	healthPendingAuthorization = "pending_authorization"
)

// errClass says who can fix a failed refresh.
type errClass int

const (
	// classTransient: the provider or the network failed; retrying may work.
	classTransient errClass = iota
	// classReauth: the grant itself was refused; a person must re-authorize
	// or fix the credentials.
	classReauth
	// classConfig: the provider refused the request for another reason
	// (invalid_scope, invalid_request, ...); the binding must be fixed.
	classConfig
)

// upstreamError is a classified failure of a token request. Its message is
// built from the provider's error code and description and the HTTP status,
// never from a request or response body, so it carries no secret.
type upstreamError struct {
	class       errClass
	code        string // OAuth2 error code, e.g. invalid_grant
	description string // provider's error_description, sanitized
	status      int    // HTTP status, 0 for network errors
	retryAfter  time.Duration
	msg         string
	// hint tells an operator what to do, when the error is understood.
	hint string
}

func (e *upstreamError) Error() string {
	s := e.msg
	if e.hint != "" {
		s += " (" + e.hint + ")"
	}
	return s
}

func (e *upstreamError) health() string {
	if e.class == classReauth {
		return healthNeedsReauth
	}
	return healthDegraded
}

// reauthCodes are the OAuth2 error codes that mean the grant is dead.
var reauthCodes = map[string]bool{
	"invalid_grant":       true,
	"invalid_client":      true,
	"unauthorized_client": true,
}

// classifyUpstream returns err as an *upstreamError: the token client and
// the grants return one for every failure they understand; anything else
// (a transport error, a signing error) is classified by its Go type.
func classifyUpstream(err error) *upstreamError {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue
	}
	return transportError(err)
}

// transportError classifies a failure to get an answer at all.
func transportError(err error) *upstreamError {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &upstreamError{class: classTransient, msg: "token endpoint did not answer in time"}
	case errors.Is(err, context.Canceled):
		return &upstreamError{class: classTransient, msg: "token request was cancelled"}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &upstreamError{class: classTransient, msg: "token endpoint did not answer in time"}
	}
	return &upstreamError{class: classTransient, msg: "token request failed: " + sanitize(err.Error(), 300)}
}

// transientCodes are OAuth2 error codes that say the provider, not the
// grant, failed (RFC 6749 section 5.2 allows them in a 400 too).
var transientCodes = map[string]bool{
	"temporarily_unavailable": true,
	"server_error":            true,
}

// errCodeRedirect is last_error_code for a token endpoint answering 3xx.
const errCodeRedirect = "redirect"

// redirectError describes a 3xx answer by its Location's host only: the
// URL's path and query may carry anything.
func redirectError(resp *http.Response) *upstreamError {
	host := "an unreadable location"
	if loc, err := resp.Location(); err == nil && loc.Host != "" {
		host = "host " + sanitize(loc.Host, 100)
	}
	return &upstreamError{
		class:  classTransient,
		code:   errCodeRedirect,
		status: resp.StatusCode,
		msg: fmt.Sprintf("token endpoint answered HTTP %d, a redirect to %s, which is not followed; set token_url to the endpoint itself",
			resp.StatusCode, host),
	}
}

// noRedirect is the upstream client's CheckRedirect: the 3xx itself is the
// answer, and the request (a refresh token, a client secret, an assertion)
// is never sent again elsewhere.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// scrub removes every known secret value from the error's provider-derived
// text: a provider may echo a refresh token or client secret in
// error_description, and that text reaches token-read errors, the binding
// status and validate.
func (e *upstreamError) scrub(secrets []string) {
	if c := scrubSecrets(e.code, secrets); c != e.code {
		e.code = "unrecognized_error"
	}
	e.msg = scrubSecrets(e.msg, secrets)
	e.description = scrubSecrets(e.description, secrets)
	e.hint = scrubSecrets(e.hint, secrets)
}

// scrubList is what scrub removes after a request that sent refreshToken:
// that token and every secret input, except client_id (an identifier, which
// Google's hints quote). A multi-line secret (a PEM key) is scrubbed line by
// line, and of a Google key file only its private key.
func scrubList(inputs map[string]string, refreshToken string) []string {
	out := []string{refreshToken}
	for f, v := range inputs {
		switch f {
		case "client_id":
			continue
		case "credentials_json":
			var kf struct {
				PrivateKey string `json:"private_key"`
			}
			_ = json.Unmarshal([]byte(v), &kf)
			v = kf.PrivateKey
		}
		words := strings.Fields(v)
		if len(words) == 1 {
			out = append(out, v)
			continue
		}
		for _, w := range words {
			if len(w) >= 16 && !strings.HasPrefix(w, "-") {
				out = append(out, w)
			}
		}
	}
	return out
}

// secretWord is a run of characters that tokens and keys are made of.
var secretWord = regexp.MustCompile(`[A-Za-z0-9_~+/=.\-]{8,}`)

// redacted replaces a secret in upstream text.
const redacted = "[redacted]"

// scrubSecrets replaces each secret (6 characters or more) in text, and any
// word of 8 or more characters that is a piece of one (a provider may quote
// a token truncated or a part of it).
func scrubSecrets(text string, secrets []string) string {
	if text == "" {
		return text
	}
	for _, sec := range secrets {
		if len(sec) >= 6 {
			text = strings.ReplaceAll(text, sec, redacted)
		}
	}
	return secretWord.ReplaceAllStringFunc(text, func(w string) string {
		core := strings.Trim(w, ".")
		if len(core) < 8 {
			return w
		}
		for _, sec := range secrets {
			if strings.Contains(sec, core) {
				return strings.Replace(w, core, redacted, 1)
			}
		}
		return w
	})
}

func parseRetryAfter(v string) time.Duration {
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// sanitize keeps provider text printable and short.
func sanitize(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.TrimSpace(s)
}
