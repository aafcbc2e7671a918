package flowcred

import (
	"context"
	"net/http"
	"net/url"

	"github.com/hashicorp/vault/sdk/logical"
)

// Revoke on delete (design.md, v0.2 names): a refresh-token binding with
// revoke_on_delete revokes its current refresh token (the rotated or
// connected one in its token state, else the configured one) at
// revocation_url (RFC 7009) before it is deleted. A refresh token another
// binding also references is never revoked.

// revocationURL is the binding's effective revocation endpoint.
func (e *bindingEntry) revocationURL() string {
	if u := e.Plain["revocation_url"]; u != "" {
		return u
	}
	if k := kindOf(e.Kind); k != nil {
		return k.revocationURL
	}
	return ""
}

// revokeForDelete revokes the binding's refresh token when it asks for it.
// Called with the handle's lock held. A failure is a *readError: 502 (the
// provider failed) or 400 (nothing to revoke with), which force skips.
func (b *backend) revokeForDelete(ctx context.Context, s logical.Storage, handle string, e *bindingEntry, force bool) error {
	k := kindOf(e.Kind)
	if e.Plain["revoke_on_delete"] != "true" || !k.rotates {
		return nil
	}
	fail := func(status int, format string, args ...interface{}) error {
		if force {
			b.Logger().Warn("deleting without revoking the refresh token (force)", "handle", handle)
			return nil
		}
		return readErrorf(status, format+"; the binding is kept (delete with force=true to delete it anyway)", args...)
	}
	in, err := b.resolveInputs(ctx, s, handle, e)
	if err != nil {
		return fail(http.StatusBadRequest, "handle %q: cannot revoke its refresh token: %s", handle, err)
	}
	rt := in[refreshTokenField]
	st, err := getTokenState(ctx, s, handle)
	if err != nil {
		return err
	}
	if st != nil && st.BindingID == e.ID && st.RefreshToken != "" && st.RefreshOrigin == hashSecret(rt) {
		rt = st.RefreshToken
	} else if rt != "" {
		sharing, err := bindingsSharingRefreshSecret(ctx, s, handle, e)
		if err != nil {
			return err
		}
		if len(sharing) > 0 {
			b.Logger().Info("not revoking a refresh token other bindings use", "handle", handle)
			return nil
		}
	}
	if rt == "" {
		return nil // never connected: nothing to revoke
	}
	revURL := e.revocationURL()
	if revURL == "" {
		return fail(http.StatusBadRequest, "handle %q has revoke_on_delete but no revocation_url", handle)
	}
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
	defer cancel()
	r := &tokenRequest{
		url: revURL, form: url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}},
		clientID: in["client_id"], clientSecret: in["client_secret"], style: k.authStyleOf(e),
	}
	_, err = call(tctx, b.tokenClient(), r, func(resp *http.Response, body []byte) (struct{}, error) {
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return struct{}{}, redirectError(resp)
		}
		if resp.StatusCode != http.StatusOK {
			a, _ := decodeAnswer(resp.Header.Get("Content-Type"), body)
			return struct{}{}, refusal(resp, a)
		}
		return struct{}{}, nil // RFC 7009 2.2: 200 also for a token already invalid
	})
	if err != nil {
		ue := classifyUpstream(err)
		ue.scrub(scrubList(in, rt))
		return fail(http.StatusBadGateway, "handle %q: revoking its refresh token failed: %s", handle, ue.Error())
	}
	b.Logger().Info("refresh token revoked before delete", "handle", handle, "kind", e.Kind)
	return nil
}
