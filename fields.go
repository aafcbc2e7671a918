package flowcred

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/net/http/httpguts"
)

// Input limits. A value over a limit is refused with a 400 naming the field.
const (
	maxInlineSecretBytes = maxSecretBytes
	maxPlainBytes        = 2048
	maxDescriptionBytes  = 1024
	maxScopes            = 100
	maxExtraHeaders      = 32
	maxTokenParams       = 32
	maxHeaderValueBytes  = 4096
)

// nameRe is framework.GenericNameRegex, anchored: the shape of handles and
// secret names.
var nameRe = regexp.MustCompile(`^\w(([\w-.]+)?\w)?$`)

// fieldError is a caller-fixable problem with one field. Its message never
// contains a secret value.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return "invalid " + e.field + ": " + e.msg }

func fieldErr(field, format string, args ...interface{}) *fieldError {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

func (e *fieldError) response() *logical.Response { return logical.ErrorResponse(e.Error()) }

// rejectUnknownFields refuses request fields the path does not declare.
// Vault would otherwise accept them with only a warning, and a typo such as
// client_secert would silently leave a binding incomplete.
func rejectUnknownFields(d *framework.FieldData, extraAllowed map[string]bool) *logical.Response {
	var unknown []string
	for k := range d.Raw {
		if _, ok := d.Schema[k]; ok || extraAllowed[k] {
			continue
		}
		unknown = append(unknown, k)
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return logical.ErrorResponse("unknown field %s", strings.Join(quoteAll(unknown), ", "))
}

func quoteAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// validateName checks a handle or secret name.
func validateName(field, v string) *fieldError {
	if !nameRe.MatchString(v) || len(v) > 128 {
		return fieldErr(field, "%q is not a valid name: use letters, digits, '_', '-' and '.', starting and ending with a letter or digit, at most 128 characters", truncateForMessage(v))
	}
	return nil
}

// truncateForMessage shortens a non-secret value quoted in an error.
func truncateForMessage(v string) string {
	if len(v) > 80 {
		return v[:80] + "..."
	}
	return v
}

// validateTokenURL requires https, or http on a loopback host.
func validateTokenURL(field, raw string) *fieldError {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return fieldErr(field, "%q is not an absolute URL", truncateForMessage(raw))
	}
	if u.User != nil {
		return fieldErr(field, "must not carry credentials in the URL; use client_id and client_secret")
	}
	if u.Fragment != "" {
		return fieldErr(field, "must not have a fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
		return fieldErr(field, "%q uses http on a host that is not loopback; use https", truncateForMessage(raw))
	default:
		return fieldErr(field, "%q: scheme must be https (or http on loopback)", truncateForMessage(raw))
	}
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validateScope checks one OAuth2 scope token (RFC 6749 3.3: NQCHAR).
func validateScope(field, s string) *fieldError {
	if s == "" {
		return fieldErr(field, "empty scope")
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return fieldErr(field, "scope %q has a character OAuth2 does not allow in a scope", truncateForMessage(s))
		}
	}
	return nil
}

// validateHeaderName requires an HTTP token (RFC 9110 5.1).
func validateHeaderName(field, name string) *fieldError {
	if !httpguts.ValidHeaderFieldName(name) {
		return fieldErr(field, "%q is not a valid HTTP header name", truncateForMessage(name))
	}
	return nil
}

// headerSafe reports whether v can be sent in an HTTP header value: no CR,
// LF or other control character (a tab is allowed).
func headerSafe(v string) bool {
	return httpguts.ValidHeaderFieldValue(v) && !strings.ContainsAny(v, "\r\n")
}

// validateHeaderValue refuses CR, LF and other control characters.
func validateHeaderValue(field, name, value string) *fieldError {
	if len(value) > maxHeaderValueBytes {
		return fieldErr(field, "value of header %q is longer than %d bytes", name, maxHeaderValueBytes)
	}
	if !headerSafe(value) {
		return fieldErr(field, "value of header %q has a control character (CR, LF or similar)", name)
	}
	return nil
}

// validatePlainText is for identifiers such as issuer, subject or key IDs.
func validatePlainText(field, v string) *fieldError {
	if len(v) > maxPlainBytes {
		return fieldErr(field, "longer than %d bytes", maxPlainBytes)
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return fieldErr(field, "has a control character")
		}
	}
	return nil
}

// reservedHeaders cannot be set through extra_headers: the transport owns them.
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true,
	"te": true, "upgrade": true, "trailer": true, "keep-alive": true, "proxy-connection": true,
}

// reservedTokenParams are set by the grant itself and cannot be overridden.
var reservedTokenParams = map[string]bool{
	"grant_type": true, "client_id": true, "client_secret": true, "scope": true,
	"refresh_token": true, "assertion": true, "client_assertion": true, "client_assertion_type": true,
}
