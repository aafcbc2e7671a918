package oauthtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

func TestFaultProxy(t *testing.T) {
	srv := oauthtest.Start(t)
	rt, err := srv.MintRefreshToken(oauthtest.ClientRTBasic, "offline_access api")
	if err != nil {
		t.Fatal(err)
	}

	p := oauthtest.NewFaultProxy(srv.TokenURL)
	t.Cleanup(p.Close)
	if p.TokenURL() != p.URL()+"/token" {
		t.Fatalf("TokenURL %q URL %q", p.TokenURL(), p.URL())
	}

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	post := func(t *testing.T, c *http.Client) (*http.Response, error) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, p.TokenURL(),
			strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(oauthtest.ClientRTBasic, oauthtest.SecretRTBasic)
		return c.Do(req)
	}
	readJSON := func(t *testing.T, resp *http.Response) map[string]any {
		t.Helper()
		defer resp.Body.Close()
		m := map[string]any{}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("decoding %q: %v", b, err)
		}
		return m
	}
	oauthCfg := oauth2.Config{
		ClientID:     oauthtest.ClientRTBasic,
		ClientSecret: oauthtest.SecretRTBasic,
		Endpoint:     oauth2.Endpoint{TokenURL: p.TokenURL(), AuthStyle: oauth2.AuthStyleInHeader},
	}
	oauthRefresh := func() (*oauth2.Token, error) {
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
		return oauthCfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}

	t.Run("pass-through", func(t *testing.T) {
		p.SetMode(oauthtest.PassThrough())
		before := p.Count()
		tok, err := oauthRefresh()
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken == "" || tok.Expiry.IsZero() {
			t.Fatalf("token %+v", tok)
		}
		if p.Count() != before+1 {
			t.Fatalf("count %d, want %d", p.Count(), before+1)
		}
		lr := p.LastRequest()
		if lr == nil || lr.Form().Get("grant_type") != "refresh_token" || lr.Path != "/token" || lr.Fault != oauthtest.FaultNone {
			t.Fatalf("last request %+v", lr)
		}
	})

	t.Run("status 503", func(t *testing.T) {
		p.SetMode(oauthtest.Unavailable())
		resp, err := post(t, hc)
		if err != nil {
			t.Fatal(err)
		}
		if m := readJSON(t, resp); resp.StatusCode != 503 || m["error"] != "temporarily_unavailable" {
			t.Fatalf("%s %v", resp.Status, m)
		}
	})

	t.Run("status 429 retry-after", func(t *testing.T) {
		p.SetMode(oauthtest.RateLimited(2 * time.Second))
		resp, err := post(t, hc)
		if err != nil {
			t.Fatal(err)
		}
		readJSON(t, resp)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("%s %v", resp.Status, resp.Header)
		}
		_, err = oauthRefresh()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != 429 {
			t.Fatalf("oauth2 error %v", err)
		}
	})

	t.Run("custom status and header", func(t *testing.T) {
		p.SetMode(oauthtest.StatusFault(500, "boom").WithHeader("X-Test", "1"))
		resp, err := post(t, hc)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || string(b) != "boom" || resp.Header.Get("X-Test") != "1" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("%s %q %v", resp.Status, b, resp.Header)
		}
	})

	t.Run("hang", func(t *testing.T) {
		p.SetMode(oauthtest.Hang())
		c := &http.Client{Transport: tr, Timeout: 300 * time.Millisecond}
		start := time.Now()
		_, err := post(t, c)
		var ne interface{ Timeout() bool }
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("want timeout, got %v", err)
		}
		if el := time.Since(start); el < 250*time.Millisecond || el > 5*time.Second {
			t.Fatalf("elapsed %v", el)
		}
	})

	t.Run("reset", func(t *testing.T) {
		p.SetMode(oauthtest.Reset())
		_, err := post(t, hc)
		if err == nil {
			t.Fatal("want error")
		}
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
			t.Fatalf("want connection reset or EOF, got %v", err)
		}
	})

	for _, status := range []int{200, 502} {
		t.Run("html "+http.StatusText(status), func(t *testing.T) {
			p.SetMode(oauthtest.HTML(status))
			resp, err := post(t, hc)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
				!strings.Contains(string(b), "<html>") {
				t.Fatalf("%s %v %q", resp.Status, resp.Header, b)
			}
			if _, err := oauthRefresh(); err == nil {
				t.Fatal("oauth2 accepted an HTML body")
			}
		})
	}

	t.Run("truncated json", func(t *testing.T) {
		p.SetMode(oauthtest.TruncatedJSON())
		resp, err := post(t, hc)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 200 || err == nil {
			t.Fatalf("%s decode err %v", resp.Status, err)
		}
	})

	t.Run("truncated transfer", func(t *testing.T) {
		p.SetMode(oauthtest.TruncatedTransfer())
		resp, err := post(t, hc)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("want unexpected EOF, got %v", err)
		}
	})

	t.Run("huge body", func(t *testing.T) {
		p.SetMode(oauthtest.HugeBody(0))
		resp, err := post(t, hc)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ContentLength != -1 {
			t.Fatalf("content length %d", resp.ContentLength)
		}
		// A careful client stops early...
		n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if n != 1<<20 {
			t.Fatalf("read %d", n)
		}
		// ...and the whole thing is 20 MiB.
		resp, err = post(t, hc)
		if err != nil {
			t.Fatal(err)
		}
		n, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != 20<<20 {
			t.Fatalf("read %d: %v", n, err)
		}
	})

	t.Run("missing access_token", func(t *testing.T) {
		p.SetMode(oauthtest.MissingAccessToken())
		resp, err := post(t, hc)
		if err != nil {
			t.Fatal(err)
		}
		if m := readJSON(t, resp); resp.StatusCode != 200 || m["access_token"] != nil || m["token_type"] != "Bearer" {
			t.Fatalf("%s %v", resp.Status, m)
		}
		if _, err := oauthRefresh(); err == nil || !strings.Contains(err.Error(), "missing access_token") {
			t.Fatalf("oauth2 error %v", err)
		}
	})

	t.Run("strip expires_in", func(t *testing.T) {
		p.SetMode(oauthtest.StripExpiresIn())
		resp, err := post(t, hc)
		if err != nil {
			t.Fatal(err)
		}
		if m := readJSON(t, resp); resp.StatusCode != 200 || m["access_token"] == nil || m["expires_in"] != nil {
			t.Fatalf("%s %v", resp.Status, m)
		}
		tok, err := oauthRefresh()
		if err != nil || !tok.Expiry.IsZero() {
			t.Fatalf("token %+v err %v", tok, err)
		}
		// Errors pass through unchanged.
		if err := srv.ResetStats(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delay", func(t *testing.T) {
		p.SetMode(oauthtest.Delay(300 * time.Millisecond))
		start := time.Now()
		tok, err := oauthRefresh()
		if err != nil || tok.AccessToken == "" {
			t.Fatalf("token %+v err %v", tok, err)
		}
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Fatalf("elapsed %v", el)
		}
	})

	t.Run("fail next N", func(t *testing.T) {
		p.SetMode(oauthtest.PassThrough())
		p.FailNext(2, oauthtest.Unavailable())
		p.ResetCount()
		var got []int
		for i := 0; i < 3; i++ {
			resp, err := post(t, hc)
			if err != nil {
				t.Fatal(err)
			}
			readJSON(t, resp)
			got = append(got, resp.StatusCode)
		}
		if got[0] != 503 || got[1] != 503 || got[2] != 200 || p.Count() != 3 {
			t.Fatalf("statuses %v count %d", got, p.Count())
		}
	})

	t.Run("upstream errors pass through", func(t *testing.T) {
		p.SetMode(oauthtest.PassThrough())
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
		_, err := oauthCfg.TokenSource(ctx, &oauth2.Token{RefreshToken: "bogus"}).Token()
		requireRetrieveError(t, err, "invalid_grant", "refresh token not found")
	})
}

// Hanging and delayed requests must not keep goroutines alive after Close.
func TestFaultProxyCloseReleasesHangs(t *testing.T) {
	// Warm up package-level state (httptest, net/http) before the baseline.
	warm := oauthtest.NewFaultProxy("http://127.0.0.1:1")
	warm.Close()

	base := runtime.NumGoroutine()
	p := oauthtest.NewFaultProxy("http://127.0.0.1:1/token")
	p.SetMode(oauthtest.Hang())
	p.FailNext(1, oauthtest.Delay(time.Hour)) // a delayed request is released as well
	tr := &http.Transport{}
	c := &http.Client{Transport: tr}
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			resp, err := c.Post(p.TokenURL(), "application/x-www-form-urlencoded", strings.NewReader("grant_type=x"))
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Count() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p.Count() != 3 {
		t.Fatalf("count %d", p.Count())
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on hanging requests")
	}
	for i := 0; i < 3; i++ {
		<-errs
	}
	tr.CloseIdleConnections()
	deadline = time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d after Close, %d before\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}
