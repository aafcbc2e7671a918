package flowcred

import (
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
)

// A request whose handle or secret name does not match the name pattern
// gets a 400 that names the field, instead of Vault's generic "unsupported
// path". It is answered in HandleRequest (input_guard.go) when no path
// matched, not by catch-all paths: those would expand to the same OpenAPI
// paths as the real ones (bindings/{handle}, ...) and hide their
// operations from the spec.
var invalidNamePrefixes = []struct{ prefix, field string }{
	{bindingStoragePrefix, "handle"},
	{secretStoragePrefix, "name"},
	{"token/", "handle"},
}

// invalidNameAnswer is the answer for a request no path matched, or nil.
func invalidNameAnswer(req *logical.Request) *logical.Response {
	for _, p := range invalidNamePrefixes {
		rest, ok := strings.CutPrefix(req.Path, p.prefix)
		if !ok || rest == "" {
			continue
		}
		if ferr := validateName(p.field, rest); ferr != nil {
			return ferr.response()
		}
		return logical.ErrorResponse("unsupported path %q", req.Path)
	}
	return nil
}
