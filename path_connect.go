package flowcred

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/time/rate"
)

// The connect endpoints (design.md, "Connecting"): bindings/<h>/authorize,
// bindings/<h>/authorize/complete, bindings/<h>/device and the public
// callback. Their logic is in connect.go and device.go.

func pathConnect(b *backend) []*framework.Path {
	handle := framework.GenericNameRegex("handle")
	handleField := &framework.FieldSchema{Type: framework.TypeString, Description: "The credential handle.", Required: true}
	scopesField := &framework.FieldSchema{Type: framework.TypeCommaStringSlice, Description: "Scopes to ask for (default: the binding's scopes); a list, or one string split on spaces and commas."}
	return []*framework.Path{
		{
			Pattern:      bindingStoragePrefix + handle + "/authorize/complete$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixFlowcred, OperationVerb: "complete", OperationSuffix: "authorization"},
			Fields: map[string]*framework.FieldSchema{
				"handle": handleField,
				"state":  {Type: framework.TypeString, Description: "The state authorize answered (and the provider sent back)."},
				"code":   {Type: framework.TypeString, Description: "The authorization code the provider sent to the redirect URI."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: mutation(b.pathAuthorizeComplete, "Exchange an authorization code for the binding's refresh token; answers the status, never a token.", statusResponse),
			},
			HelpSynopsis:    "Complete connecting a binding: exchange the code for its refresh token.",
			HelpDescription: pathConnectHelp,
		},
		{
			Pattern:      bindingStoragePrefix + handle + "/authorize$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixFlowcred, OperationVerb: "authorize", OperationSuffix: "binding"},
			Fields: map[string]*framework.FieldSchema{
				"handle":       handleField,
				"redirect_uri": {Type: framework.TypeString, Description: "Where the provider sends the user back (default: the binding's redirect_uri)."},
				"scopes":       scopesField,
				"extra_params": {Type: framework.TypeKVPairs, Description: "Extra parameters for the authorization request, e.g. login_hint=user@example.com."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: mutation(b.pathAuthorize, "Start connecting a binding: an authorization-code grant with PKCE.", map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields: map[string]*framework.FieldSchema{
						"auth_url":     {Type: framework.TypeString, Required: true, Description: "Open this in a browser to approve."},
						"state":        {Type: framework.TypeString, Required: true, Description: "Pass it to authorize/complete with the code."},
						"expires_at":   {Type: framework.TypeString, Required: true, Description: "When state expires (RFC 3339)."},
						"redirect_uri": {Type: framework.TypeString, Required: true, Description: "The redirect URI the request names."},
					},
				}}}),
			},
			HelpSynopsis:    "Start connecting a binding (authorization code with PKCE).",
			HelpDescription: pathConnectHelp,
		},
		{
			Pattern:      bindingStoragePrefix + handle + "/device$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixFlowcred, OperationVerb: "start", OperationSuffix: "device-authorization"},
			Fields:       map[string]*framework.FieldSchema{"handle": handleField, "scopes": scopesField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: mutation(b.pathDevice, "Start connecting a binding with the device grant (RFC 8628); the plugin polls the provider.", map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields: map[string]*framework.FieldSchema{
						"user_code":                 {Type: framework.TypeString, Required: true, Description: "The code the user enters at verification_uri."},
						"verification_uri":          {Type: framework.TypeString, Required: true, Description: "Where the user approves."},
						"verification_uri_complete": {Type: framework.TypeString, Description: "verification_uri with the code in it, when the provider gives one."},
						"interval":                  {Type: framework.TypeInt64, Required: true, Description: "Seconds between the plugin's polls."},
						"expires_at":                {Type: framework.TypeString, Required: true, Description: "When the user code expires (RFC 3339)."},
					},
				}}}),
			},
			HelpSynopsis:    "Start connecting a binding with the device grant.",
			HelpDescription: pathConnectHelp,
		},
		{
			Pattern:      "callback$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixFlowcred, OperationVerb: "receive", OperationSuffix: "callback"},
			Fields: map[string]*framework.FieldSchema{
				"state":             {Type: framework.TypeString, Query: true},
				"code":              {Type: framework.TypeString, Query: true},
				"error":             {Type: framework.TypeString, Query: true},
				"error_description": {Type: framework.TypeString, Query: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathCallback,
					Summary:  "The browser's redirect target when config public_callback is true (unauthenticated); answers a small HTML page.",
					// It stores a refresh token: where storage is writable.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    "Redirect target for connecting, without a Vault token (config public_callback).",
			HelpDescription: pathConnectHelp,
		},
	}
}

// withVerb sets an operation's OpenAPI verb.
func withVerb(op *framework.PathOperation, verb string) *framework.PathOperation {
	op.DisplayAttrs = &framework.DisplayAttributes{OperationVerb: verb}
	return op
}

// failureLimiter bounds failed public callbacks: a burst of 10, then one
// per 6 seconds, on golang.org/x/time/rate.
type failureLimiter struct{ l *rate.Limiter }

