package flowcred

import (
	"context"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// secretTypeToken is the lease type of token/<handle> responses.
const secretTypeToken = "flowcred_token"

// minLease is the shortest lease handed out: a TTL of zero would make Vault
// apply the mount default instead.
const minLease = time.Second

// degradedLeaseCap bounds the lease of a cached token served while the
// provider fails, so that clients come back soon.
const degradedLeaseCap = time.Minute

func pathToken(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "token/" + framework.GenericNameRegex("handle") + "$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefixFlowcred,
			OperationSuffix: "token",
		},
		Fields: map[string]*framework.FieldSchema{
			"handle": {Type: framework.TypeString, Description: "The credential handle.", Required: true},
			"min_ttl": {
				Type:        framework.TypeDurationSecond,
				Description: "The token returned has at least this much life left, or is refreshed first.",
				Query:       true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathTokenRead,
				Summary:  "Credential material for a handle: access token, expiry and headers, under a non-renewable lease.",
				// A read can refresh, and so write a rotated refresh token:
				// it must run where storage is writable.
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields:      tokenResponseFields,
				}}},
			},
		},
		HelpSynopsis:    pathTokenHelpSyn,
		HelpDescription: pathTokenHelpDesc,
	}}
}

var tokenResponseFields = map[string]*framework.FieldSchema{
	"handle":          {Type: framework.TypeString, Required: true, Description: "The credential handle."},
	"kind":            {Type: framework.TypeString, Required: true, Description: "The binding's kind."},
	"access_token":    {Type: framework.TypeString, Required: true, Description: "The token to present (for api_token the static token; for target_audience the ID token)."},
	"token_type":      {Type: framework.TypeString, Required: true, Description: "Bearer, or the api_token scheme."},
	"expires_at":      {Type: framework.TypeString, Description: "RFC 3339 UTC; absent for a static token without expiry."},
	"expires_in":      {Type: framework.TypeInt64, Description: "Whole seconds left."},
	"headers":         {Type: framework.TypeMap, Required: true, Description: "Header name to value, ready to inject: the credential header plus extra_headers."},
	"ttl":             {Type: framework.TypeInt64, Description: "With token_leases=false: seconds until the reader should read again."},
	"rotation_period": {Type: framework.TypeInt64, Description: "With token_leases=false: the token's lifetime in seconds."},
}

func secretToken(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: secretTypeToken,
		Fields: map[string]*framework.FieldSchema{
			"access_token": {Type: framework.TypeString, Description: "The token to present."},
		},
		// No Renew: the lease is non-renewable, so Vault Agent re-reads near
		// its end and gets a fresh token instead of renewing a stale one.
		Revoke: b.secretTokenRevoke,
	}
}

// secretTokenRevoke succeeds without touching the provider: tokens are
// shared by every reader of a handle, so one lease cannot revoke them.
func (b *backend) secretTokenRevoke(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return nil, nil
}

func (b *backend) pathTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	handle := d.Get("handle").(string)
	var minTTL time.Duration
	if raw, ok, err := d.GetOkErr("min_ttl"); err != nil {
		return logical.ErrorResponse("invalid min_ttl: %s", err), nil
	} else if ok {
		minTTL = time.Duration(raw.(int)) * time.Second
	}
	if minTTL < 0 {
		return logical.ErrorResponse("invalid min_ttl: must not be negative"), nil
	}
	mat, err := b.material(ctx, req.Storage, handle, readOpts{minTTL: minTTL})
	if err != nil {
		return readAnswer(err)
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return b.tokenResponse(mat, cfg, minTTL, b.now()), nil
}

// tokenResponse renders material with its lease.
func (b *backend) tokenResponse(m *material, cfg *configEntry, minTTL time.Duration, now time.Time) *logical.Response {
	data := map[string]interface{}{
		"handle":       m.handle,
		"kind":         m.kind,
		"access_token": m.accessToken,
		"token_type":   m.tokenType,
		"headers":      m.headers,
	}
	lease := m.leaseCap
	if !m.expiry.IsZero() {
		left := m.expiry.Sub(now)
		data["expires_at"] = m.expiry.UTC().Format(time.RFC3339)
		data["expires_in"] = int64(left / time.Second)
		ttl := left - m.margin(cfg)
		if m.warning != "" {
			ttl = min(left, degradedLeaseCap)
		}
		if lease == 0 || ttl < lease {
			lease = ttl
		}
	}
	lease = lease.Truncate(time.Second)
	if lease < minLease {
		lease = minLease
	}
	var resp *logical.Response
	if cfg.tokenLeases() {
		resp = b.Secret(secretTypeToken).Response(data, map[string]interface{}{
			// Only what identifies the lease: never the token.
			"handle": m.handle,
			"kind":   m.kind,
		})
		resp.Secret.TTL = lease
		resp.Secret.MaxTTL = lease
	} else {
		// No lease (design.md, "Leases for token reads"): the reader reads
		// again after ttl; rotation_period makes Vault Agent's templates
		// treat the data as a rotating secret and do so.
		data["ttl"] = int64(lease / time.Second)
		rotation := m.leaseCap
		if !m.expiry.IsZero() {
			rotation = m.expiry.Sub(m.obtainedAt)
		}
		data["rotation_period"] = int64(max(rotation, lease) / time.Second)
		resp = &logical.Response{Data: data}
	}
	if m.warning != "" {
		resp.AddWarning(m.warning)
	}
	if !m.expiry.IsZero() && minTTL > 0 && m.expiry.Sub(now) < minTTL {
		resp.AddWarning("the provider issued a token with less life than min_ttl")
	}
	return resp
}

const pathTokenHelpSyn = "Read a handle's credential material: access token, expiry and headers to inject."

const pathTokenHelpDesc = `
Returns handle, kind, access_token, token_type, expires_at, expires_in and
headers (ready to inject: Authorization plus the binding's extra_headers).
The token is cached and refreshed by the plugin: it is served while it has at
least the mount's refresh_margin (and the read's min_ttl) left.

The response carries a non-renewable lease whose TTL is the token's remaining
life minus the refresh margin, capped by the binding's ttl and the mount's max
TTL. Revoking the lease does not revoke anything at the provider: tokens are
shared by every reader of the handle.
`
