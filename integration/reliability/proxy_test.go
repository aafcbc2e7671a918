package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gateProxy is a reverse proxy in front of the OAuth2 server's token
// endpoint that knows which token requests are in flight, can be closed
// (requests are then answered 503 without reaching the provider), can hold
// the provider's successful answer before passing it on, and shows every
// request and answer to an observer.
//
// A request it forwards always completes at the provider, even when the
// client (the plugin) dies meanwhile: the provider has then rotated the
// refresh token whatever happens to the answer, as on a real network.
type gateProxy struct {
	srv      *httptest.Server
	tokenURL string
	client   *http.Client

	// inflight counts forwarded requests whose answer has not been written
	// back yet.
	inflight atomic.Int64
	// forwarded, succeeded (provider answered 200) and rejected (answered
	// 503 while closed) count requests.
	forwarded, succeeded, rejected atomic.Int64

	// epoch increases with every Reopen; a connection accepted under an
	// older epoch is refused (see Reopen).
	epoch atomic.Int64

	mu       sync.Mutex
	closed   bool
	hold     chan struct{} // when set, a 200 answer waits for it to close
	held     chan struct{} // closed when an answer is being held
	observer func(form url.Values, status int, body []byte)
}

func newGateProxy(t *testing.T, tokenURL string) *gateProxy {
	t.Helper()
	p := &gateProxy{
		tokenURL: tokenURL,
		client: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second},
		},
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connEpochKey{}, p.epoch.Load())
	}
	p.srv.Start()
	t.Cleanup(func() {
		p.Release()
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.client.CloseIdleConnections()
	})
	return p
}

// URL is the token URL to bind.
func (p *gateProxy) URL() string { return p.srv.URL + "/token" }

// Observe calls fn with every forwarded request's form and the provider's
// answer.
func (p *gateProxy) Observe(fn func(form url.Values, status int, body []byte)) {
	p.mu.Lock()
	p.observer = fn
	p.mu.Unlock()
}

// Close makes the proxy answer 503 to new requests, and waits until no
// forwarded request is in flight. Reopen ends it.
func (p *gateProxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for p.inflight.Load() > 0 {
		time.Sleep(2 * time.Millisecond)
	}
}

// connEpochKey keys a connection's epoch in its requests' context.
type connEpochKey struct{}

// Reopen forwards requests again, except on connections accepted before
// the call: those are answered 503 and closed, and the client connects
// again. After the plugin was killed, a request it wrote to the socket just
// before it died can reach the handler only after the gate opened (the
// proxy reads it a little later); it comes on a connection of the dead
// process, and must not reach the provider, whose answer nobody would
// store.
func (p *gateProxy) Reopen() {
	p.mu.Lock()
	p.epoch.Add(1)
	p.closed = false
	p.mu.Unlock()
}

// HoldNext makes the next successful answer wait, after the provider sent
// it, until Release. The returned channel is closed when an answer is held.
func (p *gateProxy) HoldNext() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = make(chan struct{})
	p.held = make(chan struct{})
	return p.held
}

// Release lets a held answer (and later ones) through.
func (p *gateProxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold != nil {
		close(p.hold)
		p.hold, p.held = nil, nil
	}
}

func (p *gateProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = r.Body.Close()
	p.mu.Lock()
	stale := r.Context().Value(connEpochKey{}).(int64) < p.epoch.Load()
	if p.closed || stale {
		p.mu.Unlock()
		p.rejected.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if stale {
			w.Header().Set("Connection", "close")
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"gate closed by the test"}`))
		return
	}
	p.inflight.Add(1)
	observer := p.observer
	p.mu.Unlock()
	defer p.inflight.Add(-1)
	p.forwarded.Add(1)

	// Not r.Context(): the provider finishes a request it has started.
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), http.MethodPost, p.tokenURL, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for _, h := range []string{"Content-Type", "Authorization", "Accept", "User-Agent"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, "gateProxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		p.succeeded.Add(1)
	}
	if observer != nil {
		form, _ := url.ParseQuery(string(body))
		observer(form, resp.StatusCode, out)
	}
	if resp.StatusCode == http.StatusOK {
		p.mu.Lock()
		hold, held := p.hold, p.held
		if held != nil {
			close(held)
			p.held = nil
		}
		p.mu.Unlock()
		if hold != nil {
			<-hold
		}
	}
	for _, h := range []string{"Content-Type", "Cache-Control", "Retry-After"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

// tokenFields extracts the secret fields of a token response body.
func tokenFields(body []byte) (accessToken, refreshToken, idToken string) {
	var m struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
	}
	_ = json.Unmarshal(body, &m)
	return m.AccessToken, m.RefreshToken, m.IDToken
}