func newFailureLimiter() *failureLimiter {
	return &failureLimiter{l: rate.NewLimiter(rate.Every(6*time.Second), 10)}
}

// ok reports whether another attempt may be made.
func (f *failureLimiter) ok() bool { return f.l.Tokens() >= 1 }

// fail counts a failed attempt.
func (f *failureLimiter) fail() { f.l.Allow() }

// mutation is an operation that writes: it runs where storage is writable.
func mutation(cb framework.OperationFunc, summary string, responses map[int][]framework.Response) *framework.PathOperation {
	return &framework.PathOperation{
		Callback: cb, Summary: summary, Responses: responses,
		ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true,
	}
}

func (b *backend) pathAuthorize(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d, nil); resp != nil {
		return resp, nil
	}
	var scopes []string
	if raw, ok := d.GetOk("scopes"); ok {
		scopes = splitScopes(raw.([]string))
		for _, s := range scopes {
			if ferr := validateScope("scopes", s); ferr != nil {
				return logical.ErrorResponse(ferr.Error()), nil
			}
		}
	}
	data, err := b.startAuthorization(ctx, req.Storage, d.Get("handle").(string), d.Get("redirect_uri").(string), scopes, d.Get("extra_params").(map[string]string))
	if err != nil {
		return readAnswer(err)
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathAuthorizeComplete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d, nil); resp != nil {
		return resp, nil
	}
	handle := d.Get("handle").(string)
	if _, err := b.completeAuthorization(ctx, req.Storage, handle, d.Get("state").(string), d.Get("code").(string)); err != nil {
		return readAnswer(err)
	}
	return b.connectedStatus(ctx, req.Storage, handle)
}

// connectedStatus answers a binding's handle, kind and status.
func (b *backend) connectedStatus(ctx context.Context, s logical.Storage, handle string) (*logical.Response, error) {
	e, err := getBinding(ctx, s, handle)
	if err != nil || e == nil {
		return readAnswer(err)
	}
	st, err := b.currentTokenState(ctx, s, handle, e)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{"handle": handle, "kind": e.Kind, "status": statusData(e, st, nil)}}, nil
}

func (b *backend) pathCallback(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if !cfg.PublicCallback {
		return nil, logical.CodedError(http.StatusNotFound, "the public callback is disabled; set public_callback=true in config, or complete with bindings/<handle>/authorize/complete")
	}
	state := d.Get("state").(string)
	// Only requests without a live state are limited: a burst of junk must
	// not lock out the account owner's genuine redirect.
	live := b.authStates.has(state, b.now())
	if !live && !b.callbackFailures.ok() {
		return callbackPage(http.StatusTooManyRequests, "Too many failed attempts", "Wait a minute and start again."), nil
	}
	if perr := d.Get("error").(string); perr != "" {
		if !live {
			b.callbackFailures.fail()
		}
		// The request is over: its state is spent.
		handle := ""
		if p, err := b.authStates.take(state, "", b.now()); err == nil {
			handle = p.handle
		}
		b.Logger().Warn("connect refused at the provider", "handle", handle, "error_code", sanitize(perr, 64))
		return callbackPage(http.StatusBadRequest, "Not connected", "The provider answered "+sanitize(perr, 64)+". Start again."), nil
	}
	handle, err := b.completeAuthorization(ctx, req.Storage, "", state, d.Get("code").(string))
	if err != nil {
		if !isReadError(err) {
			return nil, err
		}
		if !live {
			b.callbackFailures.fail()
		}
		return callbackPage(http.StatusBadRequest, "Not connected", err.Error()), nil
	}
	return callbackPage(http.StatusOK, "Connected", fmt.Sprintf("Handle %s is connected. You can close this page.", handle)), nil
}

// callbackPage is the callback's small HTML answer. It never holds a token.
func callbackPage(status int, title, text string) *logical.Response {
	body := fmt.Sprintf("<!doctype html><html><head><meta charset=\"utf-8\"><title>flowcred: %s</title></head><body><h1>%s</h1><p>%s</p></body></html>\n",
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(text))
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPContentType: "text/html; charset=utf-8",
		logical.HTTPRawBody:     []byte(body),
		logical.HTTPStatusCode:  status,
	}}
}

const pathConnectHelp = `
Connecting obtains a refresh-token binding's refresh token through flowcred,
so that it never passes through a browser, a terminal or a CLI:

  vault write flowcred/bindings/crm/authorize redirect_uri=http://127.0.0.1:8250/callback
    -> auth_url, state, expires_at: open auth_url, approve
  vault write flowcred/bindings/crm/authorize/complete state=... code=...

or with the device grant (the plugin polls the provider itself):

  vault write flowcred/bindings/crm/device
    -> user_code, verification_uri: enter the code there

With config public_callback=true, https://<vault>/v1/<mount>/callback is a
redirect URI that needs no Vault token. The refresh token is kept in the
binding's token state, like a rotated one; a later refresh_token written to
the binding wins. States are single use, expire after 10 minutes, and are
lost on a plugin reload (start again).
`
