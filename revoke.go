package flowcred

import (
	"context"
	"net/http"
	"net/url"
	"strings"

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
func (b *backend) revokeForDelete(ctx context.Context, s logical.Storage, handle string, e *bindingEntry, pending *tokenState, force bool) error {
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
	st := pending // a state whose write failed is the newest
	if st == nil || st.BindingID != e.ID {
		if st, err = getTokenState(ctx, s, handle); err != nil {
			return err
		}
	}
	if st != nil && st.BindingID == e.ID {
		if stored := storedRefreshToken(e, st, hashSecret(rt)); stored != "" {
			rt = stored
		} else if st.RefreshToken != "" && st.RefreshOrigin == hashSecret(rt) {
			// Obtained at another token URL than the binding names now.
			return fail(http.StatusBadRequest, "handle %q: its refresh token was obtained at another token_url than the binding names now; it is not sent anywhere", handle)
		}
	}
	if rt == "" {
		return nil // never connected: nothing to revoke
	}
	if rt == in[refreshTokenField] {
		shared, err := b.refreshTokenShared(ctx, s, handle, e, rt)
		if err != nil {
			return err
		}
		if shared {
			b.Logger().Info("not revoking a refresh token other bindings use", "handle", handle)
			return nil
		}
	}
	revURL := e.revocationURL()
	if revURL == "" {
		return fail(http.StatusBadRequest, "handle %q has revoke_on_delete but no revocation_url", handle)
	}
	if !sameOrigin(revURL, e.tokenURL()) {
		return fail(http.StatusBadRequest, "handle %q: revocation_url is not on token_url's host; a refresh token is revoked only where it was issued", handle)
	}
	if !b.writableForRefresh() {
		return logical.ErrReadOnly
	}
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
	defer cancel()
	r := clientRequest(e, in, revURL, url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}})
	_, err = call(tctx, b.tokenClient(), r, func(resp *http.Response, body []byte) (struct{}, error) {
		if err := notSuccess(resp, body); err != nil {
			return struct{}{}, err
		}
		if resp.StatusCode != http.StatusOK { // RFC 7009 2.2: 200, also for a token already invalid
			a, _ := decodeAnswer(resp.Header.Get("Content-Type"), body)
			return struct{}{}, refusal(resp, a)
		}
		return struct{}{}, nil
	})
	if err != nil {
		ue := classifyUpstream(err)
		ue.scrub(scrubList(in, rt))
		return fail(http.StatusBadGateway, "handle %q: revoking its refresh token failed: %s", handle, ue.Error())
	}
	b.Logger().Info("refresh token revoked before delete", "handle", handle, "kind", e.Kind)
	return nil
}

// refreshTokenShared reports whether another binding is configured with
// the same refresh token: by reference to the same secret, or inline.
func (b *backend) refreshTokenShared(ctx context.Context, s logical.Storage, handle string, e *bindingEntry, rt string) (bool, error) {
	if sharing, err := bindingsSharingRefreshSecret(ctx, s, handle, e); err != nil || len(sharing) > 0 {
		return len(sharing) > 0, err
	}
	handles, err := s.List(ctx, bindingStoragePrefix)
	if err != nil {
		return false, err
	}
	for _, h := range handles {
		if h == handle {
			continue
		}
		other, err := getBinding(ctx, s, h)
		if err != nil {
			return false, err
		}
		if other != nil && other.Inline[refreshTokenField] == rt {
			return true, nil
		}
	}
	return false, nil
}

// sameOrigin reports whether two URLs have the same scheme and host name
// (ports may differ).
func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && strings.EqualFold(ua.Hostname(), ub.Hostname())
}
