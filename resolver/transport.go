package resolver

import (
	"fmt"
	"io"
	"net/http"
)

// maxDrain bounds how much of a 401 body is read before the retry, so that
// the connection can be reused.
const maxDrain = 64 << 10

// Transport is an http.RoundTripper that authenticates each request with a
// handle's credential material, in the manner of oauth2.Transport:
//
//	client := &http.Client{Transport: &resolver.Transport{Provider: p, Handle: "google_sales"}}
//
// It clones the request and sets the material's headers on the clone. When
// the API answers 401 Unauthorized, it asks for a fresh token once (with
// Refresher.Refresh when the Provider has it, else Resolve) and, if the
// token changed and the request body can be replayed (no body, or
// Request.GetBody set, as http.NewRequest does for bytes, strings and
// buffers), sends the request again. Otherwise the 401 is returned.
type Transport struct {
	// Provider resolves the handle. Required.
	Provider Provider
	// Handle is the credential handle, e.g. google_sales. Required.
	Handle string
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	bodyOwned := false // true once Base has taken over closing req.Body
	defer func() {
		if !bodyOwned && req.Body != nil {
			req.Body.Close()
		}
	}()
	if t.Provider == nil || t.Handle == "" {
		return nil, fmt.Errorf("resolver.Transport: Provider and Handle are required")
	}
	ctx := req.Context()
	m, err := t.Provider.Resolve(ctx, t.Handle)
	if err != nil {
		return nil, err
	}
	first := req.Clone(ctx)
	m.Apply(first)
	bodyOwned = true
	resp, err := t.base().RoundTrip(first)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable(req) {
		return resp, err
	}

	fresh, err := t.refresh(req, m)
	if err != nil {
		drain(resp)
		return nil, fmt.Errorf("%s answered 401 Unauthorized and getting a new token failed: %w", req.URL.Host, err)
	}
	if fresh.AccessToken == m.AccessToken {
		return resp, nil // nothing new to try: the 401 is the answer
	}
	retry := req.Clone(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			drain(resp)
			return nil, fmt.Errorf("resolver.Transport: replaying the request body: %w", err)
		}
		retry.Body = body
	}
	fresh.Apply(retry)
	drain(resp)
	return t.base().RoundTrip(retry)
}

func (t *Transport) refresh(req *http.Request, rejected *Material) (*Material, error) {
	if r, ok := t.Provider.(Refresher); ok {
		return r.Refresh(req.Context(), t.Handle, rejected)
	}
	return t.Provider.Resolve(req.Context(), t.Handle)
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// replayable reports whether req can be sent a second time.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
}
