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
	// MetricsPerHandle adds per-handle metric labels (small mounts only).
	MetricsPerHandle bool `json:"metrics_per_handle,omitempty"`
	// WebhookURL receives health transitions; WebhookSecret (never read
	// back) or the stored secret WebhookSecretRef signs them.
	WebhookURL       string `json:"webhook_url,omitempty"`
	WebhookSecret    string `json:"webhook_secret,omitempty"`
	WebhookSecretRef string `json:"webhook_secret_secret,omitempty"`
	// ReauthWarningWindow: validate warns reauth_soon this long before a
	// refresh token ends. Zero means the default (7 days).
	ReauthWarningWindow time.Duration `json:"reauth_warning_window,omitempty"`
}

// defaultReauthWindow is reauth_warning_window's default.
const defaultReauthWindow = 7 * 24 * time.Hour

// reauthWindow is the effective reauth_warning_window.
func (c *configEntry) reauthWindow() time.Duration {
	if c.ReauthWarningWindow == 0 {
		return defaultReauthWindow
	}
	return c.ReauthWarningWindow
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
	p := &framework.Path{
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
			"metrics_per_handle": {
				Type:        framework.TypeBool,
				Description: "Label upstream metrics by handle too (for small mounts; with many bindings this makes many series). Default false.",
				Default:     false,
			},
			"webhook_url": {
				Type:        framework.TypeString,
				Description: "Receiver of health-transition events (POST, JSON, X-Flowcred-Signature). https, or http on a loopback host; empty turns webhooks off.",
			},
			"webhook_secret": {
				Type:         framework.TypeString,
				Description:  "Key that signs webhook bodies (HMAC-SHA256). Write-only.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			},
			"webhook_secret_secret": {
				Type:        framework.TypeString,
				Description: "Name of a stored secret (secrets/<name>) holding the webhook signing key, instead of webhook_secret.",
			},
			"reauth_warning_window": {
				Type:        framework.TypeDurationSecond,
				Description: "validate warns reauth_soon when a refresh token ends within this window. Default 7 days.",
				Default:     int(defaultReauthWindow.Seconds()),
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
			logical.UpdateOperation: withVerb(mutation(b.pathConfigWrite, "Configure the mount.", noContent), "configure"),
		},
		HelpSynopsis:    pathConfigHelpSyn,
		HelpDescription: pathConfigHelpDesc,
	}
	// The read answers the fields a write takes, described the same way.
	fields := make(map[string]*framework.FieldSchema, len(configResponseFields))
	for name, f := range configResponseFields {
		cp := *f
		if cp.Description == "" && p.Fields[name] != nil {
			cp.Description = p.Fields[name].Description
		}
		fields[name] = &cp
	}
	p.Operations[logical.ReadOperation].(*framework.PathOperation).Responses = map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: fields}}}
	return p
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
	"metrics_per_handle":     {Type: framework.TypeBool, Required: true},
	"webhook_url":            {Type: framework.TypeString},
	"webhook_secret_secret":  {Type: framework.TypeString},
	"reauth_warning_window":  {Type: framework.TypeDurationSecond, Required: true},
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
		"metrics_per_handle":     c.MetricsPerHandle,
		"webhook_url":            c.WebhookURL,
		"webhook_secret_secret":  c.WebhookSecretRef,
		"reauth_warning_window":  int64(c.reauthWindow().Seconds()),
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
	if resp := applyWebhookConfig(&c, d); resp != nil {
		return resp, nil
	}
	if raw, ok, err := d.GetOkErr("reauth_warning_window"); err != nil {
		return logical.ErrorResponse("invalid reauth_warning_window: %s", err), nil
	} else if ok {
		v := time.Duration(raw.(int)) * time.Second
		if v < time.Hour || v > 365*24*time.Hour {
			return logical.ErrorResponse("invalid reauth_warning_window %q: must be between 1h and 8760h", fmt.Sprint(d.Raw["reauth_warning_window"])), nil
		}
		c.ReauthWarningWindow = v
	}
	if raw, ok, err := d.GetOkErr("metrics_per_handle"); err != nil {
		return logical.ErrorResponse("invalid metrics_per_handle: %s", err), nil
	} else if ok {
		c.MetricsPerHandle = raw.(bool)
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

// applyWebhookConfig sets the webhook fields from a config write, or
// answers the error naming the field.
func applyWebhookConfig(c *configEntry, d *framework.FieldData) *logical.Response {
	if raw, ok := d.GetOk("webhook_url"); ok {
		v := raw.(string)
		if v != "" {
			if ferr := validateTokenURL("webhook_url", v); ferr != nil {
				return logical.ErrorResponse(ferr.Error())
			}
		}
		c.WebhookURL = v
	}
	// One of the two is set; giving one (non-empty) replaces the other, and
	// an empty one clears only itself (a read-modify-write of the config
	// keeps an inline secret, which reads never show).
	if raw, ok := d.GetOk("webhook_secret"); ok {
		if c.WebhookSecret = raw.(string); c.WebhookSecret != "" {
			c.WebhookSecretRef = ""
		}
	}
	if raw, ok := d.GetOk("webhook_secret_secret"); ok {
		v := raw.(string)
		if v != "" {
			if ferr := validateName("webhook_secret_secret", v); ferr != nil {
				return logical.ErrorResponse(ferr.Error())
			}
			c.WebhookSecret = ""
		}
		c.WebhookSecretRef = v
	}
	if _, a := d.Raw["webhook_secret"]; a {
		if _, b := d.Raw["webhook_secret_secret"]; b {
			return logical.ErrorResponse("webhook_secret_secret: give either webhook_secret (inline) or webhook_secret_secret (a stored secret's name), not both")
		}
	}
	if c.WebhookURL != "" && c.WebhookSecret == "" && c.WebhookSecretRef == "" {
		return logical.ErrorResponse("webhook_secret: required with webhook_url (or webhook_secret_secret)")
	}
	return nil
}
