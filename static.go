package flowcred

import (
	"time"
)

// defaultStaticTTL is the lease length of an api_token binding without ttl.
const defaultStaticTTL = time.Hour

// staticMaterial builds the material of an api_token binding: no upstream
// call, the token is served as configured.
func staticMaterial(handle string, e *bindingEntry, in map[string]string, now time.Time) *material {
	header := e.Plain["header"]
	if header == "" {
		header = "Authorization"
	}
	scheme, set := e.Plain["scheme"]
	if !set {
		scheme = "Bearer"
	}
	value := in["token"]
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
		accessToken: in["token"],
		tokenType:   scheme,
		obtainedAt:  now,
		headers:     headers,
		leaseCap:    ttl,
		static:      true,
	}
}
