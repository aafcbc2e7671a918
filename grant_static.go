package flowcred

import (
	"strings"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
)

// api_token: a static token, served as configured in the binding's header
// with its scheme; no upstream.

var apiTokenKind = &kind{
	Kind:  mustKind(kindtable.APIToken),
	serve: serveAPIToken,
	cleanSecret: func(field, v string) (string, *fieldError) {
		if field != apiTokenField {
			return v, nil
		}
		return cleanAPIToken(field, v)
	},
	credentialHeader: apiTokenHeader,
}

// apiTokenHeader is the header a binding's token goes in.
func apiTokenHeader(e *bindingEntry) string {
	if h := e.Plain["header"]; h != "" {
		return h
	}
	return "Authorization"
}

// serveAPIToken checks the resolved token and builds its material.
func serveAPIToken(handle string, e *bindingEntry, in map[string]string, now time.Time) (*material, *fieldError) {
	if ferr := checkStaticInputs(e, in); ferr != nil {
		return nil, ferr
	}
	return staticMaterial(handle, e, in, now), nil
}

// defaultStaticTTL is the lease length of an api_token binding without ttl.
const defaultStaticTTL = time.Hour

// apiTokenField is the api_token input that is served in a header.
const apiTokenField = "token"

// trimFileNewline removes one trailing "\n" or "\r\n", which a value read
// from a file (token=@file, value=@file) usually ends with.
func trimFileNewline(v string) string {
	if strings.HasSuffix(v, "\n") {
		v = strings.TrimSuffix(v[:len(v)-1], "\r")
	}
	return v
}

// cleanAPIToken checks an inline api_token value at write time: one
// trailing newline is removed, any other CR or LF is refused. The message
// names the field, never the value.
func cleanAPIToken(field, v string) (string, *fieldError) {
	t := trimFileNewline(v)
	if v != "" && t == "" {
		return "", fieldErr(field, "is empty once its trailing newline is removed")
	}
	if !headerSafe(t) {
		return "", fieldErr(field, "has a CR, LF or other control character, which cannot go into a header (one trailing newline, as a file ends, is removed; any other is refused)")
	}
	return t, nil
}

// checkStaticInputs checks, when a token is read, the inputs an api_token
// binding resolved: a referenced secret may hold any value (a PEM key has
// newlines), so its value is checked only here. The error names the field
// and the secret, never the value. A nil result means staticMaterial can
// serve the inputs.
func checkStaticInputs(e *bindingEntry, in map[string]string) *fieldError {
	if headerSafe(trimFileNewline(in[apiTokenField])) {
		return nil
	}
	if name, ok := e.Refs[apiTokenField]; ok {
		return fieldErr(apiTokenField+secretRefSuffix, "secret %q has a CR, LF or other control character, which cannot go into a header (one trailing newline, as a file ends, is removed; any other is refused); write the secret again", name)
	}
	return fieldErr(apiTokenField, "has a CR, LF or other control character, which cannot go into a header; write the binding again")
}

// staticMaterial builds the material of an api_token binding: no upstream
// call, the token is served as configured, less one trailing newline (a
// secret written with value=@file, or a binding written before write-time
// trimming). Callers check the inputs with checkStaticInputs first.
func staticMaterial(handle string, e *bindingEntry, in map[string]string, now time.Time) *material {
	header := apiTokenHeader(e)
	scheme, set := e.Plain["scheme"]
	if !set {
		scheme = "Bearer"
	}
	token := trimFileNewline(in[apiTokenField])
	value := token
	if scheme != "" {
		value = scheme + " " + value
	}
	headers := make(map[string]string, len(e.ExtraHeaders)+1)
	for k, v := range e.ExtraHeaders {
		headers[k] = v
	}
	headers[header] = value
	ttl := e.TTL
	if ttl == 0 {
		ttl = defaultStaticTTL
	}
	return &material{
		handle:      handle,
		kind:        e.Kind,
		accessToken: token,
		tokenType:   scheme,
		obtainedAt:  now,
		headers:     headers,
		leaseCap:    ttl,
		static:      true,
	}
}
