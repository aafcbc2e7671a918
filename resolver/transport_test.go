package resolver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/fakevault"
	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// apiServer is a connector's API on loopback: it answers 200 to a request
// whose bearer token is not revoked, else 401, and records each request.
type apiServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	revoked map[string]bool
	seen    []string // "Authorization|body" per request
}

func newAPIServer(t *testing.T) *apiServer {
	a := &apiServer{revoked: map[string]bool{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		auth := r.Header.Get("Authorization")
		a.mu.Lock()
		a.seen = append(a.seen, auth+"|"+string(body))
		bad := auth == "" || a.revoked[strings.TrimPrefix(auth, "Bearer ")]
		a.mu.Unlock()
		if bad {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_token"}`))
			return
		}
		if r.Header.Get("x-goog-user-project") != "sales-project" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte("ok " + string(body)))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *apiServer) revoke(tok string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked[tok] = true
}

func (a *apiServer) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

type transportFixture struct {
	fv  *fakevault.Server
	te  *tokenEndpoint
	api *apiServer
	p   *resolver.VaultProvider
	c   *http.Client
}

func newTransportFixture(t *testing.T) *transportFixture {
	f := &transportFixture{fv: fakevault.Start(t), te: newTokenEndpoint(t), api: newAPIServer(t)}
	bindOAuth(t, f.fv, "google_sales", f.te)
	f.p = newProvider(t, f.fv)
	f.c = &http.Client{Transport: &resolver.Transport{Provider: f.p, Handle: "google_sales"}}
	return f
}

func (f *transportFixture) post(t *testing.T, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.api.srv.URL+"/v1/leads", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestTransport_InjectsHeadersWithoutTouchingTheRequest(t *testing.T) {
	f := newTransportFixture(t)
	req, _ := http.NewRequest(http.MethodGet, f.api.srv.URL+"/v1/leads", nil)
	resp, err := f.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if req.Header.Get("Authorization") != "" {
		t.Fatal("the caller's request was modified")
	}
	if got := f.api.requests(); len(got) != 1 || got[0] != "Bearer tok-1|" {
		t.Fatalf("API saw %q", got)
	}
}

func TestTransport_401RetriesOnceWithFreshToken(t *testing.T) {
	f := newTransportFixture(t)
	if resp := f.post(t, strings.NewReader("first")); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The provider revokes tok-1 although the plugin thinks it has an hour left.
	f.api.revoke("tok-1")
	resp := f.post(t, strings.NewReader(`{"q":"leads"}`))
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != `ok {"q":"leads"}` {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	want := []string{"Bearer tok-1|first", `Bearer tok-1|{"q":"leads"}`, `Bearer tok-2|{"q":"leads"}`}
	if got := f.api.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("API saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := f.te.issued.Load(); n != 2 {
		t.Fatalf("%d upstream grants, want 2", n)
	}
	// The fresh token is cached for the next request.
	f.post(t, nil)
	if n := f.fv.Count("flowcred/token/google_sales"); n != 2 {
		t.Fatalf("%d Vault reads, want 2", n)
	}
}

func TestTransport_RetriesOnlyOnce(t *testing.T) {
	f := newTransportFixture(t)
	f.api.revoke("tok-1")
	f.api.revoke("tok-2")
	resp := f.post(t, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := f.api.requests(); len(got) != 2 {
		t.Fatalf("API saw %d requests, want 2: %q", len(got), got)
	}
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), "invalid_token") {
		t.Fatalf("the retry's 401 body was not returned: %q", body)
	}
}

func TestTransport_NoRetryForNonReplayableBody(t *testing.T) {
	f := newTransportFixture(t)
	f.api.revoke("tok-1")
	// io.NopCloser hides the reader's type: http.NewRequest cannot set GetBody.
	resp := f.post(t, io.NopCloser(strings.NewReader("stream")))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := f.api.requests(); len(got) != 1 {
		t.Fatalf("API saw %d requests, want 1", len(got))
	}
	if n := f.te.issued.Load(); n != 1 {
		t.Fatalf("%d upstream grants, want 1 (no refresh without a retry)", n)
	}
}

func TestTransport_ReplaysBodyFromGetBody(t *testing.T) {
	f := newTransportFixture(t)
	f.api.revoke("tok-1")
	resp := f.post(t, bytes.NewReader([]byte("payload")))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := f.api.requests()
	if len(got) != 2 || got[1] != "Bearer tok-2|payload" {
		t.Fatalf("API saw %q", got)
	}
}

// countingBody records Close.
type countingBody struct {
	io.Reader
	closed bool
}

func (b *countingBody) Close() error { b.closed = true; return nil }

func TestTransport_ResolveErrorClosesBody(t *testing.T) {
	fv := fakevault.Start(t)
	p := newProvider(t, fv)
	tr := &resolver.Transport{Provider: p, Handle: "unbound"}
	body := &countingBody{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", body)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, resolver.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if !body.closed {
		t.Fatal("request body not closed")
	}
}

func TestTransport_RefreshErrorIsReturned(t *testing.T) {
	f := newTransportFixture(t)
	f.api.revoke("tok-1")
	if _, err := f.p.Resolve(context.Background(), "google_sales"); err != nil {
		t.Fatal(err)
	}
	// The binding goes: the refresh the 401 asks for is refused.
	if _, err := vaultClient(t, f.fv.Addr, fakevault.RootToken).Logical().Delete("flowcred/bindings/google_sales"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, f.api.srv.URL+"/", nil)
	_, err := f.c.Do(req)
	if !errors.Is(err, resolver.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

// A grant refused while the cached token is still valid: the plugin serves
// that token only to reads whose min_ttl it meets (design.md, "Errors").
// The API has just rejected it, so the transport's forced refresh asks for
// more life than it has and gets the needs_reauth answer: the error says
// why, rather than handing back the API's 401.
func TestTransport_NeedsReauthWithValidCachedTokenIsReported(t *testing.T) {
	f := newTransportFixture(t)
	f.api.revoke("tok-1")
	if _, err := f.p.Resolve(context.Background(), "google_sales"); err != nil {
		t.Fatal(err)
	}
	f.te.mode.Store("invalid_grant")
	req, _ := http.NewRequest(http.MethodGet, f.api.srv.URL+"/", nil)
	if _, err := f.c.Do(req); !errors.Is(err, resolver.ErrNeedsReauth) {
		t.Fatalf("err = %v, want ErrNeedsReauth", err)
	}
	// A read without min_ttl still gets the valid cached token, with a warning.
	m, err := f.p.Refresh(context.Background(), "google_sales", nil)
	if err != nil || m.AccessToken != "tok-1" || len(m.Warnings) == 0 || !strings.Contains(strings.Join(m.Warnings, " "), "re-authorization") {
		t.Fatalf("refresh: %v, warnings %q", err, m.Warnings)
	}
}

// staticProvider has no Refresh: the transport resolves again.
type staticProvider struct {
	mu     sync.Mutex
	tokens []string
	calls  int
}

func (s *staticProvider) Resolve(ctx context.Context, handle string) (*resolver.Material, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := s.tokens[min(s.calls, len(s.tokens)-1)]
	s.calls++
	return &resolver.Material{Handle: handle, AccessToken: tok, TokenType: "Bearer",
		Headers: map[string]string{"Authorization": "Bearer " + tok, "x-goog-user-project": "sales-project"}, FetchedAt: time.Now()}, nil
}

func TestTransport_ProviderWithoutRefresher(t *testing.T) {
	a := newAPIServer(t)
	a.revoke("old")
	sp := &staticProvider{tokens: []string{"old", "new"}}
	c := &http.Client{Transport: &resolver.Transport{Provider: sp, Handle: "h"}}
	resp, err := c.Get(a.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || sp.calls != 2 {
		t.Fatalf("status %d after %d resolves", resp.StatusCode, sp.calls)
	}

	// Same token again: nothing to retry with, the 401 is the answer.
	a2 := newAPIServer(t)
	a2.revoke("same")
	sp2 := &staticProvider{tokens: []string{"same"}}
	c2 := &http.Client{Transport: &resolver.Transport{Provider: sp2, Handle: "h"}}
	resp, err = c2.Get(a2.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(a2.requests()) != 1 {
		t.Fatalf("status %d, %d API requests", resp.StatusCode, len(a2.requests()))
	}
}

// TestTransport_RefreshesOncePerRejectedToken is issue 11: an API that
// always answers 401 must not cost an upstream token per request. The first
// request's 401 forces one refresh (tok-2); tok-2's own 401 and every later
// request handed tok-2 give the 401 back without forcing another.
func TestTransport_RefreshesOncePerRejectedToken(t *testing.T) {
	f := newTransportFixture(t)
	var calls atomic.Int64
	api := newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	for i := 0; i < 20; i++ {
		resp, err := f.c.Post(api+"/v1/leads", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	if n := f.te.issued.Load(); n != 2 {
		t.Fatalf("%d upstream grants for 20 requests, want 2", n)
	}
	if n := calls.Load(); n != 21 {
		t.Fatalf("API saw %d requests, want 21 (one retry in all)", n)
	}
}

// A token that was rejected once and replaced is not refreshed again when
// its replacement works: other requests in flight with the old token wait
// for the one refresh and retry with its result.
func TestTransport_ConcurrentRejectionsShareOneRefresh(t *testing.T) {
	f := newTransportFixture(t)
	f.api.revoke("tok-1")
	if _, err := f.p.Resolve(context.Background(), "google_sales"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, f.api.srv.URL+"/", nil)
			resp, err := f.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Fatalf("status %d, want 200 for every request", c)
		}
	}
	if n := f.te.issued.Load(); n != 2 {
		t.Fatalf("%d upstream grants, want 2", n)
	}
}

// headerRecorder is an API on loopback that records the credential headers
// of each request and answers with the handler's choice.
type headerRecorder struct {
	url  string
	mu   sync.Mutex
	seen []string // "path Authorization|x-goog-user-project"
}

func newHeaderRecorder(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *headerRecorder {
	rec := &headerRecorder{}
	rec.url = newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.URL.Path+" "+r.Header.Get("Authorization")+"|"+r.Header.Get("x-goog-user-project"))
		rec.mu.Unlock()
		h(w, r)
	}))
	return rec
}

func (rec *headerRecorder) requests() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.seen...)
}

// TestTransport_RedirectsKeepCredentialsInTheOrigin is issue 11: a redirect
// that leaves the request's origin (scheme, host and port) gets none of the
// material's headers, nor does a later hop back to the origin, and a 401
// from elsewhere forces no refresh. Same-origin redirects keep them.
func TestTransport_RedirectsKeepCredentialsInTheOrigin(t *testing.T) {
	f := newTransportFixture(t)
	var origin string
	other := newHeaderRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/back":
			http.Redirect(w, r, origin+"/final", http.StatusFound)
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	home := newHeaderRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
		case "/away":
			http.Redirect(w, r, other.url+"/landing", http.StatusFound)
		case "/away-and-back":
			http.Redirect(w, r, other.url+"/back", http.StatusFound)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	origin = home.url
	get := func(path string) int {
		t.Helper()
		resp, err := f.c.Get(home.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cred := "Bearer tok-1|sales-project"

	if code := get("/same"); code != http.StatusOK {
		t.Fatalf("same-origin redirect: status %d", code)
	}
	if got, want := strings.Join(home.requests(), ","), "/same "+cred+",/final "+cred; got != want {
		t.Fatalf("same-origin redirect: origin saw %q, want %q", got, want)
	}

	if code := get("/away"); code != http.StatusUnauthorized {
		t.Fatalf("cross-origin redirect: status %d", code)
	}
	if code := get("/away-and-back"); code != http.StatusOK {
		t.Fatalf("redirect back: status %d", code)
	}
	if got, want := strings.Join(other.requests(), ","), "/landing |,/back |"; got != want {
		t.Fatalf("the other origin saw %q, want %q", got, want)
	}
	if got := home.requests(); len(got) != 5 || got[4] != "/final |" {
		t.Fatalf("a hop back to the origin after leaving it got credentials: %q", got)
	}
	if n := f.te.issued.Load(); n != 1 {
		t.Fatalf("%d upstream grants, want 1 (a 401 from another origin forces no refresh)", n)
	}
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A Base that does not set Response.Request still leaves the transport the
// redirect chain it needs to tell origins apart.
func TestTransport_RedirectOriginWithoutResponseRequest(t *testing.T) {
	f := newTransportFixture(t)
	other := newHeaderRecorder(t, func(w http.ResponseWriter, r *http.Request) {})
	home := newHeaderRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			http.Redirect(w, r, other.url+"/landing", http.StatusFound)
		}
	})
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if resp != nil {
			resp.Request = nil
		}
		return resp, err
	})
	c := &http.Client{Transport: &resolver.Transport{Provider: f.p, Handle: "google_sales", Base: base}}
	resp, err := c.Get(home.url + "/away")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := other.requests(); len(got) != 1 || got[0] != "/landing |" {
		t.Fatalf("the other origin saw %q", got)
	}
}
