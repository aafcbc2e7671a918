package resolver

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
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
//
// A token is refreshed at most once for its 401s: when the replacement is
// rejected too, or a later request is handed a token that already had its
// refresh, the 401 is returned without forcing another (an API that answers
// 401 to everything must not cost an upstream token per request). Requests
// in flight with a token being refreshed wait for that refresh and retry
// with its result.
//
// The material's headers go only to the origin (scheme, host and port) the
// request was sent to: when an http.Client follows a redirect that leaves
// it, that hop and every later one, even back to the origin, are sent as
// net/http made them, and a 401 from them forces no refresh.
//
// A Transport must not be copied after first use.
type Transport struct {
	// Provider resolves the handle. Required.
	Provider Provider
	// Handle is the credential handle, e.g. google_sales. Required.
	Handle string
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper

	mu sync.Mutex
	// rejected holds SHA-256 sums, never the tokens, of the last tokens
	// whose 401 was dealt with: a token that was refreshed away and a
	// replacement that was rejected too take a slot each, with room left
	// for a rotation that happens meanwhile.
	rejected [4]rejection
	next     int
}

type rejection struct {
	sum [sha256.Size]byte
	// done is closed when the refresh the token triggered has finished;
	// nil marks an empty slot.
	done chan struct{}
}

// settled is the done of a token that triggered no refresh of its own (a
// rejected replacement): there is nothing to wait for.
var settled = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

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
	if !inOrigin(req) {
		// A redirect took the request elsewhere: the credentials stay
		// behind, and a 401 from there is not the token's fault.
		bodyOwned = true
		return t.send(req)
	}
	ctx := req.Context()
	m, err := t.Provider.Resolve(ctx, t.Handle)
	if err != nil {
		return nil, err
	}
	first := req.Clone(ctx)
	m.Apply(first)
	bodyOwned = true
	resp, err := t.send(first)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable(req) {
		return resp, err
	}

	fresh, err := t.replacement(ctx, req, m)
	if err != nil {
		drain(resp)
		return nil, fmt.Errorf("%s answered 401 Unauthorized and getting a new token failed: %w", req.URL.Host, err)
	}
	if fresh == nil {
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
	resp, err = t.send(retry)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		// The new token is rejected too, so the API, not the token, is
		// the problem: requests handed this token force no refresh.
		t.remember(sha256.Sum256([]byte(fresh.AccessToken)), settled)
	}
	return resp, err
}

// replacement returns the token to retry a 401 with, or nil when there is
// none worth trying. The first 401 of a token forces a refresh; a token
// that already had one waits for it and takes what the Provider now holds.
func (t *Transport) replacement(ctx context.Context, req *http.Request, rejected *Material) (*Material, error) {
	sum := sha256.Sum256([]byte(rejected.AccessToken))
	t.mu.Lock()
	prior := t.lookup(sum)
	var done chan struct{}
	if prior == nil {
		done = make(chan struct{})
		t.store(sum, done)
	}
	t.mu.Unlock()

	var fresh *Material
	var err error
	if prior != nil {
		select {
		case <-prior:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		fresh, err = t.Provider.Resolve(ctx, t.Handle)
	} else {
		fresh, err = t.refresh(req, rejected)
		if err != nil {
			// A failed refresh did not use up the token's turn: a later
			// 401 may try again once the Provider recovers.
			t.forget(sum, done)
		}
		close(done)
	}
	if err != nil {
		return nil, err
	}
	if fresh.AccessToken == rejected.AccessToken || t.wasRejected(fresh) {
		return nil, nil
	}
	return fresh, nil
}

func (t *Transport) wasRejected(m *Material) bool {
	sum := sha256.Sum256([]byte(m.AccessToken))
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lookup(sum) != nil
}

// lookup returns the done of sum's slot, or nil. Called with mu held.
func (t *Transport) lookup(sum [sha256.Size]byte) chan struct{} {
	for _, r := range t.rejected {
		if r.done != nil && r.sum == sum {
			return r.done
		}
	}
	return nil
}

// store puts sum in the oldest slot. Called with mu held.
func (t *Transport) store(sum [sha256.Size]byte, done chan struct{}) {
	t.rejected[t.next] = rejection{sum: sum, done: done}
	t.next = (t.next + 1) % len(t.rejected)
}

func (t *Transport) remember(sum [sha256.Size]byte, done chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lookup(sum) == nil {
		t.store(sum, done)
	}
}

func (t *Transport) forget(sum [sha256.Size]byte, done chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, r := range t.rejected {
		if r.done == done && r.sum == sum {
			t.rejected[i] = rejection{}
		}
	}
}

func (t *Transport) refresh(req *http.Request, rejected *Material) (*Material, error) {
	if r, ok := t.Provider.(Refresher); ok {
		return r.Refresh(req.Context(), t.Handle, rejected)
	}
	return t.Provider.Resolve(req.Context(), t.Handle)
}

// send sends req with Base. It sets the response's Request when Base did
// not, because inOrigin follows that link back through a redirect chain.
func (t *Transport) send(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if resp != nil && resp.Request == nil {
		resp.Request = req
	}
	return resp, err
}

// inOrigin reports whether every earlier request of req's redirect chain
// (an http.Client sets Request.Response on each redirect, and that
// response's Request is the hop before) went to req's origin. A chain that
// cannot be followed counts as having left.
func inOrigin(req *http.Request) bool {
	o := origin(req.URL)
	for r := req; r.Response != nil; {
		prev := r.Response.Request
		if prev == nil || origin(prev.URL) != o {
			return false
		}
		r = prev
	}
	return true
}

// origin is u's scheme, host and port, with the scheme's default port made
// explicit, so that https://api.example.com and https://API.example.com:443
// compare equal.
func origin(u *url.URL) string {
	if u == nil {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// replayable reports whether req can be sent a second time.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
}
