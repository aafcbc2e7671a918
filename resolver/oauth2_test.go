package resolver_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/flowcred/vault-plugin-flowcred/internal/fakevault"
	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// TokenSource serves the cached token until the provider's refresh point,
// which is also the oauth2.Token's Expiry, and then reads Vault once.
func TestTokenSource_ReusesUntilTheRefreshPoint(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, 100*time.Second)
	clk := newClock()
	start := clk.Now()
	p := newProvider(t, fv, resolver.WithClock(clk.Now))
	ts := p.TokenSource("crm")
	for i := 0; i < 5; i++ {
		tok, err := ts.Token()
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken != staticToken || tok.Type() != "Bearer" {
			t.Fatalf("token type %q", tok.TokenType)
		}
		// 10% of the 100s lease is the default margin: refresh at 90s.
		if want := start.Add(90 * time.Second); !tok.Expiry.Equal(want) {
			t.Fatalf("Expiry %v, want the refresh point %v", tok.Expiry, want)
		}
	}
	if n := fv.Count("flowcred/token/crm"); n != 1 {
		t.Fatalf("5 Token calls made %d Vault reads, want 1", n)
	}
	clk.Advance(91 * time.Second)
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if n := fv.Count("flowcred/token/crm"); n != 2 {
		t.Fatalf("past the refresh point: %d reads, want 2", n)
	}
	if want := start.Add(91*time.Second + 90*time.Second); !tok.Expiry.Equal(want) {
		t.Fatalf("Expiry %v, want %v", tok.Expiry, want)
	}
	// Every TokenSource of a handle shares the provider's cache.
	if _, err := p.TokenSource("crm").Token(); err != nil || fv.Count("flowcred/token/crm") != 2 {
		t.Fatalf("a second TokenSource read Vault again: %v", err)
	}
}

// An upstream token's Expiry is bounded by the token's own life: the lease
// is the token's life minus the plugin's margin, and the refresh point 10%
// before the lease ends.
func TestTokenSource_ExpiryBeforeTheTokenEnds(t *testing.T) {
	fv := fakevault.Start(t)
	te := newTokenEndpoint(t)
	bindOAuth(t, fv, "google_sales", te)
	p := newProvider(t, fv)
	tok, err := p.TokenSource("google_sales").Token()
	if err != nil {
		t.Fatal(err)
	}
	left := time.Until(tok.Expiry)
	// 3600s token, 5m plugin margin: a 55m lease, refreshed at 49.5m.
	if tok.AccessToken != "tok-1" || left < 49*time.Minute || left > 50*time.Minute {
		t.Fatalf("token %q expiry in %v", tok.AccessToken, left)
	}
}

// The Google API client shape: a constructor takes an oauth2.TokenSource
// and builds its client with oauth2.NewClient.
func TestTokenSource_WithOAuth2Client(t *testing.T) {
	fv := fakevault.Start(t)
	te := newTokenEndpoint(t)
	bindOAuth(t, fv, "google_sales", te)
	p := newProvider(t, fv)
	rec := newHeaderRecorder(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	c := oauth2.NewClient(context.Background(), p.TokenSource("google_sales"))
	for i := 0; i < 3; i++ {
		resp, err := c.Get(rec.url + "/v4/spreadsheets")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := rec.requests()
	if len(got) != 3 || got[0] != "/v4/spreadsheets Bearer tok-1|" || got[2] != got[0] {
		t.Fatalf("API saw %q", got)
	}
	if te.issued.Load() != 1 || fv.Count("flowcred/token/google_sales") != 1 {
		t.Fatalf("%d grants, %d Vault reads", te.issued.Load(), fv.Count("flowcred/token/google_sales"))
	}
}

// Material an oauth2.Token cannot carry is refused, not sent wrong.
func TestTokenSource_RefusesMaterialThatIsNotAnAuthorizationHeader(t *testing.T) {
	fv := fakevault.Start(t)
	fv.Write(t, "flowcred/bindings/apikey", map[string]interface{}{"kind": "api_token", "token": staticToken, "header": "X-Api-Key"})
	fv.Write(t, "flowcred/bindings/bare", map[string]interface{}{"kind": "api_token", "token": staticToken, "scheme": ""})
	fv.Write(t, "flowcred/bindings/scheme", map[string]interface{}{"kind": "api_token", "token": staticToken, "scheme": "Token"})
	p := newProvider(t, fv)
	for _, h := range []string{"apikey", "bare"} {
		_, err := p.TokenSource(h).Token()
		if !errors.Is(err, resolver.ErrMisconfigured) || !strings.Contains(err.Error(), "use NewClient or Transport") {
			t.Fatalf("%s: err = %v", h, err)
		}
		if strings.Contains(err.Error(), staticToken) {
			t.Fatal("the error carries the token")
		}
	}
	tok, err := p.TokenSource("scheme").Token()
	if err != nil || tok.Type() != "Token" {
		t.Fatalf("scheme Token: %v %v", tok, err)
	}
}

func TestTokenSource_Errors(t *testing.T) {
	sv := newStubVault(t, 400, []string{`needs_reauth: handle "x": provider answered invalid_grant`}, 0)
	p, _ := resolver.NewVault(resolver.WithClient(vaultClient(t, sv.addr, "connector-token")))
	if _, err := p.TokenSource("x").Token(); !errors.Is(err, resolver.ErrNeedsReauth) {
		t.Fatalf("err = %v", err)
	}
	// Through oauth2.NewClient and net/http the sentinel still matches.
	_, err := oauth2.NewClient(context.Background(), p.TokenSource("x")).Get(sv.addr)
	if !errors.Is(err, resolver.ErrNeedsReauth) {
		t.Fatalf("through oauth2.NewClient: err = %v", err)
	}
}

// NewClient sends every header of the material, and its base transport
// comes from the context as with oauth2.NewClient.
func TestNewClient(t *testing.T) {
	fv := fakevault.Start(t)
	te := newTokenEndpoint(t)
	bindOAuth(t, fv, "google_sales", te)
	p := newProvider(t, fv)
	rec := newHeaderRecorder(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })

	get := func(c *http.Client) {
		t.Helper()
		resp, err := c.Get(rec.url + "/v1/leads")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get(p.NewClient(context.Background(), "google_sales"))
	var based atomic.Int64
	base := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		based.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	get(p.NewClient(context.WithValue(context.Background(), oauth2.HTTPClient, base), "google_sales"))
	if got := rec.requests(); len(got) != 2 || got[0] != "/v1/leads Bearer tok-1|sales-project" || got[1] != got[0] {
		t.Fatalf("API saw %q", got)
	}
	if based.Load() != 1 {
		t.Fatalf("the context's client sent %d requests, want 1", based.Load())
	}

	_, err := p.NewClient(context.Background(), "unbound-handle-with-bad/name").Get(rec.url)
	if !errors.Is(err, resolver.ErrMisconfigured) {
		t.Fatalf("err = %v", err)
	}
}
