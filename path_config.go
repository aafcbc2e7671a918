package flowcred

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// configEntry is the mount configuration, stored at "config".
type configEntry struct {
	// RefreshMargin: a cached token is served while it has at least this
	// much life left (capped at half the token's lifetime).
	RefreshMargin time.Duration `json:"refresh_margin"`
	// DefaultTokenLifetime is assumed when a token response carries no
	// expires_in and the access token is not a JWT with exp.
	DefaultTokenLifetime time.Duration `json:"default_token_lifetime"`
	// HTTPTimeout bounds each upstream token request.
	HTTPTimeout time.Duration `json:"http_timeout"`
	// BackgroundRefresh enables refreshing recently read handles before
	// they fall under the margin.
	BackgroundRefresh bool `json:"background_refresh"`
	// BackgroundWindow: a handle read within this window counts as recently read.
	BackgroundWindow time.Duration `json:"background_window"`
	// MinRefreshInterval: reads whose min_ttl the last refresh could not
	// satisfy refresh a handle at most once per interval.
	MinRefreshInterval time.Duration `json:"min_refresh_interval"`
	// TokenLeases: token reads carry a lease (true), or no lease and the
	// ttl and rotation_period data keys instead. A pointer so that a
	// config stored before the field existed reads as the default.
	TokenLeases *bool `json:"token_leases,omitempty"`
	// PublicCallback exposes the unauthenticated callback path as a
	// redirect target for connecting (path_connect.go).
	PublicCallback bool `json:"public_callback,omitempty"`
}

// tokenLeases is the effective token_leases (default true).
func (c *configEntry) tokenLeases() bool { return c.TokenLeases == nil || *c.TokenLeases }

func defaultConfig() *configEntry {
	return &configEntry{
		RefreshMargin:        5 * time.Minute,
		DefaultTokenLifetime: 10 * time.Minute,
		HTTPTimeout:          30 * time.Second,
		BackgroundRefresh:    true,
		BackgroundWindow:     time.Hour,
		MinRefreshInterval:   10 * time.Second,
	}
}

// Bounds for config values, enforced on write.
const (
	maxRefreshMargin = 24 * time.Hour
	minHTTPTimeout   = time.Second
	maxHTTPTimeout   = 5 * time.Minute
)

func pathConfig(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "config$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefixFlowcred,
		},
		Fields: map[string]*framework.FieldSchema{
			"refresh_margin": {
				Type:        framework.TypeDurationSecond,
				Description: "A cached token is served while it has at least this much life left; at most half the token's lifetime is used. Default 5m.",
				Default:     int((5 * time.Minute).Seconds()),
			},
			"default_token_lifetime": {
				Type:        framework.TypeDurationSecond,
				Description: "Lifetime assumed when a token response has no expires_in and the token is not a JWT with exp. Default 10m.",
				Default:     int((10 * time.Minute).Seconds()),
			},
			"http_timeout": {
				Type:        framework.TypeDurationSecond,
				Description: "Timeout of each upstream token request. Default 30s.",
				Default:     30,
			},
			"background_refresh": {
				Type:        framework.TypeBool,
				Description: "Refresh recently read handles before they fall under the refresh margin. Default true.",
				Default:     true,
			},
			"background_window": {
				Type:        framework.TypeDurationSecond,
				Description: "A handle read within this window is refreshed in the background. Default 1h.",
				Default:     3600,
			},
			"token_leases": {
				Type:        framework.TypeBool,
				Description: "Token reads create a non-renewable lease (true), or none: the data then carries ttl (seconds until the reader should read again) and rotation_period (the token's lifetime), which Vault Agent templates follow. Default true.",
				Default:     true,
			},
			"public_callback": {
				Type:        framework.TypeBool,
				Description: "Serve the unauthenticated callback path as the redirect target of bindings/<handle>/authorize (https://<vault>/v1/<mount>/callback), so an account owner approves with a link and no Vault token. Default false.",
				Default:     false,
			},
			"min_refresh_interval": {
				Type:        framework.TypeDurationSecond,
				Description: "Reads asking for more life (min_ttl) than the provider issues refresh a handle at most once per interval; in between they get the fresh token with a warning. Default 10s.",
				Default:     10,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathConfigRead,
				Summary:      "Read the mount configuration.",
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "configuration"},
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields:      configResponseFields,
				}}},
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathConfigWrite,
				Summary:                     "Configure the mount.",
				DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "configure"},
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    pathConfigHelpSyn,
		HelpDescription: pathConfigHelpDesc,
	}
}

