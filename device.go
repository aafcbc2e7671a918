package flowcred

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The device grant (RFC 8628): bindings/<h>/device asks the provider for a
// user code, and the plugin polls the token endpoint itself until the user
// approves, refuses or the code expires. The pending grant is in storage
// (device/<handle>, seal-wrapped), so polling resumes after a plugin reload;
// it runs where storage is writable.
//
// The device authorization request goes through the token client, not
// x/oauth2's Config.DeviceAuth, which sends no client authentication (a
// confidential client must authenticate, RFC 8628 section 3.1) and does not
// bind its request to the context.

const (
	devicePrefix   = "device/"
	deviceGrant    = "urn:ietf:params:oauth:grant-type:device_code"
	minDevicePoll  = time.Second
	slowDownStep   = 5 * time.Second
	defaultPoll    = 5 * time.Second
	maxDeviceWait  = 30 * time.Minute
	deviceTokenTTL = 30 * time.Second
)

// pendingDevice is a device grant waiting for the user.
type pendingDevice struct {
	BindingID  string        `json:"binding_id"`
	DeviceCode string        `json:"device_code"`
	Interval   time.Duration `json:"interval"`
	Expires    time.Time     `json:"expires"`
	// PrevHealth is the binding's health before, restored (with the
	// reason) when the grant fails.
	PrevHealth string `json:"prev_health,omitempty"`
}

// deviceAnswer is a device authorization response (RFC 8628 section 3.2).
type deviceAnswer struct {
	DeviceCode              string          `json:"device_code"`
	UserCode                string          `json:"user_code"`
	VerificationURI         string          `json:"verification_uri"`
	VerificationURL         string          `json:"verification_url"` // Google's older name
	VerificationURIComplete string          `json:"verification_uri_complete"`
	ExpiresIn               json.RawMessage `json:"expires_in"`
	Interval                int64           `json:"interval"`
}

// devicePollers holds the cancel function of each handle's poller.
type devicePollers struct {
	mu sync.Mutex
	m  map[string]context.CancelFunc
	wg sync.WaitGroup
}

func (b *backend) pathDevice(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d, nil); resp != nil {
		return resp, nil
	}
	handle := d.Get("handle").(string)
	e, _, in, err := b.connectable(ctx, req.Storage, handle)
	if err != nil {
		return readAnswer(err)
	}
	devURL := e.deviceURL()
	if devURL == "" {
		return logical.ErrorResponse("handle %q has no device_authorization_url; set it on the binding", handle), nil
	}
	scopes := e.Scopes
	if raw, ok := d.GetOk("scopes"); ok {
		scopes = splitScopes(raw.([]string))
	}
	for _, sc := range scopes {
		if ferr := validateScope("scopes", sc); ferr != nil {
			return ferr.response(), nil
		}
	}
	if !b.writableForRefresh() {
		return nil, logical.ErrReadOnly
	}
	form := url.Values{}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
	defer cancel()
	da, err := call(tctx, b.tokenClient(), clientRequest(e, in, devURL, form), parseDeviceAnswer)
	if err != nil {
		ue := classifyUpstream(err)
		ue.scrub(scrubList(in, ""))
		if ue.class == classTransient {
			return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("handle %q: device authorization failed: %s", handle, ue.Error()))
		}
		return logical.ErrorResponse("handle %q: device authorization refused: %s", handle, ue.Error()), nil
	}
	now := b.now()
	p := &pendingDevice{BindingID: e.ID, DeviceCode: da.DeviceCode, Interval: max(time.Duration(da.Interval)*time.Second, minDevicePoll), Expires: now.Add(maxDeviceWait)}
	if da.Interval == 0 {
		p.Interval = defaultPoll
	}
	if secs := parseExpiresIn(da.ExpiresIn); secs > 0 {
		p.Expires = now.Add(min(time.Duration(secs)*time.Second, maxDeviceWait))
	}
	if err := b.setDeviceStatus(ctx, req.Storage, handle, e, p); err != nil {
		return readAnswer(err)
	}
	b.startPoller(req.Storage, handle, p)
	verify := da.VerificationURI
	if verify == "" {
		verify = da.VerificationURL
	}
	out := map[string]interface{}{
		"user_code":        da.UserCode,
		"verification_uri": verify,
		"interval":         int64(p.Interval / time.Second),
		"expires_at":       p.Expires.UTC().Format(time.RFC3339),
	}
	if da.VerificationURIComplete != "" {
		out["verification_uri_complete"] = da.VerificationURIComplete
	}
	return &logical.Response{Data: out}, nil
}

func parseDeviceAnswer(resp *http.Response, body []byte) (*deviceAnswer, error) {
	if err := notSuccess(resp, body); err != nil {
		return nil, err
	}
	var da deviceAnswer
	if err := json.Unmarshal(body, &da); err != nil || da.DeviceCode == "" || da.UserCode == "" || (da.VerificationURI == "" && da.VerificationURL == "") {
		return nil, &upstreamError{class: classTransient, status: resp.StatusCode, msg: "device authorization endpoint answered with a body that is not a device authorization response"}
	}
	return &da, nil
}

