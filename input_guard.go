package flowcred

import (
	"context"
	"encoding/json"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
)

// The SDK converts every declared field before a path's callback runs (in
// HandleRequest and in HandleExistenceCheck), and when a conversion fails
// its error quotes the value: a credentials_json sent as a JSON object
// would come back, private key included, in a 400 (and in Vault's log, for
// an existence check). Vault's plugin server calls these two methods on the
// logical.Backend that Factory returns, which is *backend, so the checks
// below run before the SDK sees the request.

// secretValueFields are the secret-capable fields of secrets/<name>.
var secretValueFields = map[string]bool{"value": true}

// configSecretFields and connectSecretFields are the secret-capable fields
// of config and of authorize/complete.
var (
	configSecretFields  = map[string]bool{"webhook_secret": true}
	connectSecretFields = map[string]bool{"code": true, "state": true}
)

// guardedFields returns the secret-capable fields of a write request's
// path, or nil when the request needs no check. It looks at the operation
// first: token reads pay one comparison.
func guardedFields(req *logical.Request) map[string]bool {
	if req.Operation != logical.UpdateOperation && req.Operation != logical.CreateOperation {
		return nil
	}
	var rest string
	var fields map[string]bool
	switch {
	case req.Path == "config":
		return configSecretFields
	case strings.HasPrefix(req.Path, bindingStoragePrefix) && strings.HasSuffix(req.Path, "/authorize/complete"):
		return connectSecretFields
	case strings.HasPrefix(req.Path, bindingStoragePrefix):
		rest, fields = req.Path[len(bindingStoragePrefix):], secretInputFields
	case strings.HasPrefix(req.Path, secretStoragePrefix):
		rest, fields = req.Path[len(secretStoragePrefix):], secretValueFields
	default:
		return nil
	}
	if rest == "" || strings.Contains(rest, "/") {
		// A list, or an action such as bindings/<handle>/refresh, which
		// declares no secret-capable field.
		return nil
	}
	return fields
}

// malformedSecretFields lists, sorted, the secret-capable fields of the
// request whose value is neither a string nor harmless (a number, null).
func malformedSecretFields(req *logical.Request) []string {
	fields := guardedFields(req)
	if fields == nil {
		return nil
	}
	var bad []string
	for k, v := range req.Data {
		if fields[k] && !stringLike(v) {
			bad = append(bad, k)
		}
	}
	sort.Strings(bad)
	return bad
}

// stringLike is true for values the SDK turns into a string without an
// error that could quote them, and that carry no structure.
func stringLike(v interface{}) bool {
	switch v.(type) {
	case nil, string, json.Number,
		int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return true
	}
	return false
}

// jsonTypeName names a value's JSON type for a message, never its content.
func jsonTypeName(v interface{}) string {
	switch v.(type) {
	case map[string]interface{}:
		return "an object"
	case []interface{}:
		return "a list"
	case bool:
		return "a boolean"
	}
	return "not a string"
}

// secretTypeError is the 400 for a malformed secret-capable field: it names
// the field and the JSON type, never the value.
func secretTypeError(req *logical.Request, bad []string) *fieldError {
	f := bad[0]
	return fieldErr(f, "must be a string, and is %s; send a file's text as a string (for example %s=@file)",
		jsonTypeName(req.Data[f]), f)
}

// HandleRequest refuses a write whose secret-capable field is not a string
// before the SDK's field conversion could quote it.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if bad := malformedSecretFields(req); len(bad) > 0 {
		return secretTypeError(req, bad).response(), nil
	}
	resp, err := b.Backend.HandleRequest(ctx, req)
	if err == logical.ErrUnsupportedPath {
		if r := invalidNameAnswer(req); r != nil {
			return r, nil
		}
	}
	return resp, err
}

// HandleExistenceCheck runs the path's existence check without malformed
// secret-capable fields, so that its conversion error cannot quote them;
// HandleRequest then refuses the request with a 400 naming the field. The
// check still runs, so Vault still chooses between create and update (and
// their ACL capabilities) as it would.
func (b *backend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	bad := malformedSecretFields(req)
	if len(bad) == 0 {
		return b.Backend.HandleExistenceCheck(ctx, req)
	}
	data := make(map[string]interface{}, len(req.Data))
	for k, v := range req.Data {
		data[k] = v
	}
	for _, f := range bad {
		delete(data, f)
	}
	cp := *req
	cp.Data = data
	return b.Backend.HandleExistenceCheck(ctx, &cp)
}
