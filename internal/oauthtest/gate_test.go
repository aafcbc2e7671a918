package oauthtest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// grant posts a refresh_token grant to tokenURL and returns the status and
// the decoded answer.
func grant(t *testing.T, c *http.Client, tokenURL, rt string) (int, map[string]any) {
	t.Helper()
	resp, err := c.PostForm(tokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestTokenEndpointScript(t *testing.T) {
	e := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{RefreshToken: "rt-0", Rotate: true})
	c := &http.Client{Timeout: 10 * time.Second}
	if e.TokenURL() != e.URL()+"/token" {
		t.Fatalf("TokenURL %q", e.TokenURL())
	}
	st, m := grant(t, c, e.TokenURL(), "rt-0")
	if st != 200 || m["access_token"] != "at-1-SECRET" || m["refresh_token"] != "rotated-1-SECRET" || m["expires_in"] != float64(3600) {
		t.Fatalf("first grant: %d %v", st, m)
	}
	if st, m := grant(t, c, e.TokenURL(), "rt-0"); st != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %v", st, m)
	}
	if lr := e.LastRequest(); lr == nil || lr.Form().Get("refresh_token") != "rt-0" {
		t.Fatalf("last request %+v", lr)
	}
	// Faults apply to the endpoint as to a proxy.
	e.FailNext(1, oauthtest.Unavailable())
	if st, m := grant(t, c, e.TokenURL(), "rotated-1-SECRET"); st != 503 || m["error"] != "temporarily_unavailable" {
		t.Fatalf("FailNext: %d %v", st, m)
	}
	if st, _ := grant(t, c, e.TokenURL(), "rotated-1-SECRET"); st != 200 || e.Issued() != 2 || e.Count() != 4 {
		t.Fatalf("after the fault: %d, issued %d, count %d", st, e.Issued(), e.Count())
	}
	resp, err := c.PostForm(e.TokenURL(), url.Values{"grant_type": {"password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("unsupported grant: %d", resp.StatusCode)
	}

	fixed := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{AccessToken: "fixed", ExpiresIn: -1, Grants: []string{"client_credentials"}})
	resp, err = c.PostForm(fixed.TokenURL(), url.Values{"grant_type": {"client_credentials"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"access_token":"fixed"`) || strings.Contains(string(b), "expires_in") {
		t.Fatalf("fixed token: %s", b)
	}
}

func TestProxyGateHoldObserve(t *testing.T) {
	e := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{})
	p := oauthtest.NewFaultProxy(e.TokenURL())
	t.Cleanup(p.Close)
	c := &http.Client{Timeout: 10 * time.Second}
	var observed atomic.Int64
	p.Observe(func(form url.Values, status int, body []byte) {
		if form.Get("refresh_token") == "rt" && status == 200 && strings.Contains(string(body), "access_token") {
			observed.Add(1)
		}
	})
	if st, _ := grant(t, c, p.TokenURL(), "rt"); st != 200 || observed.Load() != 1 || p.Forwarded() != 1 || p.Succeeded() != 1 {
		t.Fatalf("pass-through: %d, observed %d, forwarded %d, succeeded %d", st, observed.Load(), p.Forwarded(), p.Succeeded())
	}

	// Gate: closed answers 503 without forwarding; reopened refuses the
	// connections accepted before, then forwards again.
	p.CloseGate()
	if st, m := grant(t, c, p.TokenURL(), "rt"); st != 503 || m["error"] != "temporarily_unavailable" || p.Rejected() != 1 || e.Count() != 1 {
		t.Fatalf("closed gate: %d %v, rejected %d, upstream %d", st, m, p.Rejected(), e.Count())
	}
	p.OpenGate()
	if st, _ := grant(t, c, p.TokenURL(), "rt"); st != 503 {
		t.Fatalf("a connection from before OpenGate: %d, want 503", st)
	}
	if st, _ := grant(t, c, p.TokenURL(), "rt"); st != 200 || e.Count() != 2 {
		t.Fatalf("after OpenGate: %d, upstream %d", st, e.Count())
	}

	// HoldNext: the provider answered, the client waits for Release.
	held := p.HoldNext()
	done := make(chan int, 1)
	go func() { st, _ := grant(t, c, p.TokenURL(), "rt"); done <- st }()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer held")
	}
	if e.Issued() != 3 || p.InFlight() != 1 {
		t.Fatalf("held: issued %d, in flight %d", e.Issued(), p.InFlight())
	}
	select {
	case st := <-done:
		t.Fatalf("a held answer was delivered (%d)", st)
	case <-time.After(100 * time.Millisecond):
	}
	p.Release()
	if st := <-done; st != 200 {
		t.Fatalf("released: %d", st)
	}

	// HoldAnswer: forwarded to the end even though the client gives up.
	p.SetMode(oauthtest.HoldAnswer())
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenURL(), strings.NewReader("grant_type=refresh_token&refresh_token=rt"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	go func() {
		for p.Held() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	if _, err := c.Do(req); err == nil {
		t.Fatal("a swallowed answer was delivered")
	}
	if p.Held() != 1 || e.Issued() != 4 {
		t.Fatalf("hold answer: held %d, issued %d", p.Held(), e.Issued())
	}
}

// SetDetached: a forwarded request completes at the provider although the
// client went away.
func TestProxyDetached(t *testing.T) {
	e := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{})
	e.SetMode(oauthtest.Delay(300 * time.Millisecond))
	p := oauthtest.NewFaultProxy(e.TokenURL())
	t.Cleanup(p.Close)
	p.SetDetached(true)
	c := &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := c.PostForm(p.TokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}}); err == nil {
		t.Fatal("want the client's timeout")
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Issued() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the detached request did not complete at the provider")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