var configResponseFields = map[string]*framework.FieldSchema{
	"refresh_margin":         {Type: framework.TypeDurationSecond, Required: true},
	"default_token_lifetime": {Type: framework.TypeDurationSecond, Required: true},
	"http_timeout":           {Type: framework.TypeDurationSecond, Required: true},
	"background_refresh":     {Type: framework.TypeBool, Required: true},
	"background_window":      {Type: framework.TypeDurationSecond, Required: true},
	"min_refresh_interval":   {Type: framework.TypeDurationSecond, Required: true},
	"token_leases":           {Type: framework.TypeBool, Required: true},
	"public_callback":        {Type: framework.TypeBool, Required: true},
}

// getConfig returns the mount configuration, defaults when none is stored.
func (b *backend) getConfig(ctx context.Context, s logical.Storage) (*configEntry, error) {
	if c := b.config.Load(); c != nil {
		return c, nil
	}
	b.configMu.Lock()
	defer b.configMu.Unlock()
	if c := b.config.Load(); c != nil {
		return c, nil
	}
	c := defaultConfig()
	entry, err := s.Get(ctx, configStorageKey)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if entry != nil {
		if err := entry.DecodeJSON(c); err != nil {
			return nil, fmt.Errorf("decoding config: %w", err)
		}
	}
	b.config.Store(c)
	return c, nil
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	c, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"refresh_margin":         int64(c.RefreshMargin.Seconds()),
		"default_token_lifetime": int64(c.DefaultTokenLifetime.Seconds()),
		"http_timeout":           int64(c.HTTPTimeout.Seconds()),
		"background_refresh":     c.BackgroundRefresh,
		"background_window":      int64(c.BackgroundWindow.Seconds()),
		"min_refresh_interval":   int64(c.MinRefreshInterval.Seconds()),
		"token_leases":           c.tokenLeases(),
		"public_callback":        c.PublicCallback,
	}}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d, nil); resp != nil {
		return resp, nil
	}
	cur, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	c := *cur
	durations := []struct {
		field    string
		dst      *time.Duration
		min, max time.Duration
	}{
		{"refresh_margin", &c.RefreshMargin, 0, maxRefreshMargin},
		{"default_token_lifetime", &c.DefaultTokenLifetime, time.Minute, 24 * time.Hour},
		{"http_timeout", &c.HTTPTimeout, minHTTPTimeout, maxHTTPTimeout},
		{"background_window", &c.BackgroundWindow, time.Minute, 30 * 24 * time.Hour},
		{"min_refresh_interval", &c.MinRefreshInterval, 0, time.Hour},
	}
	for _, f := range durations {
		raw, ok, err := d.GetOkErr(f.field)
		if err != nil {
			return logical.ErrorResponse("invalid %s: %s", f.field, err), nil
		}
		if !ok {
			continue
		}
		v := time.Duration(raw.(int)) * time.Second
		if v < f.min || v > f.max {
			return logical.ErrorResponse("invalid %s %q: must be between %s and %s", f.field, fmt.Sprint(d.Raw[f.field]), f.min, f.max), nil
		}
		*f.dst = v
	}
	if raw, ok, err := d.GetOkErr("background_refresh"); err != nil {
		return logical.ErrorResponse("invalid background_refresh: %s", err), nil
	} else if ok {
		c.BackgroundRefresh = raw.(bool)
	}
	if raw, ok, err := d.GetOkErr("public_callback"); err != nil {
		return logical.ErrorResponse("invalid public_callback: %s", err), nil
	} else if ok {
		c.PublicCallback = raw.(bool)
	}
	if raw, ok, err := d.GetOkErr("token_leases"); err != nil {
		return logical.ErrorResponse("invalid token_leases: %s", err), nil
	} else if ok {
		v := raw.(bool)
		c.TokenLeases = &v
	}

	if err := putJSON(ctx, req.Storage, configStorageKey, "config", &c); err != nil {
		return nil, err
	}
	b.config.Store(&c)
	return nil, nil
}

const pathConfigHelpSyn = "Configure the flowcred mount: refresh margin, upstream timeout, background refresh."

const pathConfigHelpDesc = `
refresh_margin decides when a cached token is refreshed (a token with less
life left than the margin, or than a read's min_ttl, is refreshed first).
default_token_lifetime is assumed for token responses without expires_in.
http_timeout bounds every upstream token request. background_refresh and
background_window control refreshing recently read handles ahead of time.
min_refresh_interval bounds refreshes driven by min_ttl beyond what the
provider issues: at most one per handle per interval.
`
