package resolver

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/vault/api"
)

// read fetches the handle's material from Vault, with the provider's own
// Vault token looked after: logged in first (WithAuth), and a 403 told
// apart into ErrPermissionDenied and ErrVaultTokenExpired (see keeper).
// With WithAuth, a read refused because the token ended logs in again and
// is retried once.
func (p *VaultProvider) read(ctx context.Context, handle string, minTTL time.Duration) (*Material, error) {
	life, err := p.keeper.ready(ctx)
	if err != nil {
		return nil, loginError(ctx, handle, nil, err)
	}
	m, err := p.readOnce(ctx, handle, minTTL)
	var denied *Error
	if !errors.As(err, &denied) || denied.kind != ErrPermissionDenied || !p.keeper.tokenEnded(ctx, life) {
		return m, err
	}
	if p.keeper.method == nil {
		denied.kind = ErrVaultTokenExpired
		return nil, denied
	}
	var gen uint64
	if life != nil {
		gen = life.gen
	}
	if lerr := p.keeper.login(ctx, gen); lerr != nil {
		return nil, loginError(ctx, handle, denied, lerr)
	}
	// A 403 now comes with a token that has just been issued: a denial.
	return p.readOnce(ctx, handle, minTTL)
}

// loginError reports a failed login: ErrUnavailable when Vault could not
// be reached or failed (5xx, 429), else ErrVaultTokenExpired: Vault refused
// the credentials, or the auth method could not produce them, and the
// provider has no valid token. denied is the read's 403, if any.
func loginError(ctx context.Context, handle string, denied *Error, lerr error) *Error {
	e := &Error{Handle: handle, kind: ErrVaultTokenExpired, Messages: []string{oneLine(lerr.Error())}, cause: lerr}
	if denied != nil {
		e.StatusCode = denied.StatusCode
		e.Messages = append(denied.Messages, e.Messages...)
	}
	var re *api.ResponseError
	var ne net.Error
	switch {
	case errors.As(lerr, &re):
		if re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests {
			e.kind = ErrUnavailable
		}
	case ctx.Err() != nil || errors.As(lerr, &ne):
		e.kind = ErrUnavailable
	}
	return e
}

// readOnce makes one Vault read of <mount>/token/<handle>.
func (p *VaultProvider) readOnce(ctx context.Context, handle string, minTTL time.Duration) (*Material, error) {
	var q url.Values
	if minTTL > 0 {
		q = url.Values{"min_ttl": {strconv.FormatInt(int64(minTTL/time.Second), 10)}}
	}
	path := p.mount + "/token/" + handle
	fetchedAt := p.now()
	resp, err := p.client.Logical().ReadRawWithDataWithContext(ctx, path, q)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, classify(ctx, handle, err)
	}
	secret, err := api.ParseSecret(resp.Body)
	if err != nil {
		return nil, &Error{Handle: handle, StatusCode: resp.StatusCode, kind: ErrUnavailable,
			Messages: []string{"Vault's answer is not a secret: " + oneLine(err.Error())}}
	}
	return parseMaterial(handle, path, secret, fetchedAt)
}

// parseMaterial reads the token/<handle> response data (design.md).
func parseMaterial(handle, path string, s *api.Secret, fetchedAt time.Time) (*Material, error) {
	if s == nil || s.Data == nil {
		return nil, &Error{Handle: handle, kind: ErrNotFound,
			Messages: []string{"Vault returned no data at " + path + "; is the flowcred plugin mounted there?"}}
	}
	str := func(k string) string { v, _ := s.Data[k].(string); return v }
	m := &Material{
		Handle:        str("handle"),
		Kind:          str("kind"),
		AccessToken:   str("access_token"),
		TokenType:     str("token_type"),
		LeaseID:       s.LeaseID,
		LeaseDuration: time.Duration(s.LeaseDuration) * time.Second,
		FetchedAt:     fetchedAt,
		Warnings:      append([]string(nil), s.Warnings...),
	}
	if m.Handle == "" {
		m.Handle = handle
	}
	if m.AccessToken == "" {
		return nil, &Error{Handle: handle, kind: ErrMisconfigured,
			Messages: []string{"Vault's answer at " + path + " has no access_token; is the flowcred plugin mounted there?"}}
	}
	if v := str("expires_at"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, &Error{Handle: handle, kind: ErrMisconfigured, Messages: []string{"expires_at is not RFC 3339"}}
		}
		m.ExpiresAt = t
	}
	m.expiresIn = seconds(s.Data["expires_in"])
	if m.LeaseDuration == 0 {
		m.readAgain = seconds(s.Data["ttl"])
	}
	if h, ok := s.Data["headers"].(map[string]interface{}); ok {
		m.Headers = make(map[string]string, len(h))
		for k, v := range h {
			if sv, ok := v.(string); ok {
				m.Headers[k] = sv
			}
		}
	}
	return m, nil
}

// seconds reads a positive whole number of seconds from response data.
func seconds(v interface{}) time.Duration {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	case float64:
		if v > 0 {
			return time.Duration(v) * time.Second
		}
	}
	return 0
}