// setDeviceStatus stores the pending grant and marks the binding
// pending_authorization, under the handle's lock.
func (b *backend) setDeviceStatus(ctx context.Context, s logical.Storage, handle string, e *bindingEntry, p *pendingDevice) error {
	hc, err := b.handles.lock(ctx, handle)
	if err != nil {
		return err
	}
	defer b.handles.unlock(handle, hc)
	st, err := b.currentTokenState(ctx, s, handle, e)
	if err != nil {
		return err
	}
	cp := tokenState{BindingID: e.ID}
	if st != nil && st.BindingID == e.ID {
		cp = *st
	} else {
		st = nil
	}
	if h := cp.Status.Health; h != healthPendingAuthorization {
		p.PrevHealth = h
	}
	cp.Status.Health = healthPendingAuthorization
	if err := putJSON(ctx, s, devicePrefix+handle, fmt.Sprintf("device grant of %q", handle), p); err != nil {
		return err
	}
	if err := putTokenState(ctx, s, handle, &cp); err != nil {
		return err
	}
	hc.reset()
	b.recordHealth(ctx, s, handle, e, st, &cp, false)
	return nil
}

// startPoller polls for handle's pending grant until it ends, replacing a
// poller already running for the handle.
func (b *backend) startPoller(s logical.Storage, handle string, p *pendingDevice) {
	b.pollers.mu.Lock()
	defer b.pollers.mu.Unlock()
	if b.pollers.m == nil {
		b.pollers.m = map[string]context.CancelFunc{}
	}
	if cancel := b.pollers.m[handle]; cancel != nil {
		cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.pollers.m[handle] = cancel
	b.pollers.wg.Add(1)
	go func() {
		defer b.pollers.wg.Done()
		b.pollDevice(ctx, s, handle, p)
	}()
}

// stopPollers ends every poller (Clean).
func (b *backend) stopPollers() {
	b.pollers.mu.Lock()
	for _, cancel := range b.pollers.m {
		cancel()
	}
	b.pollers.m = nil
	b.pollers.mu.Unlock()
	b.pollers.wg.Wait()
}

// resumePollers starts polling for every pending grant in storage.
func (b *backend) resumePollers(ctx context.Context, s logical.Storage) error {
	handles, err := s.List(ctx, devicePrefix)
	if err != nil {
		return err
	}
	for _, h := range handles {
		p, err := getJSON[pendingDevice](ctx, s, devicePrefix+h, fmt.Sprintf("device grant of %q", h))
		if err != nil || p == nil {
			continue
		}
		b.startPoller(s, h, p)
	}
	return nil
}

// pollDevice asks the token endpoint every interval (RFC 8628 section 3.5).
func (b *backend) pollDevice(ctx context.Context, s logical.Storage, handle string, p *pendingDevice) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.Interval):
		}
		if !b.now().Before(p.Expires) {
			b.endDevice(ctx, s, handle, p, "expired_token", "the device code expired before the user approved it")
			return
		}
		if !b.writableForRefresh() {
			return // the node that can write polls
		}
		e, _, in, err := b.connectable(ctx, s, handle)
		if err != nil || e.ID != p.BindingID {
			b.dropDevice(ctx, s, handle, p) // the binding is gone, or another one
			return
		}
		// Once a poll is sent it runs to completion and its answer is
		// stored, even if the poller is stopped meanwhile (a reload): the
		// user's approval is spent on it.
		dctx := context.WithoutCancel(ctx)
		tctx, cancel := context.WithTimeout(dctx, deviceTokenTTL)
		form := url.Values{"grant_type": {deviceGrant}, "device_code": {p.DeviceCode}}
		tok, err := b.clientGrant(tctx, &grantCall{binding: e, inputs: in}, form)
		cancel()
		if err == nil {
			if serr := b.storeConnected(dctx, s, handle, e, in, tok, nil, []string{p.DeviceCode}); serr != nil {
				b.Logger().Error("storing a device grant's token failed", "handle", handle, "error", serr)
				b.endDevice(dctx, s, handle, p, "store_failed", "the provider's answer could not be stored: "+serr.Error())
				return
			}
			b.dropDevice(dctx, s, handle, p)
			return
		}
		ue := classifyUpstream(err)
		ue.scrub(append(scrubList(in, ""), p.DeviceCode))
		switch ue.code {
		case "authorization_pending":
		case "slow_down":
			p.Interval += slowDownStep
			_ = putJSON(ctx, s, devicePrefix+handle, fmt.Sprintf("device grant of %q", handle), p)
		case "expired_token", "access_denied":
			b.endDevice(ctx, s, handle, p, ue.code, ue.Error())
			return
		default:
			if ue.class != classTransient {
				b.endDevice(ctx, s, handle, p, ue.code, ue.Error())
				return
			}
		}
	}
}

// endDevice records why a device grant ended without a token.
func (b *backend) endDevice(ctx context.Context, s logical.Storage, handle string, p *pendingDevice, code, msg string) {
	b.Logger().Warn("device grant ended without a token", "handle", handle, "error_code", code)
	if hc, err := b.handles.lock(ctx, handle); err == nil {
		if e, err := getBinding(ctx, s, handle); err == nil && e != nil && e.ID == p.BindingID {
			if st, err := getTokenState(ctx, s, handle); err == nil && st != nil {
				before := *st
				st.Status.Health = p.PrevHealth
				st.Status.LastError, st.Status.LastErrorCode, st.Status.LastErrorAt = "device grant: "+msg, code, b.now()
				if putTokenState(ctx, s, handle, st) == nil {
					b.recordHealth(ctx, s, handle, e, &before, st, false)
				}
			}
		}
		hc.reset()
		b.handles.unlock(handle, hc)
	}
	b.dropDevice(ctx, s, handle, p)
}

// dropDevice deletes the pending grant if it is still p.
func (b *backend) dropDevice(ctx context.Context, s logical.Storage, handle string, p *pendingDevice) {
	if cur, err := getJSON[pendingDevice](ctx, s, devicePrefix+handle, "device grant"); err == nil && cur != nil && cur.DeviceCode == p.DeviceCode {
		_ = s.Delete(ctx, devicePrefix+handle)
	}
}
